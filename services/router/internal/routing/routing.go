// Package routing picks the LLM node for a request and calls it through an
// adapter, moving on to the next candidate when a node fails before it has
// produced anything. Once a streamed answer has started it never retries:
// the client would see duplicated output.
package routing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"google.golang.org/grpc/codes"
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
	firstToken  FirstTokenTimeouts
	maxInFlight int
	queue       Queue
	failed      func(nodeID, reason string)
	waiting     atomic.Int64  // requests waiting for a free node
	turn        atomic.Uint64 // advances per request, for round robin
}

// Queue bounds waiting for a free node when every candidate is at its
// in-flight cap: at most Size requests wait, each at most Wait; beyond
// that the request is refused with RESOURCE_EXHAUSTED (429, Retry-After).
type Queue struct {
	Size int
	Wait time.Duration
}

// FirstTokenTimeouts bound how long a streamed attempt may wait for its
// first chunk before the node counts as hung: short where the model is
// loaded, long enough for a cold load where it is not.
type FirstTokenTimeouts struct {
	Loaded, Cold time.Duration
}

// Default first-token timeouts.
const (
	DefaultFirstTokenLoaded = 30 * time.Second
	DefaultFirstTokenCold   = 10 * time.Minute
)

// Options tune a Router; the zero value is the default.
type Options struct {
	MaxAttempts int              // nodes one request may try; ≤ 0 means DefaultMaxAttempts
	Policy      policy.Policy    // nil means policy.PowerOfTwo
	Stats       *nodestats.Stats // nil means fresh stats with the default breaker cool-down
	FirstToken  FirstTokenTimeouts
	// MaxInFlight caps requests in flight per node (0: no cap). When every
	// candidate is at its cap the request waits in Queue, and is refused
	// with RESOURCE_EXHAUSTED (429 with Retry-After) when the queue is full
	// or its wait runs out — never queued without bound.
	MaxInFlight int
	Queue       Queue
	// OnNodeFailed, when set, hears of every node that refused, dropped or
	// hung a request (e.g. to tell healthmon). It must not block.
	OnNodeFailed func(nodeID, reason string)
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
	if opts.FirstToken.Loaded <= 0 {
		opts.FirstToken.Loaded = DefaultFirstTokenLoaded
	}
	if opts.FirstToken.Cold <= 0 {
		opts.FirstToken.Cold = DefaultFirstTokenCold
	}
	return &Router{table: table, adapter: adapter, maxAttempts: opts.MaxAttempts, policy: opts.Policy, stats: opts.Stats,
		firstToken: opts.FirstToken, maxInFlight: opts.MaxInFlight, queue: opts.Queue, failed: opts.OnNodeFailed}
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

// Chat answers a non-streamed chat completion. The adapter is given the
// attempt's first-token timeout, so a hung node costs that, not the whole
// deadline (the adapter streams from the node and folds the answer).
func (r *Router) Chat(ctx context.Context, req *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error) {
	if err := r.chatModel(req.GetModel()); err != nil {
		return nil, err
	}
	var out *openaiv1.ChatCompletion
	err := r.try(ctx, req.GetModel(), func(c nodetable.Candidate) (time.Duration, error) {
		start := time.Now()
		resp, err := r.adapter.Chat(ctx, &adapterv1.ChatRequest{Node: c.Node, Request: req,
			FirstTokenTimeout: durationpb.New(r.firstTokenLimit(c))})
		out = resp.GetCompletion()
		return time.Since(start), err
	})
	return out, err
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
		Message: fmt.Sprintf("The model `%s` is an embedding model: it serves /v1/embeddings, not chat.", model)}
}

// firstTokenLimit is how long c may take to its first token: short where
// the model is loaded, long enough for a cold load where it is not.
func (r *Router) firstTokenLimit(c nodetable.Candidate) time.Duration {
	if c.Loaded {
		return r.firstToken.Loaded
	}
	return r.firstToken.Cold
}

// Embed answers an embeddings request.
func (r *Router) Embed(ctx context.Context, req *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error) {
	var out *openaiv1.EmbeddingList
	err := r.try(ctx, req.GetModel(), func(c nodetable.Candidate) (time.Duration, error) {
		start := time.Now()
		resp, err := r.adapter.Embed(ctx, &adapterv1.EmbedRequest{Node: c.Node, Request: req})
		out = resp.GetEmbeddings()
		return time.Since(start), err
	})
	return out, err
}

