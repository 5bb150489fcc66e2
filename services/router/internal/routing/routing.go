// Package routing picks the LLM node for a request and calls it through an
// adapter, moving on to the next candidate when a node fails before it has
// produced anything. Once a streamed answer has started it never retries:
// the client would see duplicated output.
package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/affinity"
	"github.com/llmesh/llmesh/services/router/internal/limits"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultMaxAttempts is how many nodes one request may try.
const DefaultMaxAttempts = 3

// Router sends requests to nodes from a table through an adapter.
type Router struct {
	table       *nodetable.Table
	adapter     adapterv1.AdapterServiceClient
	maxAttempts int
	policy      policy.Policy
	stats       *nodestats.Stats
	limits      limits.Set
	routes      *modelroutes.Table
	queue       Queue
	failed      func(nodeID, reason string)
	sessions    *affinity.Table
	waiting     atomic.Int64  // requests waiting for a free node
	turn        atomic.Uint64 // advances per request, for round robin
}

// Queue bounds waiting for a free node when every candidate is at its
// in-flight cap. At most Size requests wait (0: none; a request that finds
// every node full is refused at once). A waiting request goes as soon as a
// slot frees, and waits as long as its own deadline (a gRPC deadline, or
// the client's timeout from the edge, see WithClientTimeout) and its first-
// token budget allow — the longest first-token limit among its candidates,
// the cold one where the model is not loaded: a request the nodes would
// have queued themselves is not turned away sooner than they would have
// answered it. Wait, when positive, caps the wait further; 0 is no cap
// beyond those. Only a full queue, or that cap, is RESOURCE_EXHAUSTED (429
// with Retry-After); a spent first-token budget is UNAVAILABLE (503) and a
// spent client deadline DEADLINE_EXCEEDED.
type Queue struct {
	Size int
	Wait time.Duration
}

// Options tune a Router; the zero value is the default.
type Options struct {
	MaxAttempts int              // nodes one request may try; ≤ 0 means DefaultMaxAttempts
	Policy      policy.Policy    // nil means policy.PowerOfTwo
	Stats       *nodestats.Stats // nil means fresh stats with the default breaker cool-down
	// Limits are the timeouts and in-flight caps per node; nil means
	// limits.Defaults(). When every candidate is at its cap the request
	// waits in Queue (see there), and is refused with RESOURCE_EXHAUSTED
	// (429 with Retry-After) when the queue is full — never queued
	// without bound.
	Limits *limits.Set
	// Routes resolve requested model names (aliases, node groups, tier
	// modes); nil resolves every name to itself.
	Routes *modelroutes.Table
	Queue  Queue
	// OnNodeFailed, when set, hears of every node that refused, dropped or
	// hung a request, or broke off its answer (e.g. to tell healthmon). It
	// must not block.
	OnNodeFailed func(nodeID, reason string)
	// Sessions remembers each session's node; nil means a table with the
	// affinity defaults.
	Sessions *affinity.Table
}

// New returns a Router.
func New(table *nodetable.Table, adapter adapterv1.AdapterServiceClient, opts Options) *Router {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Policy == nil {
		opts.Policy = policy.PowerOfTwo
	}
	if opts.Stats == nil {
		opts.Stats = nodestats.New(0, nil)
	}
	if opts.Limits == nil {
		l := limits.Defaults()
		opts.Limits = &l
	}
	if opts.Routes == nil {
		opts.Routes = &modelroutes.Table{}
	}
	if opts.Sessions == nil {
		opts.Sessions = affinity.New(0, 0, nil)
	}
	return &Router{table: table, adapter: adapter, maxAttempts: opts.MaxAttempts, policy: opts.Policy, stats: opts.Stats,
		limits: *opts.Limits, routes: opts.Routes, queue: opts.Queue, failed: opts.OnNodeFailed, sessions: opts.Sessions}
}

type sessionKey struct{}

// WithSessionKey marks ctx's request as part of a session: requests with
// the same key go to the same node while it is healthy.
func WithSessionKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, key)
}

