package openaicompat

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// MaxChoices is the largest n a request may ask for (OpenAI's own limit).
const MaxChoices = 128

// MaxFanOut bounds the requests one completion is fanned out into (its
// prompts times n), and maxParallel how many of them run at once.
const (
	MaxFanOut   = 1024
	maxParallel = 16
)

// Ollama's /v1 ignores n and answers with one choice, llama.cpp's
// llama-server refuses any n but 1, and LM Studio ignores it; for legacy
// completions Ollama also refuses a prompt array, and the other two are
// not known to take one. For these kinds a request that asks for more than
// one choice is fanned out: one request per (prompt, i < n) with n left
// out, run concurrently, their choices merged into one answer with the
// usage summed. A seed is moved by i, so the choices for a prompt differ
// yet a seeded request stays reproducible.
func answersOneChoice(kind nodev1.Kind) bool {
	switch kind {
	case nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO:
		return true
	}
	return false
}

// choicesPerPrompt is how many one-choice requests each prompt takes on
// c's node: n when the node answers one choice per request, else 1 (the
// node is sent n itself).
func (c *Client) choicesPerPrompt(n *int32) (int, error) {
	if n == nil || *n == 1 || !answersOneChoice(c.conn.Kind()) {
		return 1, nil
	}
	if *n < 1 || *n > MaxChoices {
		return 0, apierror.Invalid("n", "n must be between 1 and %d", MaxChoices).WithNode(c.conn.NodeID())
	}
	return int(*n), nil
}

// fanOut is how many requests a chat takes on c's node (1: not fanned out).
func (c *Client) fanOut(req *openaiv1.ChatCompletionRequest) (int, error) {
	return c.choicesPerPrompt(req.N)
}

// choiceRequest is the request for choice i of a chat fan-out.
func choiceRequest(req *openaiv1.ChatCompletionRequest, i int) *openaiv1.ChatCompletionRequest {
	up := proto.CloneOf(req)
	up.N = nil
	up.Seed = movedSeed(up.Seed, i)
	return up
}

// movedSeed is the seed of choice i of a fan-out (nil: none).
func movedSeed(seed *int64, i int) *int64 {
	if seed == nil {
		return nil
	}
	return proto.Int64(*seed + int64(i))
}

// completionRequests are the requests a legacy completion takes on c's
// node, in OpenAI's choice order (prompt p's choice i is choice p*n+i);
// nil when the node is sent req as is.
func (c *Client) completionRequests(req *openaiv1.CompletionRequest) ([]*openaiv1.CompletionRequest, error) {
	n, err := c.choicesPerPrompt(req.N)
	if err != nil {
		return nil, err
	}
	prompts := len(req.GetPrompt())
	if !answersOneChoice(c.conn.Kind()) || (n == 1 && prompts <= 1) {
		return nil, nil
	}
	if prompts*n > MaxFanOut {
		return nil, apierror.Invalid("prompt", "%d prompts with n %d are %d choices; a %s node takes one prompt per request, so at most %d are served: send fewer prompts per request",
			prompts, n, prompts*n, kindName(c.conn.Kind()), MaxFanOut).WithNode(c.conn.NodeID())
	}
	var out []*openaiv1.CompletionRequest
	for _, prompt := range req.GetPrompt() {
		for i := range n {
			up := proto.CloneOf(req)
			up.Prompt = []string{prompt}
			up.N = nil
			up.Seed = movedSeed(up.Seed, i)
			out = append(out, up)
		}
	}
	return out, nil
}

// runAll runs do(ctx, i) for i in 0..n-1, at most maxParallel at a time.
// The first failure cancels the rest and is returned, rather than the
// cancellations it caused.
func runAll(ctx context.Context, n int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	slots := make(chan struct{}, maxParallel)
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := do(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's cancellation, if any
	}
	return first
}

// collect runs one(ctx, i) for i in 0..n-1 as runAll does and returns the
// answers in order.
func collect[T any](ctx context.Context, n int, one func(ctx context.Context, i int) (T, error)) ([]T, error) {
	answers := make([]T, n)
	err := runAll(ctx, n, func(ctx context.Context, i int) error {
		a, err := one(ctx, i)
		answers[i] = a
		return err
	})
	if err != nil {
		return nil, err
	}
	return answers, nil
}

// chatFanOut answers a non-streamed chat with n one-choice requests.
func (c *Client) chatFanOut(ctx context.Context, req *openaiv1.ChatCompletionRequest, n int) (*openaiv1.ChatCompletion, error) {
	answers, err := collect(ctx, n, func(ctx context.Context, i int) (*openaiv1.ChatCompletion, error) {
		return c.chatOne(ctx, choiceRequest(req, i))
	})
	if err != nil {
		return nil, err
	}
	out := answers[0]
	out.Choices, out.Usage = merged(answers, (*openaiv1.ChatCompletion).GetChoices,
		func(ch *openaiv1.ChatCompletionChoice, i int32) { ch.Index = i })
	return out, nil
}

// merged puts the choices of the answers together in order, numbered from
// 0, and sums the answers' usage.
func merged[A interface{ GetUsage() *openaiv1.Usage }, C any](answers []A, choicesOf func(A) []C, number func(C, int32)) ([]C, *openaiv1.Usage) {
	var choices []C
	var usage *openaiv1.Usage
	for _, a := range answers {
		for _, ch := range choicesOf(a) {
			number(ch, int32(len(choices)))
			choices = append(choices, ch)
		}
		usage = addUsage(usage, a.GetUsage())
	}
	return choices, usage
}