// ChatStream answers a streamed chat completion, calling send for every
// chunk in order. A node that fails before its first chunk is replaced by
// the next candidate; a failure after it is returned as is.
func (r *Router) ChatStream(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) error {
	if err := r.chatModel(req.GetModel()); err != nil {
		return err
	}
	var started bool
	err := r.try(ctx, req.GetModel(), func(c nodetable.Candidate) (time.Duration, error) {
		ttft, _, err := r.stream(ctx, c, req, func(chunk *openaiv1.ChatCompletionChunk) error {
			if !started {
				ensureRole(chunk)
			}
			started = true
			return send(chunk)
		})
		return ttft, err
	}, func() bool { return !started })
	return err
}

var errNoFirstToken = errors.New("no first token in time")

// stream runs one streamed attempt on c, calling each for every chunk. A
// node that sends no first chunk within its first-token timeout fails as
// hung. sent says whether any chunk reached each.
func (r *Router) stream(ctx context.Context, c nodetable.Candidate, req *openaiv1.ChatCompletionRequest, each func(*openaiv1.ChatCompletionChunk) error) (ttft time.Duration, sent bool, err error) {
	attemptCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil) // ends the adapter stream of a failed attempt
	limit := r.firstTokenLimit(c)
	hung := time.AfterFunc(limit, func() { cancel(errNoFirstToken) })
	start := time.Now()
	stream, err := r.adapter.ChatStream(attemptCtx, &adapterv1.ChatStreamRequest{Node: c.Node, Request: req})
	if err != nil {
		hung.Stop()
		return 0, false, err
	}
	first, err := stream.Recv()
	hung.Stop()
	ttft = time.Since(start)
	if errors.Is(err, io.EOF) {
		return ttft, false, nil
	}
	if err != nil {
		if errors.Is(context.Cause(attemptCtx), errNoFirstToken) && ctx.Err() == nil {
			// A hung node: out of rotation, and the request moves on.
			return 0, false, &apierror.Error{Code: codes.Unavailable, Node: c.Node.GetId(), Reason: apierror.ReasonUnreachable,
				Message: fmt.Sprintf("no first token within %s", limit)}
		}
		return 0, false, err
	}
	chunk := first.GetChunk()
	for {
		if err := each(chunk); err != nil {
			return ttft, true, err
		}
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return ttft, true, nil
		}
		if err != nil {
			return ttft, true, err
		}
		chunk = msg.GetChunk()
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
	node string
	err  *apierror.Error
}

// try runs attempt on candidates for model until one succeeds, the error
// is not worth another node, or attempts run out. retryAllowed, when given,
// can forbid further attempts (a stream that has started).
func (r *Router) try(ctx context.Context, model string, attempt func(nodetable.Candidate) (time.Duration, error), retryAllowed ...func() bool) error {
	key, _ := ctx.Value(sessionKey{}).(string)
	cands, err := r.plan(ctx, model, key)
	if err != nil {
		return err
	}
	var failures []failure
	for _, c := range cands {
		err := r.attemptNode(ctx, c, attempt, retryAllowed...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(retryAllowed) > 0 && !retryAllowed[0]() {
			return err
		}
		e, _ := apierror.FromError(err)
		if !retryable(e.Code) {
			return err
		}
		failures = append(failures, failure{node: c.Node.GetId(), err: e})
	}
	return exhausted(model, failures)
}

// AdapterRetries is how often one node is tried again when the adapter,
// not the node, failed (an adapter replica went away mid-call): the next
// call goes to another replica.
const AdapterRetries = 2

// attemptNode runs attempt on c, again when the call failed in the mesh's
// own transport to the adapter rather than at the node.
func (r *Router) attemptNode(ctx context.Context, c nodetable.Candidate, attempt func(nodetable.Candidate) (time.Duration, error), retryAllowed ...func() bool) error {
	for try := 0; ; try++ {
		end := r.stats.Begin(c.Node.GetId())
		ttft, err := attempt(c)
		failed := err != nil && nodeFailed(err)
		end(ttft, failed)
		if failed && r.failed != nil {
			e, _ := apierror.FromError(err)
			r.failed(c.Node.GetId(), e.Message)
		}
		if err == nil || ctx.Err() != nil || try == AdapterRetries || (len(retryAllowed) > 0 && !retryAllowed[0]()) {
			return err
		}
		if e, _ := apierror.FromError(err); e.Code != codes.Unavailable || e.Reason != "" {
			return err // the node answered (or was unreachable): let try move on
		}
	}
}

// retryable says whether another node may succeed where one failed: not
// when the client's request is at fault or the client gave up.
func retryable(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.Canceled:
		return false
	}
	return true
}