type clientDeadlineKey struct{}

// clientDeadline is when the client gives up waiting for the answer to
// start, and the timeout it said.
type clientDeadline struct {
	at      time.Time
	timeout time.Duration
}

// WithClientTimeout says ctx's client gives up when no answer has started
// within timeout (e.g. the OpenAI SDKs' x-stainless-timeout): the request
// waits for a free node at most that long, is not sent to a node after
// it, and a non-streamed answer — which starts only when it is complete —
// is bounded by it. A streamed answer that has started is not: the SDKs'
// timeout covers the wait for the response to begin. timeout ≤ 0 changes
// nothing.
func WithClientTimeout(ctx context.Context, timeout time.Duration) context.Context {
	if timeout <= 0 {
		return ctx
	}
	return context.WithValue(ctx, clientDeadlineKey{}, clientDeadline{at: time.Now().Add(timeout), timeout: timeout})
}

// whole bounds ctx by its client's timeout, for answers that reach the
// client only when complete.
func whole(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Value(clientDeadlineKey{}).(clientDeadline)
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, d.at)
}

// clientGone is the error for a request whose client's timeout passed
// before a node took it.
func clientGone(ctx context.Context, model string) error {
	d, ok := ctx.Value(clientDeadlineKey{}).(clientDeadline)
	if !ok || time.Now().Before(d.at) {
		return nil
	}
	return &apierror.Error{Code: codes.DeadlineExceeded, Reason: apierror.ReasonMesh,
		Message: fmt.Sprintf("no node serving model %q took the request within the client's timeout of %s", apierror.Clip(model), d.timeout)}
}

