package routing

import (
	"context"
	"strings"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/telemetry"
	"github.com/llmesh/llmesh/services/router/internal/limits"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Chat answers a non-streamed chat completion. The adapter is given the
// node's first-token and idle timeouts, so a hung node costs that, not the
// whole deadline (the adapter streams from the node and folds the answer).
func (r *Router) Chat(ctx context.Context, req *openaiv1.ChatCompletionRequest) (out *openaiv1.ChatCompletion, err error) {
	ctx, op := r.begin(ctx, telemetry.GenAIOperationChat, "chat", req.GetModel(), false)
	defer func() {
		recordChat(op, out)
		end(op, err)
	}()
	route, req := resolve(r.routes, req)
	if err := r.chatModel(route.Model); err != nil {
		return nil, err
	}
	ctx, cancel := whole(ctx)
	defer cancel()
	err = r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
		start := time.Now()
		l := r.limits.For(c.Node)
		resp, err := r.adapter.Chat(ctx, &adapterv1.ChatRequest{Node: c.Node, Request: req, Timeouts: &adapterv1.CallTimeouts{
			Connect: durationpb.New(l.Connect), FirstToken: durationpb.New(firstTokenLimit(c, l)), Idle: durationpb.New(l.Idle),
		}})
		out = resp.GetCompletion()
		return firstToken(resp.GetFirstToken(), start), err
	})
	return out, err
}

// recordChat records what a chat completion says about itself.
func recordChat(op *observe.Op, c *openaiv1.ChatCompletion) {
	if c == nil {
		return
	}
	finish := make([]string, 0, len(c.GetChoices()))
	for _, ch := range c.GetChoices() {
		finish = append(finish, ch.GetFinishReason())
	}
	op.Response(c.GetId(), c.GetModel(), finish...)
	if u := c.GetUsage(); u != nil {
		op.Usage(u.GetPromptTokens(), u.GetCompletionTokens())
	}
}

// recordChunk records what a streamed chat chunk says about its answer.
func recordChunk(op *observe.Op, c *openaiv1.ChatCompletionChunk, first bool) {
	var finish []string
	for _, ch := range c.GetChoices() {
		finish = append(finish, ch.GetFinishReason())
	}
	if first {
		op.Response(c.GetId(), c.GetModel(), finish...)
	} else if len(finish) > 0 {
		op.Response("", "", finish...)
	}
	if u := c.GetUsage(); u != nil {
		op.Usage(u.GetPromptTokens(), u.GetCompletionTokens())
	}
}

// recordCompletion records what a legacy completion (or a chunk of one)
// says about itself.
func recordCompletion(op *observe.Op, c *openaiv1.Completion, first bool) {
	if c == nil {
		return
	}
	var finish []string
	for _, ch := range c.GetChoices() {
		finish = append(finish, ch.GetFinishReason())
	}
	if first {
		op.Response(c.GetId(), c.GetModel(), finish...)
	} else {
		op.Response("", "", finish...)
	}
	if u := c.GetUsage(); u != nil {
		op.Usage(u.GetPromptTokens(), u.GetCompletionTokens())
	}
}

// firstToken is a node's time to first token for a call answered in one
// message: what the adapter saw, or, when it saw none, the whole call.
func firstToken(adapterSaw *durationpb.Duration, start time.Time) time.Duration {
	total := time.Since(start)
	if adapterSaw == nil {
		return total
	}
	return min(adapterSaw.AsDuration(), total)
}

// Resolve returns where a request for model may go: the model the nodes
// know it by (an alias resolved), and the node group and tier mode it is
// limited to.
func (r *Router) Resolve(model string) modelroutes.Route {
	return r.routes.Resolve(model)
}

// resolve returns where a request for req's model may go, and req asking
// for the model the nodes know (a copy when that differs).
func resolve[R interface {
	proto.Message
	GetModel() string
}](routes *modelroutes.Table, req R) (modelroutes.Route, R) {
	route := routes.Resolve(req.GetModel())
	if route.Model == req.GetModel() {
		return route, req
	}
	out := proto.CloneOf(req)
	out.ProtoReflect().Set(out.ProtoReflect().Descriptor().Fields().ByName("model"), protoreflect.ValueOfString(route.Model))
	return route, out
}

