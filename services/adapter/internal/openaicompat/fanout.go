package openaicompat

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// MaxChoices is the largest n a chat may ask for (OpenAI's own limit).
const MaxChoices = 128

// Ollama's /v1 ignores n and answers with one choice, llama.cpp's
// llama-server refuses any n but 1, and LM Studio ignores it. For these
// kinds a chat with n > 1 is fanned out: n requests with n left out, run
// concurrently, their choices merged as choices 0..n-1 of one answer with
// the usage summed. A seed is moved by the choice's index, so the choices
// differ yet a seeded request stays reproducible.
func answersOneChoice(kind nodev1.Kind) bool {
	switch kind {
	case nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO:
		return true
	}
	return false
}

// fanOut is how many requests req takes on c's node: n when the node
// answers one choice per request and n > 1, else 1.
func (c *Client) fanOut(req *openaiv1.ChatCompletionRequest) (int, error) {
	n := int(req.GetN())
	if req.N == nil || n == 1 || !answersOneChoice(c.conn.Kind()) {
		return 1, nil
	}
	if n < 1 || n > MaxChoices {
		return 0, &apierror.Error{Code: codes.InvalidArgument, Type: "invalid_request_error", Param: "n", Node: c.conn.NodeID(),
			Message: fmt.Sprintf("n must be between 1 and %d", MaxChoices)}
	}
	return n, nil
}

// choiceRequest is the request for choice i of a fan-out.
func choiceRequest(req *openaiv1.ChatCompletionRequest, i int) *openaiv1.ChatCompletionRequest {
	up := proto.CloneOf(req)
	up.N = nil
	if up.Seed != nil {
		up.Seed = proto.Int64(*up.Seed + int64(i))
	}
	return up
}

// runAll runs do(ctx, i) for i in 0..n-1 concurrently. The first failure
// cancels the rest and is returned, rather than the cancellations it
// caused.
func runAll(ctx context.Context, n int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		wg.Go(func() {
			if err := do(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// chatFanOut answers a non-streamed chat with n one-choice requests.
func (c *Client) chatFanOut(ctx context.Context, req *openaiv1.ChatCompletionRequest, n int) (*openaiv1.ChatCompletion, error) {
	answers := make([]*openaiv1.ChatCompletion, n)
	err := runAll(ctx, n, func(ctx context.Context, i int) error {
		cc, err := c.chatOne(ctx, choiceRequest(req, i))
		answers[i] = cc
		return err
	})
	if err != nil {
		return nil, err
	}
	out := answers[0]
	var choices []*openaiv1.ChatCompletionChoice
	var usage *openaiv1.Usage
	for _, cc := range answers {
		for _, ch := range cc.GetChoices() {
			ch.Index = int32(len(choices))
			choices = append(choices, ch)
		}
		usage = addUsage(usage, cc.GetUsage())
	}
	out.Choices, out.Usage = choices, usage
	return out, nil
}

// chatStreamFanOut streams n one-choice streams as one: choice i's chunks
// carry index i and the first chunk's id, sends are serialized, and the
// streams' usage chunks are withheld and sent summed as one after all
// ended.
func (c *Client) chatStreamFanOut(ctx context.Context, req *openaiv1.ChatCompletionRequest, n int, send func(*openaiv1.ChatCompletionChunk) error) error {
	var (
		mu    sync.Mutex
		id    string
		usage *openaiv1.Usage
		last  *openaiv1.ChatCompletionChunk
	)
	err := runAll(ctx, n, func(ctx context.Context, i int) error {
		return c.chatStreamOne(ctx, choiceRequest(req, i), func(chunk *openaiv1.ChatCompletionChunk) error {
			mu.Lock()
			defer mu.Unlock()
			if id == "" {
				id = chunk.GetId()
			}
			chunk.Id = id
			for _, ch := range chunk.GetChoices() {
				ch.Index = int32(i)
			}
			if u := chunk.GetUsage(); u != nil {
				usage = addUsage(usage, u)
				chunk.Usage = nil
			}
			last = chunk
			if len(chunk.GetChoices()) == 0 {
				return nil // a usage chunk, sent summed at the end
			}
			return send(chunk)
		})
	})
	if err != nil || usage == nil {
		return err
	}
	return send(&openaiv1.ChatCompletionChunk{
		Id: id, Object: "chat.completion.chunk", Created: last.GetCreated(), Model: last.GetModel(),
		SystemFingerprint: last.GetSystemFingerprint(), ServiceTier: last.GetServiceTier(),
		Choices: []*openaiv1.ChunkChoice{}, Usage: usage,
	})
}

// addUsage adds u to sum (nil: none yet), details included when either
// has them.
func addUsage(sum, u *openaiv1.Usage) *openaiv1.Usage {
	if u == nil {
		return sum
	}
	if sum == nil {
		return proto.CloneOf(u)
	}
	sum.PromptTokens += u.GetPromptTokens()
	sum.CompletionTokens += u.GetCompletionTokens()
	sum.TotalTokens += u.GetTotalTokens()
	if d := u.GetPromptTokensDetails(); d != nil {
		if sum.PromptTokensDetails == nil {
			sum.PromptTokensDetails = &openaiv1.PromptTokensDetails{}
		}
		sum.PromptTokensDetails.CachedTokens += d.GetCachedTokens()
	}
	if d := u.GetCompletionTokensDetails(); d != nil {
		if sum.CompletionTokensDetails == nil {
			sum.CompletionTokensDetails = &openaiv1.CompletionTokensDetails{}
		}
		sum.CompletionTokensDetails.ReasoningTokens += d.GetReasoningTokens()
	}
	return sum
}