// Chat answers a non-streamed chat completion. The adapter is given the
// node's first-token and idle timeouts, so a hung node costs that, not the
// whole deadline (the adapter streams from the node and folds the answer).
func (r *Router) Chat(ctx context.Context, req *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error) {
	route, req := resolve(r.routes, req)
	if err := r.chatModel(route.Model); err != nil {
		return nil, err
	}
	ctx, cancel := whole(ctx)
	defer cancel()
	var out *openaiv1.ChatCompletion
	err := r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
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

// firstToken is a node's time to first token for a call answered in one
// message: what the adapter saw, or, when it saw none, the whole call.
func firstToken(adapterSaw *durationpb.Duration, start time.Time) time.Duration {
	total := time.Since(start)
	if adapterSaw == nil {
		return total
	}
	return min(adapterSaw.AsDuration(), total)
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
	return &apierror.Error{Code: codes.InvalidArgument, Type: "invalid_request_error", Param: "model", ErrCode: "model_not_supported",
		Reason:  apierror.ReasonMesh,
		Message: fmt.Sprintf("The model `%s` is an embedding model: it serves /v1/embeddings, not chat.", apierror.Clip(model))}
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
func (r *Router) Embed(ctx context.Context, req *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error) {
	route, req := resolve(r.routes, req)
	ctx, cancel := whole(ctx)
	defer cancel()
	var out *openaiv1.EmbeddingList
	err := r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
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
func (r *Router) ChatStream(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) error {
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
		return send(m.GetChunk())
	})
}

// Complete answers a non-streamed legacy completion, with the same
// first-token bound per attempt as Chat.
func (r *Router) Complete(ctx context.Context, req *openaiv1.CompletionRequest) (*openaiv1.Completion, error) {
	route, req := resolve(r.routes, req)
	ctx, cancel := whole(ctx)
	defer cancel()
	var out *openaiv1.Completion
	err := r.try(ctx, route, nil, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
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
func (r *Router) CompleteStream(ctx context.Context, req *openaiv1.CompletionRequest, send func(*openaiv1.Completion) error) error {
	route, req := resolve(r.routes, req)
	return streamTry(r, ctx, route, true, func(ctx context.Context, c nodetable.Candidate, t *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[adapterv1.CompleteStreamResponse], error) {
		return r.adapter.CompleteStream(ctx, &adapterv1.CompleteStreamRequest{Node: c.Node, Request: req, Timeouts: t})
	}, func(m *adapterv1.CompleteStreamResponse, _ bool) error { return send(m.GetChunk()) })
}

// Ollama answers a request of Ollama's native API (body, for endpoint) for
// model, calling send with each JSON object of the answer. Routing and
// failover are those of ChatStream, and so are the first-token and idle
// bounds when streamed (an NDJSON chat or generate); other answers come
// as one object when done: the adapter bounds the wait for the node's
// response with the first-token timeout, and the total timeout the rest.
// The adapter speaks Ollama to Ollama nodes and translates for the others.
// An alias in model is resolved and the body rewritten to name the model.
func (r *Router) Ollama(ctx context.Context, model string, endpoint adapterv1.OllamaEndpoint, streamed bool, body []byte, send func([]byte) error) error {
	if !streamed {
		var cancel context.CancelFunc
		ctx, cancel = whole(ctx)
		defer cancel()
	}
	route := r.routes.Resolve(model)
	if route.Model != model {
		var err error
		if body, err = renameModel(body, route.Model); err != nil {
			return err
		}
	}
	return streamTry(r, ctx, route, streamed, func(ctx context.Context, c nodetable.Candidate, _ *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[adapterv1.OllamaResponse], error) {
		// The adapter folds non-streamed answers itself, so it is given
		// the first-token bound as for a unary call.
		return r.adapter.Ollama(ctx, &adapterv1.OllamaRequest{Node: c.Node, Endpoint: endpoint, Body: body, Timeouts: r.unaryTimeouts(c),
			ModelType: c.Type})
	}, func(m *adapterv1.OllamaResponse, _ bool) error { return send(m.GetObject()) })
}

// renameModel sets the model of an Ollama request body (and its older
// "name", for /api/show) to model.
func renameModel(body []byte, model string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, &apierror.Error{Code: codes.InvalidArgument, Message: "body is not a JSON object: " + err.Error()}
	}
	name, _ := json.Marshal(model)
	obj["model"] = name
	if _, ok := obj["name"]; ok {
		obj["name"] = name
	}
	return json.Marshal(obj)
}

// streamTry runs a streamed call on the candidates for route until one
// has started (then its failure is final) or none is left.
func streamTry[T any](r *Router, ctx context.Context, route modelroutes.Route, watched bool, open func(context.Context, nodetable.Candidate, *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[T], error), each func(msg *T, first bool) error) error {
	ans := &answer{}
	return r.try(ctx, route, ans, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
		ttft, _, err := streamAttempt(r, ctx, c, watched, open, func(m *T) error {
			first, ok := ans.deliver()
			if !ok {
				return errMoved
			}
			return each(m, first)
		})
		return ttft, err
	})
}

// answer is what of one request's answer has reached its client: nothing
// yet, or its start — after which it is never retried nor moved (the
// client would see duplicated output). A request's attempts run one after
// another; its current one may be moved off its node by another goroutine
// (see attemptNode) as long as nothing has been delivered.
type answer struct {
	mu      sync.Mutex
	started bool // a message reached the client
	moved   bool // the current attempt was moved off its node
}

// deliver marks the answer started before its first message goes to the
// client. first says this is that first message; ok is false when the
// current attempt has been moved off its node: then nothing is sent.
func (a *answer) deliver() (first, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.started:
		return false, true
	case a.moved:
		return false, false
	}
	a.started = true
	return true, true
}

// move marks the current attempt moved, unless the answer has started.
func (a *answer) move() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return false
	}
	a.moved = true
	return true
}

// next readies a for another attempt.
func (a *answer) next() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.moved = false
}

// retryable says whether another attempt may follow: the client has seen
// nothing yet.
func (a *answer) retryable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.started
}