// chatModel refuses a chat for a model every node serving it says is
// embedding-only: no node would answer it, and the client should know
// why rather than see each node's refusal.
func (r *Router) chatModel(model string) error {
	cands := r.table.Snapshot().Candidates(model)
	if len(cands) == 0 {
		return nil // noCandidate explains
	}
	for _, c := range cands {
		if c.Type != nodev1.ModelType_MODEL_TYPE_EMBEDDING {
			return nil
		}
	}
	return apierror.Invalid("model", "The model `%s` is an embedding model: it serves /v1/embeddings, not chat.", apierror.Clip(model)).
		WithErrCode(apierror.ErrCodeModelNotSupported)
}

// firstTokenLimit is how long c may take to its first token: short where
// the model is loaded, long enough for a cold load where it is not.
func firstTokenLimit(c nodetable.Candidate, l limits.Limits) time.Duration {
	if c.Loaded {
		return l.FirstToken
	}
	return l.ColdFirstToken
}

// Embed answers an embeddings request. The node answers it in one piece
// when done, so the adapter bounds the wait for its response with the
// node's first-token timeout (the cold one where the model is not loaded):
// a hung node costs that, is out of rotation, and the request moves on.
func (r *Router) Embed(ctx context.Context, req *openaiv1.EmbeddingRequest) (out *openaiv1.EmbeddingList, err error) {
	ctx, op := r.begin(ctx, telemetry.GenAIOperationEmbeddings, "embeddings", req.GetModel(), false)
	defer func() {
		if out != nil {
			op.Response("", out.GetModel())
			if u := out.GetUsage(); u != nil {
				op.Usage(u.GetPromptTokens(), 0)
			}
		}
		end(op, err)
	}()
	route, req := resolve(r.routes, req)
	ctx, cancel := whole(ctx)
	defer cancel()
	err = r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
		start := time.Now()
		l := r.limits.For(c.Node)
		resp, err := r.adapter.Embed(ctx, &adapterv1.EmbedRequest{Node: c.Node, Request: req, Timeouts: &adapterv1.CallTimeouts{
			Connect: durationpb.New(l.Connect), FirstToken: durationpb.New(firstTokenLimit(c, l)),
		}})
		out = resp.GetEmbeddings()
		return time.Since(start), err
	})
	return out, err
}

// ChatStream answers a streamed chat completion, calling send for every
// chunk in order. A node that fails before its first chunk is replaced by
// the next candidate; a failure after it is returned as is.
func (r *Router) ChatStream(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) (err error) {
	ctx, op := r.begin(ctx, telemetry.GenAIOperationChat, "chat_stream", req.GetModel(), true)
	defer func() { end(op, err) }()
	route, req := resolve(r.routes, req)
	if err := r.chatModel(route.Model); err != nil {
		return err
	}
	return streamTry(r, ctx, route, true, func(ctx context.Context, c nodetable.Candidate, t *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[adapterv1.ChatStreamResponse], error) {
		return r.adapter.ChatStream(ctx, &adapterv1.ChatStreamRequest{Node: c.Node, Request: req, Timeouts: t})
	}, func(m *adapterv1.ChatStreamResponse, first bool) error {
		if first {
			ensureRole(m.GetChunk())
		}
		recordChunk(op, m.GetChunk(), first)
		return send(m.GetChunk())
	})
}

// Complete answers a non-streamed legacy completion, with the same
// first-token bound per attempt as Chat.
func (r *Router) Complete(ctx context.Context, req *openaiv1.CompletionRequest) (out *openaiv1.Completion, err error) {
	ctx, op := r.begin(ctx, telemetry.GenAIOperationTextComplete, "text_completion", req.GetModel(), false)
	defer func() {
		recordCompletion(op, out, true)
		end(op, err)
	}()
	route, req := resolve(r.routes, req)
	ctx, cancel := whole(ctx)
	defer cancel()
	err = r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
		start := time.Now()
		resp, err := r.adapter.Complete(ctx, &adapterv1.CompleteRequest{Node: c.Node, Request: req, Timeouts: r.unaryTimeouts(c)})
		out = resp.GetCompletion()
		return firstToken(resp.GetFirstToken(), start), err
	})
	return out, err
}

