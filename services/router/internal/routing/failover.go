package routing

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"google.golang.org/grpc/codes"
)

// attemptFunc makes one attempt at a request on candidate c: it calls the
// adapter and returns the node's time to first token (for the load
// statistics) and the call's error.
type attemptFunc func(ctx context.Context, c nodetable.Candidate) (ttft time.Duration, err error)

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
func (r *Router) try(ctx context.Context, route modelroutes.Route, ans *answer, attempt attemptFunc) error {
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
func (r *Router) tryPlan(ctx context.Context, route modelroutes.Route, key string, cands []nodetable.Candidate, ans *answer, attempt attemptFunc) error {
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
func (r *Router) attemptNode(ctx context.Context, c nodetable.Candidate, ans *answer, attempt attemptFunc) error {
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
		sctx, span := startAttempt(ctx, c)
		actx, cancel := context.WithCancelCause(sctx)
		stop := moveOnLeave(a.Left, ans, cancel)
		var ttft time.Duration
		ttft, err = r.bounded(actx, c, attempt)
		stop()
		moved := err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errNodeLeft)
		cancel(nil)
		if moved {
			a.End(0, nodestats.Served) // frees the slot; the breaker has heard already
			span.End(ReasonNodeLeft, kindName(c))
			return &movedError{err: apierror.AnswerFailed(c.Node.GetId(), "left rotation for not answering while this request waited for its first token")}
		}
		if err == nil {
			span.Served(ttft)
			span.End(observe.OutcomeOK, kindName(c))
		} else {
			span.End(failReason(err), kindName(c))
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
func (r *Router) bounded(ctx context.Context, c nodetable.Candidate, attempt attemptFunc) (time.Duration, error) {
	total := r.limits.For(c.Node).Total
	actx, cancel := context.WithTimeoutCause(ctx, total, errTotal)
	defer cancel()
	ttft, err := attempt(actx, c)
	if err != nil && ctx.Err() == nil && ranOut(ctx, actx, err) {
		err = apierror.DeadlineExceeded(c.Node.GetId(), "no complete answer within the node's total timeout of %s", total)
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