var (
	errNoFirstToken = errors.New("no first token in time")
	errIdle         = errors.New("silent for too long")
	// errNodeLeft cancels an attempt whose node left rotation for not
	// answering while the attempt had delivered nothing.
	errNodeLeft = errors.New("the node left rotation for not answering")
	// errMoved is what delivering the first message says when the
	// attempt has just been moved off its node.
	errMoved = errors.New("attempt moved to another node")
)

// streamAttempt runs one streamed attempt on c, calling each for every
// message. When watched, a node that sends no first message within its
// first-token timeout, or then goes silent for longer than its idle
// timeout, fails as hung; calls whose one message comes when the whole
// answer is done (the adapter bounds those itself) are not watched. sent
// says whether any message reached each.
func streamAttempt[T any](r *Router, ctx context.Context, c nodetable.Candidate, watched bool, open func(context.Context, nodetable.Candidate, *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[T], error), each func(*T) error) (ttft time.Duration, sent bool, err error) {
	attemptCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil) // ends the adapter stream of a failed attempt
	l := r.limits.For(c.Node)
	first := firstTokenLimit(c, l)
	watch := time.AfterFunc(first, func() { cancel(errNoFirstToken) })
	if !watched {
		watch.Stop()
	}
	defer func() { watch.Stop() }()
	start := time.Now()
	stream, err := open(attemptCtx, c, &adapterv1.CallTimeouts{Connect: durationpb.New(l.Connect)})
	if err != nil {
		return 0, false, err
	}
	// hung names a node that stopped answering: out of rotation until a
	// trial request succeeds.
	hung := func(err error) error {
		if ctx.Err() != nil {
			return err
		}
		switch cause := context.Cause(attemptCtx); {
		case errors.Is(cause, errNoFirstToken):
			return &apierror.Error{Code: codes.Unavailable, Node: c.Node.GetId(), Reason: apierror.ReasonAnswerFailed,
				Message: fmt.Sprintf("no first token within %s", first)}
		case errors.Is(cause, errIdle):
			return &apierror.Error{Code: codes.Unavailable, Node: c.Node.GetId(), Reason: apierror.ReasonAnswerFailed,
				Message: fmt.Sprintf("silent for %s in the middle of an answer", l.Idle)}
		}
		return err
	}
	msg, err := stream.Recv()
	watch.Stop()
	ttft = time.Since(start)
	if errors.Is(err, io.EOF) {
		return ttft, false, nil
	}
	if err != nil {
		return 0, false, hung(err)
	}
	for {
		// Only the node's silence counts: a client slow to take a chunk
		// holds each, and that is not the node's fault.
		if err := each(msg); err != nil {
			return ttft, true, err
		}
		if watched {
			watch = time.AfterFunc(l.Idle, func() { cancel(errIdle) })
		}
		msg, err = stream.Recv()
		watch.Stop()
		if errors.Is(err, io.EOF) {
			return ttft, true, nil
		}
		if err != nil {
			return ttft, true, hung(err)
		}
	}
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

// failure is one node's failed attempt.
type failure struct {
	node  string
	err   *apierror.Error
	moved bool // moved off the node when it left rotation, not failed there
}

// try runs attempt on candidates for model until one succeeds, the error
// is not worth another node, or attempts run out. ans, when given, says
// whether the answer has started, which forbids further attempts; nil is
// an answer that reaches the client only when complete.
func (r *Router) try(ctx context.Context, route modelroutes.Route, ans *answer, attempt func(context.Context, nodetable.Candidate) (time.Duration, error)) error {
	if ans == nil {
		ans = &answer{}
	}
	key, _ := ctx.Value(sessionKey{}).(string)
	for {
		cands, err := r.plan(ctx, route, key)
		if err != nil {
			return err
		}
		err = r.tryPlan(ctx, route, key, cands, ans, attempt)
		if !errors.Is(err, errAllFull) {
			return err
		}
		// Other requests took every planned node's last slot between
		// admission and the attempt, or the nodes tried left rotation
		// while the request waited on them: plan again, which waits in
		// the queue for a free slot.
	}
}

