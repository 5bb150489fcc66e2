package openaicompat

import (
	"context"
	"mime"
	"net/http"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/hangwatch"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
)

// Complete sends a non-streamed legacy prompt completion, fanned out when
// the node takes one prompt and gives one choice per request while req
// asks for more (see answersOneChoice).
func (c *Client) Complete(ctx context.Context, req *openaiv1.CompletionRequest) (*openaiv1.Completion, error) {
	reqs, err := c.completionRequests(req)
	switch {
	case err != nil:
		return nil, err
	case reqs != nil:
		return c.completeFanOut(ctx, reqs)
	}
	return c.completeOne(ctx, req)
}

// completeOne sends one non-streamed completion request to the node.
func (c *Client) completeOne(ctx context.Context, req *openaiv1.CompletionRequest) (*openaiv1.Completion, error) {
	up := proto.CloneOf(req)
	up.Stream = false
	up.StreamOptions = nil
	out := new(openaiv1.Completion)
	if err := c.roundTrip(ctx, http.MethodPost, "/completions", up, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteStream sends a streamed legacy prompt completion and calls send
// for every chunk as soon as it is parsed, like ChatStream; it is fanned
// out as Complete is, each chunk under its choice's index.
func (c *Client) CompleteStream(ctx context.Context, req *openaiv1.CompletionRequest, send func(*openaiv1.Completion) error) error {
	reqs, err := c.completionRequests(req)
	switch {
	case err != nil:
		return err
	case reqs != nil:
		return c.completeStreamFanOut(ctx, reqs, send)
	}
	return c.completeStreamOne(ctx, req, send)
}

// completeStreamOne is CompleteStream for one request to the node.
func (c *Client) completeStreamOne(ctx context.Context, req *openaiv1.CompletionRequest, send func(*openaiv1.Completion) error) error {
	up := proto.CloneOf(req)
	up.Stream = true
	resp, err := c.do(ctx, http.MethodPost, "/completions", up, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		// One JSON body for a streamed request: an error, or the whole answer.
		data, err := c.readAll(ctx, resp.Body)
		if err != nil {
			return err
		}
		if obj, ok := openaijson.UnmarshalError(data); ok {
			return c.conn.EventError(obj)
		}
		whole := new(openaiv1.Completion)
		if err := openaijson.Unmarshal(data, whole); err != nil {
			return c.badAnswer("answer (not an event stream)", err)
		}
		if !req.GetStreamOptions().GetIncludeUsage() {
			whole.Usage = nil
		}
		return send(whole)
	}
	return relayEvents(c, ctx, resp.Body, func() *openaiv1.Completion { return new(openaiv1.Completion) },
		func(chunk *openaiv1.Completion) bool {
			for _, ch := range chunk.GetChoices() {
				if ch.GetFinishReason() != "" {
					return true
				}
			}
			return false
		}, send)
}

// CompleteFolded answers a non-streamed completion by streaming from the
// node and folding the chunks, failing fast (UNAVAILABLE, reason
// NODE_ANSWER_FAILED) when no first token comes within firstToken or the
// node then goes silent for longer than idle, as ChatFolded does for chats.
func (c *Client) CompleteFolded(ctx context.Context, req *openaiv1.CompletionRequest, firstToken, idle time.Duration) (*openaiv1.Completion, error) {
	up := proto.CloneOf(req)
	up.Stream = true
	up.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	wctx, watch, stop := hangwatch.Start(ctx, firstToken, idle)
	defer stop()
	acc := FoldCompletion{}
	err := c.CompleteStream(wctx, up, func(chunk *openaiv1.Completion) error {
		watch.Arrived()
		acc.Add(chunk)
		watch.Waiting()
		return nil
	})
	if err != nil {
		return nil, hangwatch.NodeError(ctx, wctx, c.conn.NodeID(), firstToken, idle, err)
	}
	return acc.Result(), nil
}

// FoldCompletion accumulates streamed text completions into one.
type FoldCompletion struct {
	out     *openaiv1.Completion
	choices map[int32]*openaiv1.CompletionChoice
	order   []int32
}

// Add folds one chunk in.
func (f *FoldCompletion) Add(ch *openaiv1.Completion) {
	if f.out == nil {
		f.out = &openaiv1.Completion{Id: ch.GetId(), Object: "text_completion", Created: ch.GetCreated(), Model: ch.GetModel()}
		f.choices = map[int32]*openaiv1.CompletionChoice{}
	}
	if v := ch.GetSystemFingerprint(); v != "" {
		f.out.SystemFingerprint = v
	}
	if u := ch.GetUsage(); u != nil {
		f.out.Usage = u
	}
	for _, cc := range ch.GetChoices() {
		choice, ok := f.choices[cc.GetIndex()]
		if !ok {
			choice = &openaiv1.CompletionChoice{Index: cc.GetIndex()}
			f.choices[cc.GetIndex()] = choice
			f.order = append(f.order, cc.GetIndex())
		}
		choice.Text += cc.GetText()
		if r := cc.GetFinishReason(); r != "" {
			choice.FinishReason = r
		}
		if lp := cc.GetLogprobs(); lp != nil {
			choice.Logprobs = mergeLogprobs(choice.Logprobs, lp)
		}
	}
}

// Result is the completion so far, choices in index order (a stream of
// several choices interleaves them).
func (f *FoldCompletion) Result() *openaiv1.Completion {
	if f.out == nil {
		return &openaiv1.Completion{Object: "text_completion"}
	}
	f.out.Choices = f.out.Choices[:0]
	slices.Sort(f.order)
	for _, i := range f.order {
		f.out.Choices = append(f.out.Choices, f.choices[i])
	}
	return f.out
}

// mergeLogprobs appends a chunk's logprobs lists (tokens, token_logprobs,
// top_logprobs, text_offset) to those folded so far.
func mergeLogprobs(have, more *structpb.Struct) *structpb.Struct {
	if have == nil {
		return proto.CloneOf(more)
	}
	for k, v := range more.GetFields() {
		if l, h := v.GetListValue(), have.Fields[k].GetListValue(); l != nil && h != nil {
			h.Values = append(h.Values, l.GetValues()...)
			continue
		}
		have.Fields[k] = v
	}
	return have
}
