// Package openaicompat is a client for the OpenAI-compatible HTTP API that
// Ollama (/v1), vLLM, llama.cpp llama-server, LM Studio and OpenAI itself
// serve: chat and legacy prompt completions (plain and streamed),
// embeddings and the model list. Streams are relayed chunk by chunk as they
// are parsed; a request for more choices than the node gives per request is
// fanned out (fanout.go).
package openaicompat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/sse"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/chatfold"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"github.com/llmesh/llmesh/services/meshkit/silence"
)

// maxAnswer bounds a non-streamed answer (an embeddings list of a large
// batch is the biggest).
const maxAnswer = 256 << 20

// Client talks to one node's OpenAI-compatible API.
type Client struct {
	conn *nodeconn.Client
	api  string // path prefix of the API below the base URL
}

// New returns a client for the node behind conn.
func New(conn *nodeconn.Client) *Client {
	return &Client{conn: conn, api: APIPrefix(conn.Kind())}
}

// APIPrefix is where a kind serves the OpenAI API below its base URL: a
// KIND_OPENAI base URL already is the API base (like OPENAI_BASE_URL);
// every other kind serves it under /v1.
func APIPrefix(kind nodev1.Kind) string {
	if kind == nodev1.Kind_KIND_OPENAI {
		return ""
	}
	return "/v1"
}

// ModelsPath is the path of the model list below the base URL, for
// messages such as "GET /v1/models: HTTP 500".
func (c *Client) ModelsPath() string { return c.conn.BasePath() + c.api + "/models" }

// Chat sends a non-streamed chat completion, fanned out when n asks for
// more choices than the node gives (see answersOneChoice).
func (c *Client) Chat(ctx context.Context, req *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error) {
	n, err := c.fanOut(req)
	switch {
	case err != nil:
		return nil, err
	case n > 1:
		return c.chatFanOut(ctx, req, n)
	}
	return c.chatOne(ctx, req)
}