// errAllFull says that no node of a plan failed the request: each was at
// its in-flight cap by the time its turn came, or the request was moved
// off it when it left rotation.
var errAllFull = errors.New("every planned node is at its in-flight cap")

// tryPlan tries cands in order, as try describes. A node at its in-flight
// cap when its turn comes is passed over.
func (r *Router) tryPlan(ctx context.Context, route modelroutes.Route, key string, cands []nodetable.Candidate, ans *answer, attempt func(context.Context, nodetable.Candidate) (time.Duration, error)) error {
	var failures []failure
	for _, c := range cands {
		if ctx.Err() != nil {
			return ctx.Err() // nobody is waiting for the answer any more
		}
		if err := clientGone(ctx, route.Model); err != nil {
			return err
		}
		err := r.attemptNode(ctx, c, ans, attempt)
		if err == nil {
			if key != "" {
				r.sessions.Used(key, c.Node.GetId())
			}
			return nil
		}
		if errors.Is(err, errFull) {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !ans.retryable() {
			return err
		}
		e, _ := apierror.FromError(err)
		if !retryable(e.Code) {
			return err
		}
		failures = append(failures, failure{node: c.Node.GetId(), err: e, moved: errors.Is(err, errNodeLeft)})
	}
	if !slices.ContainsFunc(failures, func(f failure) bool { return !f.moved }) {
		return errAllFull
	}
	return exhausted(route.Model, failures)
}

// errFull says a node was at its in-flight cap, so it was not attempted.
var errFull = errors.New("node at its in-flight cap")

// AdapterRetries is how often one node is tried again when the adapter,
// not the node, failed (an adapter replica went away mid-call): the next
// call goes to another replica.
const AdapterRetries = 2

// attemptNode runs attempt on c, again when the call failed in the mesh's
// own transport to the adapter rather than at the node. It returns errFull
// without attempting when c is at its in-flight cap (and the last error
// when c fills up before an adapter retry).
//
// While an attempt has delivered nothing, it is moved off c the moment c
// leaves rotation for not answering (another request found it hung, or
// healthmon declared it down): it then fails with an error that wraps
// errNodeLeft, so try moves on at once instead of waiting out c's
// first-token timeout. Nothing reached the client, so nothing is
// duplicated; and the move is not c's failure (it was counted already).
func (r *Router) attemptNode(ctx context.Context, c nodetable.Candidate, ans *answer, attempt func(context.Context, nodetable.Candidate) (time.Duration, error)) error {
	err := errFull
	for try := 0; ; try++ {
		a, ok := r.stats.Start(c.Node.GetId(), r.limits.For(c.Node).MaxInFlight)
		if !ok {
			if try > 0 {
				return err
			}
			return errFull
		}
		ans.next()
		actx, cancel := context.WithCancelCause(ctx)
		stop := moveOnLeave(a.Left, ans, cancel)
		var ttft time.Duration
		ttft, err = r.bounded(actx, c, attempt)
		stop()
		moved := err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errNodeLeft)
		cancel(nil)
		if moved {
			a.End(0, nodestats.Served) // frees the slot; the breaker has heard already
			return &movedError{err: &apierror.Error{Code: codes.Unavailable, Node: c.Node.GetId(), Reason: apierror.ReasonAnswerFailed,
				Message: "left rotation for not answering while this request waited for its first token"}}
		}
		outcome := nodeOutcome(err)
		a.End(ttft, outcome)
		if outcome != nodestats.Served && r.failed != nil {
			e, _ := apierror.FromError(err)
			r.failed(c.Node.GetId(), e.Message)
		}
		if err == nil || ctx.Err() != nil || try == AdapterRetries || !ans.retryable() {
			return err
		}
		if e, _ := apierror.FromError(err); e.Code != codes.Unavailable || e.Reason != "" {
			return err // the node answered (or was unreachable): let try move on
		}
	}
}