// completeFanOut answers a non-streamed completion with one request per
// choice.
func (c *Client) completeFanOut(ctx context.Context, reqs []*openaiv1.CompletionRequest) (*openaiv1.Completion, error) {
	answers, err := collect(ctx, len(reqs), func(ctx context.Context, i int) (*openaiv1.Completion, error) {
		return c.completeOne(ctx, reqs[i])
	})
	if err != nil {
		return nil, err
	}
	out := answers[0]
	out.Choices, out.Usage = merged(answers, (*openaiv1.Completion).GetChoices,
		func(ch *openaiv1.CompletionChoice, i int32) { ch.Index = i })
	return out, nil
}

// streamMerge streams n one-choice streams as one: stream i's chunks are
// retagged with the first chunk's id and choice index i, sends are
// serialized, and the streams' usage is withheld and sent summed in one
// chunk (made by usageChunk from the last chunk seen) after all ended.
type streamMerge[T proto.Message] struct {
	// retag sets chunk's id and its choices' index, takes its usage out
	// and says whether it has choices to send.
	retag func(chunk T, id string, index int32) (usage *openaiv1.Usage, hasChoices bool)
	// id is a chunk's id.
	id func(T) string
	// usageChunk is the closing chunk with the summed usage.
	usageChunk func(last T, id string, usage *openaiv1.Usage) T
}

func (m streamMerge[T]) run(ctx context.Context, n int, stream func(ctx context.Context, i int, send func(T) error) error, send func(T) error) error {
	var (
		mu    sync.Mutex
		id    string
		usage *openaiv1.Usage
		last  T
	)
	err := runAll(ctx, n, func(ctx context.Context, i int) error {
		return stream(ctx, i, func(chunk T) error {
			mu.Lock()
			defer mu.Unlock()
			if id == "" {
				id = m.id(chunk)
			}
			u, hasChoices := m.retag(chunk, id, int32(i))
			usage = addUsage(usage, u)
			last = chunk
			if !hasChoices {
				return nil // a usage chunk, sent summed at the end
			}
			return send(chunk)
		})
	})
	if err != nil || usage == nil {
		return err
	}
	return send(m.usageChunk(last, id, usage))
}

var chatMerge = streamMerge[*openaiv1.ChatCompletionChunk]{
	id: (*openaiv1.ChatCompletionChunk).GetId,
	retag: func(chunk *openaiv1.ChatCompletionChunk, id string, index int32) (*openaiv1.Usage, bool) {
		chunk.Id = id
		for _, ch := range chunk.GetChoices() {
			ch.Index = index
		}
		u := chunk.GetUsage()
		chunk.Usage = nil
		return u, len(chunk.GetChoices()) > 0
	},
	usageChunk: func(last *openaiv1.ChatCompletionChunk, id string, usage *openaiv1.Usage) *openaiv1.ChatCompletionChunk {
		return &openaiv1.ChatCompletionChunk{
			Id: id, Object: "chat.completion.chunk", Created: last.GetCreated(), Model: last.GetModel(),
			SystemFingerprint: last.GetSystemFingerprint(), ServiceTier: last.GetServiceTier(),
			Choices: []*openaiv1.ChunkChoice{}, Usage: usage,
		}
	},
}

var completionMerge = streamMerge[*openaiv1.Completion]{
	id: (*openaiv1.Completion).GetId,
	retag: func(chunk *openaiv1.Completion, id string, index int32) (*openaiv1.Usage, bool) {
		chunk.Id = id
		for _, ch := range chunk.GetChoices() {
			ch.Index = index
		}
		u := chunk.GetUsage()
		chunk.Usage = nil
		return u, len(chunk.GetChoices()) > 0
	},
	usageChunk: func(last *openaiv1.Completion, id string, usage *openaiv1.Usage) *openaiv1.Completion {
		return &openaiv1.Completion{
			Id: id, Object: "text_completion", Created: last.GetCreated(), Model: last.GetModel(),
			SystemFingerprint: last.GetSystemFingerprint(), Choices: []*openaiv1.CompletionChoice{}, Usage: usage,
		}
	},
}

// chatStreamFanOut streams n one-choice chat streams as one (see
// streamMerge).
func (c *Client) chatStreamFanOut(ctx context.Context, req *openaiv1.ChatCompletionRequest, n int, send func(*openaiv1.ChatCompletionChunk) error) error {
	return chatMerge.run(ctx, n, func(ctx context.Context, i int, send func(*openaiv1.ChatCompletionChunk) error) error {
		return c.chatStreamOne(ctx, choiceRequest(req, i), send)
	}, send)
}

// completeStreamFanOut streams one-choice completion streams as one,
// request i's choice as choice i (see streamMerge).
func (c *Client) completeStreamFanOut(ctx context.Context, reqs []*openaiv1.CompletionRequest, send func(*openaiv1.Completion) error) error {
	return completionMerge.run(ctx, len(reqs), func(ctx context.Context, i int, send func(*openaiv1.Completion) error) error {
		return c.completeStreamOne(ctx, reqs[i], send)
	}, send)
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

// kindName is a kind as node specs spell it: "ollama", "llamacpp".
func kindName(k nodev1.Kind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}
