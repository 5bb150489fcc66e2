package routing

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"github.com/llmesh/llmesh/services/router/internal/policy"
)

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
	var since time.Time
	defer func() {
		if queued {
			r.waiting.Add(-1)
			observe.From(ctx).Queued(time.Since(since))
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
			queued, since = true, time.Now()
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
	why := error(apierror.Unavailable("", "every node serving model %q stayed at its limit of requests in flight for the request's first-token budget of %s; retry shortly", apierror.Clip(model), budget))
	if q := r.queue.Wait; q > 0 && q < wait {
		wait = q
		why = apierror.RateLimited("every node serving model %q stayed at its limit of requests in flight for the longest queue wait of %s; retry shortly", apierror.Clip(model), q)
	}
	if d, ok := ctx.Value(clientDeadlineKey{}).(clientDeadline); ok && time.Until(d.at) < wait {
		wait = max(time.Until(d.at), 0)
		why = apierror.DeadlineExceeded("", "every node serving model %q stayed at its limit of requests in flight for the client's timeout of %s", apierror.Clip(model), d.timeout)
	}
	return wait, why
}

// queueFull refuses a request that finds every node full and the queue
// too.
func (r *Router) queueFull(model string) error {
	return apierror.RateLimited("every node serving model %q is at its limit of requests in flight and the wait queue (%d requests) is full; retry shortly", apierror.Clip(model), r.queue.Size)
}