// movedError is an attempt moved off its node when the node left
// rotation; it is errNodeLeft.
type movedError struct{ err *apierror.Error }

func (e *movedError) Error() string   { return e.err.Error() }
func (e *movedError) Unwrap() []error { return []error{e.err, errNodeLeft} }

// moveOnLeave cancels the current attempt of ans with errNodeLeft when
// left closes before stop is called, unless the answer has started. stop
// returns once the watch is over, so it never touches a later attempt.
func moveOnLeave(left <-chan struct{}, ans *answer, cancel context.CancelCauseFunc) (stop func()) {
	done, over := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(over)
		select {
		case <-left:
			if ans.move() {
				cancel(errNodeLeft)
			}
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-over
	}
}

var errTotal = errors.New("total timeout")

// bounded runs attempt on c within c's total timeout. An attempt that runs
// out of it fails with DEADLINE_EXCEEDED naming the node: the node was
// working (it is not out of rotation) and the answer is not tried again
// elsewhere, as the node may have done most of the work.
func (r *Router) bounded(ctx context.Context, c nodetable.Candidate, attempt func(context.Context, nodetable.Candidate) (time.Duration, error)) (time.Duration, error) {
	total := r.limits.For(c.Node).Total
	actx, cancel := context.WithTimeoutCause(ctx, total, errTotal)
	defer cancel()
	ttft, err := attempt(actx, c)
	if err != nil && ctx.Err() == nil && ranOut(ctx, actx, err) {
		err = &apierror.Error{Code: codes.DeadlineExceeded, Node: c.Node.GetId(),
			Message: fmt.Sprintf("no complete answer within the node's total timeout of %s", total)}
	}
	return ttft, err
}

// ranOut says whether err came from attempt's own total deadline rather
// than the caller's. The deadline also travels to the adapter, whose
// DEADLINE_EXCEEDED can arrive before attempt's own timer has fired.
func ranOut(caller, attempt context.Context, err error) bool {
	if errors.Is(context.Cause(attempt), errTotal) {
		return true
	}
	e, _ := apierror.FromError(err)
	own, _ := attempt.Deadline()
	theirs, bounded := caller.Deadline()
	return e.Code == codes.DeadlineExceeded && !time.Now().Before(own) && (!bounded || theirs.After(own))
}

// retryable says whether another node may succeed where one failed: not
// when the client's request is at fault, the client gave up, or a node ran
// out of its total time.
func retryable(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.Canceled, codes.DeadlineExceeded:
		return false
	}
	return true
}

// plan lists the nodes to try for model, in the policy's order, at most
// maxAttempts of them.
func (r *Router) plan(ctx context.Context, route modelroutes.Route, key string) ([]nodetable.Candidate, error) {
	snap := r.table.Snapshot()
	all := snap.Candidates(route.Model)
	if len(all) == 0 {
		return nil, noCandidate(snap, route.Model)
	}
	cands := make([]nodetable.Candidate, 0, len(all))
	for _, c := range all {
		if (route.Group == "" || c.Node.GetGroup() == route.Group) && policy.Eligible(c, route.Tiers) {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, noneAllowed(route, all)
	}
	cands, err := r.admit(ctx, route.Model, cands)
	if err != nil {
		return nil, err
	}
	out := r.policy(policy.Input{
		Candidates: cands, Load: r.stats.Load, SessionKey: key, SessionNode: r.lastNode(key),
		Rand: rand.IntN, Turn: r.turn.Add(1), Tiers: route.Tiers,
	})
	return out[:min(len(out), r.maxAttempts)], nil
}

// lastNode is the node key's session last used, "" when none is known.
func (r *Router) lastNode(key string) string {
	if key == "" {
		return ""
	}
	node, _ := r.sessions.Node(key)
	return node
}

// admit returns the candidates below their in-flight cap, waiting in the
// bounded queue while there are none, as Queue describes.
func (r *Router) admit(ctx context.Context, model string, cands []nodetable.Candidate) ([]nodetable.Candidate, error) {
	var timeout <-chan time.Time
	var why error
	queued := false
	defer func() {
		if queued {
			r.waiting.Add(-1)
		}
	}()
	for {
		released := r.stats.Released() // before looking, so no release is missed
		free := make([]nodetable.Candidate, 0, len(cands))
		for _, c := range cands {
			if limit := r.limits.For(c.Node).MaxInFlight; limit == 0 || r.stats.Load(c.Node.GetId()).InFlight < int64(limit) {
				free = append(free, c)
			}
		}
		if len(free) > 0 {
			return free, nil
		}
		if !queued {
			if r.waiting.Add(1) > int64(r.queue.Size) {
				r.waiting.Add(-1)
				return nil, r.queueFull(model)
			}
			queued = true
			var wait time.Duration
			wait, why = r.queueWait(ctx, model, cands)
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-released:
		case <-timeout:
			return nil, why
		case <-ctx.Done():
			if err := clientGone(ctx, model); err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, err // a non-streamed request's deadline is its client's timeout
			}
			return nil, ctx.Err()
		}
	}
}