// plan lists the nodes to try for model, in the policy's order, at most
// maxAttempts of them.
func (r *Router) plan(ctx context.Context, model, key string) ([]nodetable.Candidate, error) {
	snap := r.table.Snapshot()
	cands := snap.Candidates(model)
	if len(cands) == 0 {
		return nil, noCandidate(snap, model)
	}
	if r.maxInFlight > 0 {
		free, err := r.admit(ctx, model, cands)
		if err != nil {
			return nil, err
		}
		cands = free
	}
	out := r.policy(policy.Input{
		Candidates: cands, Load: r.stats.Load, SessionKey: key,
		Rand: rand.IntN, Turn: r.turn.Add(1),
	})
	return out[:min(len(out), r.maxAttempts)], nil
}

// admit returns the candidates below their in-flight cap, waiting in the
// bounded queue while there are none.
func (r *Router) admit(ctx context.Context, model string, cands []nodetable.Candidate) ([]nodetable.Candidate, error) {
	var deadline <-chan time.Time
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
			if r.stats.Load(c.Node.GetId()).InFlight < int64(r.maxInFlight) {
				free = append(free, c)
			}
		}
		if len(free) > 0 {
			return free, nil
		}
		if !queued {
			if r.queue.Wait <= 0 || r.waiting.Add(1) > int64(r.queue.Size) {
				if r.queue.Wait > 0 {
					r.waiting.Add(-1)
				}
				return nil, r.saturated(model)
			}
			queued = true
			t := time.NewTimer(r.queue.Wait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-released:
		case <-deadline:
			return nil, r.saturated(model)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (r *Router) saturated(model string) error {
	return &apierror.Error{Code: codes.ResourceExhausted, Type: "rate_limit_error", Reason: apierror.ReasonMesh,
		Message: fmt.Sprintf("every node serving model %q is at its limit of %d requests in flight; retry shortly", model, r.maxInFlight)}
}

// nodeFailed says whether err shows the node itself failing — refused,
// reset, unreachable — which takes it out of rotation at once. A node
// that answered, even with 503 busy, is alive.
func nodeFailed(err error) bool {
	e, _ := apierror.FromError(err)
	return e.Reason == apierror.ReasonUnreachable && e.Node != ""
}

// noCandidate explains why no up node serves model: 503 when nodes that
// could serve it are down (or nothing is up at all), 404 when the model is
// simply not served.
func noCandidate(snap *nodetable.Snapshot, model string) error {
	downs := snap.Unavailable(model)
	var had []string
	for _, d := range downs {
		// A misconfigured node never listed its models: it may well
		// serve this one, and the client should hear why it cannot.
		if d.HadModel || d.Status == nodev1.Status_STATUS_MISCONFIGURED {
			had = append(had, d.ID+": "+d.Reason)
		}
	}
	switch {
	case len(had) > 0:
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: fmt.Sprintf("no healthy node serves model %q; down: %s", model, strings.Join(had, "; "))}
	case snap.Len() == 0:
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: "no LLM nodes are known yet (healthmon has not reported any)"}
	case !snap.AnyUp():
		var all []string
		for _, d := range downs {
			all = append(all, d.ID+": "+d.Reason)
		}
		return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
			Message: fmt.Sprintf("no healthy node for model %q; down: %s", model, strings.Join(all, "; "))}
	}
	return &apierror.Error{Code: codes.NotFound, Param: "model", ErrCode: "model_not_found",
		Type:    "invalid_request_error",
		Message: fmt.Sprintf("The model `%s` does not exist or is not served by any healthy node.", model)}
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
			out.Message = fmt.Sprintf("every node failed for model %q: %s", model, tried)
			out.Node = ""
		}
		return &out
	}
	return &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable,
		Message: fmt.Sprintf("no reachable node for model %q; tried %s", model, tried)}
}