// unaryTimeouts are the adapter's timeouts for a non-streamed call on c:
// the adapter streams from the node and watches first token and silence.
func (r *Router) unaryTimeouts(c nodetable.Candidate) *adapterv1.CallTimeouts {
	l := r.limits.For(c.Node)
	return &adapterv1.CallTimeouts{Connect: durationpb.New(l.Connect), FirstToken: durationpb.New(firstTokenLimit(c, l)), Idle: durationpb.New(l.Idle)}
}

// CompleteStream answers a streamed legacy completion like ChatStream.
func (r *Router) CompleteStream(ctx context.Context, req *openaiv1.CompletionRequest, send func(*openaiv1.Completion) error) (err error) {
	ctx, op := r.begin(ctx, telemetry.GenAIOperationTextComplete, "text_completion_stream", req.GetModel(), true)
	defer func() { end(op, err) }()
	route, req := resolve(r.routes, req)
	return streamTry(r, ctx, route, true, func(ctx context.Context, c nodetable.Candidate, t *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[adapterv1.CompleteStreamResponse], error) {
		return r.adapter.CompleteStream(ctx, &adapterv1.CompleteStreamRequest{Node: c.Node, Request: req, Timeouts: t})
	}, func(m *adapterv1.CompleteStreamResponse, first bool) error {
		recordCompletion(op, m.GetChunk(), first)
		return send(m.GetChunk())
	})
}

// Ollama answers a request of Ollama's native API (body, for endpoint) for
// model, calling send with each JSON object of the answer. Routing and
// failover are those of ChatStream, and so are the first-token and idle
// bounds when streamed (an NDJSON chat or generate); other answers come
// as one object when done: the adapter bounds the wait for the node's
// response with the first-token timeout, and the total timeout the rest.
// The adapter speaks Ollama to Ollama nodes and translates for the others.
// An alias in model is resolved for routing; body must already name the
// model the alias stands for (the Ollama edge rewrites it, see Resolve).
func (r *Router) Ollama(ctx context.Context, model string, endpoint adapterv1.OllamaEndpoint, streamed bool, body []byte, send func([]byte) error) (err error) {
	ctx, op := r.begin(ctx, ollamaOperation(endpoint), "ollama_"+strings.ToLower(strings.TrimPrefix(endpoint.String(), "OLLAMA_ENDPOINT_")), model, streamed)
	defer func() { end(op, err) }()
	if !streamed {
		var cancel context.CancelFunc
		ctx, cancel = whole(ctx)
		defer cancel()
	}
	route := r.routes.Resolve(model)
	return streamTry(r, ctx, route, streamed, func(ctx context.Context, c nodetable.Candidate, _ *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[adapterv1.OllamaResponse], error) {
		// The adapter folds non-streamed answers itself, so it is given
		// the first-token bound as for a unary call.
		return r.adapter.Ollama(ctx, &adapterv1.OllamaRequest{Node: c.Node, Endpoint: endpoint, Body: body, Timeouts: r.unaryTimeouts(c),
			ModelType: c.Type})
	}, func(m *adapterv1.OllamaResponse, _ bool) error { return send(m.GetObject()) })
}

// ollamaOperation is the GenAI operation of an Ollama endpoint.
func ollamaOperation(e adapterv1.OllamaEndpoint) string {
	switch e {
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE:
		return telemetry.GenAIOperationTextComplete
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS:
		return telemetry.GenAIOperationEmbeddings
	}
	return telemetry.GenAIOperationChat
}

// ensureRole makes the first delta carry the role, as OpenAI's does, for
// nodes that leave it out.
func ensureRole(c *openaiv1.ChatCompletionChunk) {
	for _, ch := range c.GetChoices() {
		if ch.GetDelta() == nil {
			ch.Delta = &openaiv1.ChunkDelta{}
		}
		if ch.Delta.GetRole() == "" {
			ch.Delta.Role = "assistant"
		}
	}
}