// queueWait is how long a request for model may wait for a free slot on
// cands, and the error when that runs out: its first-token budget (the
// longest first-token limit among cands), shortened by -queue-wait and by
// the client's timeout. The context's own deadline ends the wait too.
func (r *Router) queueWait(ctx context.Context, model string, cands []nodetable.Candidate) (time.Duration, error) {
	var budget time.Duration
	for _, c := range cands {
		budget = max(budget, firstTokenLimit(c, r.limits.For(c.Node)))
	}
	wait := budget
	why := error(&apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonMesh,
		Message: fmt.Sprintf("every node serving model %q stayed at its limit of requests in flight for the request's first-token budget of %s; retry shortly", apierror.Clip(model), budget)})
	if q := r.queue.Wait; q > 0 && q < wait {
		wait = q
		why = &apierror.Error{Code: codes.ResourceExhausted, Type: "rate_limit_error", Reason: apierror.ReasonMesh,
			Message: fmt.Sprintf("every node serving model %q stayed at its limit of requests in flight for the longest queue wait of %s; retry shortly", apierror.Clip(model), q)}
	}
	if d, ok := ctx.Value(clientDeadlineKey{}).(clientDeadline); ok && time.Until(d.at) < wait {
		wait = max(time.Until(d.at), 0)
		why = &apierror.Error{Code: codes.DeadlineExceeded, Reason: apierror.ReasonMesh,
			Message: fmt.Sprintf("every node serving model %q stayed at its limit of requests in flight for the client's timeout of %s", apierror.Clip(model), d.timeout)}
	}
	return wait, why
}

// queueFull refuses a request that finds every node full and the queue
// too.
func (r *Router) queueFull(model string) error {
	return &apierror.Error{Code: codes.ResourceExhausted, Type: "rate_limit_error", Reason: apierror.ReasonMesh,
		Message: fmt.Sprintf("every node serving model %q is at its limit of requests in flight and the wait queue (%d requests) is full; retry shortly", apierror.Clip(model), r.queue.Size)}
}

// noneAllowed explains that up nodes serve the model, but none the route
// allows (another group, or the wrong side of the tier mode).
func noneAllowed(route modelroutes.Route, all []nodetable.Candidate) error {
	ids := make([]string, len(all))
	for i, c := range all {
		ids[i] = c.Node.GetId()
	}
	var rule []string
	if route.Group != "" {
		rule = append(rule, fmt.Sprintf("in node group %q", route.Group))
	}
	if route.Tiers == policy.LocalOnly || route.Tiers == policy.CloudOnly {
		rule = append(rule, fmt.Sprintf("allowed by tiers %s", route.Tiers))
	}
	return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonMesh,
		Message: fmt.Sprintf("no up node %s serves model %q (it is served by %s)", strings.Join(rule, " and "), apierror.Clip(route.Model), strings.Join(ids, ", "))}
}