// chatOne sends one non-streamed chat completion. The request's stream
// fields are cleared (OpenAI rejects stream_options without stream).
func (c *Client) chatOne(ctx context.Context, req *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error) {
	up := c.forNode(req)
	up.Stream = false
	up.StreamOptions = nil
	out := new(openaiv1.ChatCompletion)
	if err := c.roundTrip(ctx, http.MethodPost, "/chat/completions", up, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Embed creates embeddings. Token-id input is refused before the node is
// asked when its kind takes text only (see takesTokenInput).
func (c *Client) Embed(ctx context.Context, req *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error) {
	if in := req.GetInput(); (in.GetTokens() != nil || in.GetTokenLists() != nil) && !takesTokenInput(c.conn.Kind()) {
		return nil, apierror.Invalid("input", "node %s (kind %s) does not take token ids as embeddings input: send the input as text (a string or an array of strings)",
			c.conn.NodeID(), kindName(c.conn.Kind())).WithNode(c.conn.NodeID())
	}
	out := new(openaiv1.EmbeddingList)
	if err := c.roundTrip(ctx, http.MethodPost, "/embeddings", req, out); err != nil {
		return nil, err
	}
	return out, nil
}

// takesTokenInput says whether a kind's /embeddings takes token ids (an
// array of them, or arrays of arrays) as input. vLLM, llama-server and
// OpenAI do; Ollama answers 400 "invalid input type", and LM Studio
// documents text only.
func takesTokenInput(kind nodev1.Kind) bool {
	switch kind {
	case nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LMSTUDIO:
		return false
	}
	return true
}

// ListModels lists the node's models.
func (c *Client) ListModels(ctx context.Context) (*openaiv1.ModelList, error) {
	out := new(openaiv1.ModelList)
	if err := c.roundTrip(ctx, http.MethodGet, "/models", nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// forNode is a copy of req in the dialect of c's node. Ollama, llama.cpp
// and LM Studio know max_tokens but not OpenAI's newer
// max_completion_tokens, which they would ignore — an answer without its
// limit — so the smaller of the two goes as max_tokens. Ollama ignores
// tool_choice too, so the tools it may call are narrowed to what the
// choice allows (none, or the one named).
func (c *Client) forNode(req *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
	up := proto.CloneOf(req)
	if c.conn.Kind() == nodev1.Kind_KIND_OLLAMA {
		switch tc := up.GetToolChoice(); {
		case tc.GetMode() == "none":
			up.Tools, up.ToolChoice = nil, nil
		case tc.GetFunctionName() != "":
			up.Tools = slices.DeleteFunc(up.Tools, func(t *openaiv1.Tool) bool { return t.GetFunction().GetName() != tc.GetFunctionName() })
		}
	}
	switch c.conn.Kind() {
	case nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO:
		if m := up.MaxCompletionTokens; m != nil {
			if up.MaxTokens == nil || *m < *up.MaxTokens {
				up.MaxTokens = proto.Int32(*m)
			}
			up.MaxCompletionTokens = nil
		}
	}
	return up
}

// ChatStream sends a streamed chat completion and calls send for every
// chunk as soon as it is parsed. stream_options are passed as the caller
// set them, so the node adds a usage chunk only when the caller asked for
// one. It returns nil after the node's [DONE]; an error from send is
// returned as is; a stream that breaks off or carries an error event is an
// *apierror.Error after the chunks already sent. Canceling ctx cancels the
// node request. A stream with n > 1 on a node that gives one choice is
// fanned out (see answersOneChoice).
func (c *Client) ChatStream(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) error {
	n, err := c.fanOut(req)
	switch {
	case err != nil:
		return err
	case n > 1:
		return c.chatStreamFanOut(ctx, req, n, send)
	}
	return c.chatStreamOne(ctx, req, send)
}

// chatStreamOne is ChatStream for one request to the node.
func (c *Client) chatStreamOne(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) error {
	up := c.forNode(req)
	up.Stream = true
	resp, err := c.do(ctx, http.MethodPost, "/chat/completions", up, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return c.relayWhole(ctx, resp, req.GetStreamOptions().GetIncludeUsage(), send)
	}

	return relayEvents(c, ctx, resp.Body, func() *openaiv1.ChatCompletionChunk { return new(openaiv1.ChatCompletionChunk) },
		func(chunk *openaiv1.ChatCompletionChunk) bool {
			for _, ch := range chunk.GetChoices() {
				if ch.GetFinishReason() != "" {
					return true
				}
			}
			return false
		}, send)
}

// relayEvents reads a node's SSE stream of T (chat chunks or text
// completions), calling send for each as soon as it is parsed. finished
// says whether a T ends a choice, after which a missing [DONE] is
// tolerated.
func relayEvents[T proto.Message](c *Client, ctx context.Context, body io.Reader, newT func() T, finishes func(T) bool, send func(T) error) error {
	events := sse.NewReader(body)
	finished := false // a choice reached its finish_reason
	for {
		ev, err := events.Next()
		switch {
		case errors.Is(err, io.EOF) && finished:
			return nil // tolerate a node that omits [DONE] after finishing
		case errors.Is(err, io.EOF):
			return c.conn.BrokenOff(ctx, "the stream ended before [DONE]")
		case errors.Is(err, sse.ErrTooLarge):
			return c.broken(ctx, err.Error())
		case err != nil:
			return c.conn.BodyError(ctx, err)
		}
		if ev.Done() {
			return nil
		}
		if len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		if ev.Type == "error" || bytes.Contains(ev.Data, []byte(`"error"`)) {
			if obj, ok := openaijson.UnmarshalError(ev.Data); ok {
				return c.conn.EventError(obj)
			}
		}
		chunk := newT()
		if err := openaijson.Unmarshal(ev.Data, chunk); err != nil {
			return c.badAnswer("chunk", err)
		}
		if finishes(chunk) {
			finished = true
		}
		if err := send(chunk); err != nil {
			return err
		}
	}
}

// relayWhole handles a node that answered a streamed request with one JSON
// body: an error object is the error, a chat completion is relayed as the
// chunks a stream would have carried.
func (c *Client) relayWhole(ctx context.Context, resp *http.Response, includeUsage bool, send func(*openaiv1.ChatCompletionChunk) error) error {
	data, err := c.readAll(ctx, resp.Body)
	if err != nil {
		return err
	}
	if obj, ok := openaijson.UnmarshalError(data); ok {
		return c.conn.EventError(obj)
	}
	cc := new(openaiv1.ChatCompletion)
	if err := openaijson.Unmarshal(data, cc); err != nil {
		return c.badAnswer("answer (not an event stream)", err)
	}
	for _, chunk := range CompletionChunks(cc, includeUsage) {
		if err := send(chunk); err != nil {
			return err
		}
	}
	return nil
}

// CompletionChunks is a whole completion as stream chunks: one per choice
// with the full message as its delta, then a usage chunk when includeUsage
// and the completion has usage.
func CompletionChunks(cc *openaiv1.ChatCompletion, includeUsage bool) []*openaiv1.ChatCompletionChunk {
	head := func() *openaiv1.ChatCompletionChunk {
		return &openaiv1.ChatCompletionChunk{
			Id: cc.GetId(), Object: "chat.completion.chunk", Created: cc.GetCreated(), Model: cc.GetModel(),
			SystemFingerprint: cc.GetSystemFingerprint(), ServiceTier: cc.GetServiceTier(),
		}
	}
	var out []*openaiv1.ChatCompletionChunk
	for _, ch := range cc.GetChoices() {
		m := ch.GetMessage()
		chunk := head()
		chunk.Choices = []*openaiv1.ChunkChoice{{
			Index: ch.GetIndex(),
			Delta: &openaiv1.ChunkDelta{
				Role: m.GetRole(), Content: m.Content, Refusal: m.Refusal, ToolCalls: m.GetToolCalls(),
				ReasoningContent: m.ReasoningContent,
			},
			FinishReason: ch.GetFinishReason(),
			Logprobs:     ch.GetLogprobs(),
		}}
		out = append(out, chunk)
	}
	if includeUsage && cc.GetUsage() != nil {
		chunk := head()
		chunk.Usage = cc.GetUsage()
		out = append(out, chunk)
	}
	return out
}

// roundTrip sends in (nil for none) and decodes the JSON answer into out.
func (c *Client) roundTrip(ctx context.Context, method, path string, in, out proto.Message) error {
	resp, err := c.do(ctx, method, path, in, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := c.readAll(ctx, resp.Body)
	if err != nil {
		return err
	}
	// Some servers answer 200 with an error object.
	if bytes.Contains(data, []byte(`"error"`)) {
		if obj, ok := openaijson.UnmarshalError(data); ok {
			return c.conn.EventError(obj)
		}
	}
	if err := openaijson.Unmarshal(data, out); err != nil {
		return c.badAnswer("answer", err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in proto.Message, accept string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := openaijson.Marshal(in)
		if err != nil {
			return nil, apierror.New(codes.InvalidArgument, "encode request: %w", err).WithNode(c.conn.NodeID())
		}
		body = bytes.NewReader(b)
	}
	req, err := c.conn.NewRequest(ctx, method, c.api+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	return c.conn.Do(req)
}

func (c *Client) readAll(ctx context.Context, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAnswer+1))
	if err != nil {
		return nil, c.conn.BodyError(ctx, err)
	}
	if len(data) > maxAnswer {
		return nil, apierror.BadAnswer(c.conn.NodeID(), "answer larger than %d MiB", maxAnswer>>20)
	}
	return data, nil
}

// broken is a stream the adapter cannot read on (it is not the node's
// failure to answer: see nodeconn's BrokenOff for that).
func (c *Client) broken(ctx context.Context, why string) error {
	if err := ctx.Err(); err != nil {
		return c.conn.BodyError(ctx, err)
	}
	return apierror.Unavailable(c.conn.NodeID(), "%s", why)
}

func (c *Client) badAnswer(what string, err error) error {
	return apierror.BadAnswer(c.conn.NodeID(), "the node sent an invalid %s: %w", what, err)
}

// ChatFolded answers a non-streamed chat by streaming from the node and
// folding the chunks into one completion (see Fold).
func (c *Client) ChatFolded(ctx context.Context, req *openaiv1.ChatCompletionRequest, firstToken, idle time.Duration) (*openaiv1.ChatCompletion, error) {
	up := proto.CloneOf(req)
	up.Stream = true
	up.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	return Fold(ctx, c.conn.NodeID(), firstToken, idle, func(ctx context.Context, send func(*openaiv1.ChatCompletionChunk) error) error {
		return c.ChatStream(ctx, up, send)
	})
}

// Fold runs stream and folds its chunks into one completion, so that a
// node (nodeID) that sends no first token within firstToken — or, once
// started, goes silent for longer than idle (0: no limit) — fails at once
// as hung (UNAVAILABLE, reason NODE_ANSWER_FAILED) instead of holding the
// caller until its deadline.
func Fold(ctx context.Context, nodeID string, firstToken, idle time.Duration,
	stream func(context.Context, func(*openaiv1.ChatCompletionChunk) error) error) (*openaiv1.ChatCompletion, error) {
	wctx, watch, stop := silence.Start(ctx, firstToken, idle)
	defer stop()
	acc := chatfold.New()
	err := stream(wctx, func(chunk *openaiv1.ChatCompletionChunk) error {
		watch.Arrived()
		acc.Add(chunk)
		watch.Waiting()
		return nil
	})
	if err != nil {
		return nil, silence.NodeError(ctx, wctx, nodeID, firstToken, idle, err)
	}
	return acc.Result(), nil
}