// soonest is the shortest wait any failed node asked for: the client may
// try again once the first of them takes requests. 0 when none said.
func soonest(failures []failure) time.Duration {
	var d time.Duration
	for _, f := range failures {
		if r := f.err.RetryAfter; r > 0 && (d == 0 || r < d) {
			d = r
		}
	}
	return d
}

// nodeOutcome says whether err shows the node itself failing, which takes
// it out of rotation at once, and how: refused, reset or unreachable while
// connecting, or refusing the mesh's own credentials, is Unreachable (a
// good health probe brings it back); taking the request and not answering
// it — no first token or response in time, silent mid-answer, the
// connection dropped mid-answer — is NoAnswer (only a good trial request
// brings it back). A node that answered otherwise, even with 503 busy, is
// alive.
func nodeOutcome(err error) nodestats.Outcome {
	if err == nil {
		return nodestats.Served
	}
	e, _ := apierror.FromError(err)
	if e.Node == "" {
		return nodestats.Served
	}
	switch {
	case e.Reason == apierror.ReasonUnreachable:
		return nodestats.Unreachable
	case e.Reason == apierror.ReasonAnswerFailed:
		return nodestats.NoAnswer
	case e.Reason == apierror.ReasonUpstream && (e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden):
		// A node refusing the mesh's credentials fails every request
		// until an operator fixes its key: out of rotation, and
		// healthmon told, whose probe then marks it misconfigured.
		return nodestats.Unreachable
	}
	return nodestats.Served
}

// noCandidate explains why no up node serves model: 503 when nodes that
// could serve it are down (or nothing is up at all), 404 when the model is
// simply not served.
func noCandidate(snap *nodetable.Snapshot, model string) error {
	downs := snap.Unavailable(model)
	var had []string
	for _, d := range downs {
		// A misconfigured node, or one loading its model on first start,
		// may never have listed its models: it may well serve this one,
		// and the client should hear why it cannot.
		if d.HadModel || d.Status == nodev1.Status_STATUS_MISCONFIGURED || d.Status == nodev1.Status_STATUS_LOADING {
			had = append(had, d.ID+": "+d.Reason)
		}
	}
	switch {
	case len(had) > 0:
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: fmt.Sprintf("no healthy node serves model %q; down: %s", apierror.Clip(model), strings.Join(had, "; "))}
	case snap.Len() == 0:
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: "no LLM nodes are known yet (healthmon has not reported any)"}
	case !snap.AnyUp():
		var all []string
		for _, d := range downs {
			all = append(all, d.ID+": "+d.Reason)
		}
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: fmt.Sprintf("no healthy node for model %q; down: %s", apierror.Clip(model), strings.Join(all, "; "))}
	}
	return &apierror.Error{Code: codes.NotFound, Param: "model", ErrCode: "model_not_found",
		Type:    "invalid_request_error",
		Message: fmt.Sprintf("The model `%s` does not exist or is not served by any healthy node.", apierror.Clip(model))}
}

// exhausted is the error after every tried node failed. When all failed
// the same way it keeps that meaning (e.g. 429 from every node stays 429);
// otherwise the mesh is unavailable. Either way it names each node and why.
func exhausted(model string, failures []failure) error {
	parts := make([]string, len(failures))
	same := true
	for i, f := range failures {
		parts[i] = f.node + ": " + f.err.Message
		if f.err.Code != failures[0].err.Code {
			same = false
		}
	}
	tried := strings.Join(parts, "; ")
	last := failures[len(failures)-1].err
	if same && last.Code != codes.Unavailable {
		out := *last
		if len(failures) > 1 {
			out.Message = fmt.Sprintf("every node failed for model %q: %s", apierror.Clip(model), tried)
			out.Node = ""
			out.RetryAfter = soonest(failures)
		}
		return &out
	}
	return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable, RetryAfter: soonest(failures),
		Message: fmt.Sprintf("no reachable node for model %q; tried %s", apierror.Clip(model), tried)}
}
