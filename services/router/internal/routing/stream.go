package routing

import (
	"context"
	"errors"
	"io"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

// opener opens a server stream of messages T from the adapter for one
// attempt on candidate c, with the adapter's timeouts t.
type opener[T any] func(ctx context.Context, c nodetable.Candidate, t *adapterv1.CallTimeouts) (grpc.ServerStreamingClient[T], error)

// streamTry runs a streamed call on the candidates for route until one
// has started (then its failure is final) or none is left.
func streamTry[T any](r *Router, ctx context.Context, route modelroutes.Route, watched bool, open opener[T], each func(msg *T, first bool) error) error {
	ans := &answer{}
	op := observe.From(ctx)
	return r.try(ctx, route, ans, func(ctx context.Context, c nodetable.Candidate) (time.Duration, error) {
		ttft, _, err := streamAttempt(r, ctx, c, watched, open, func(m *T) error {
			first, ok := ans.deliver()
			if !ok {
				return errMoved
			}
			if first {
				op.FirstToken()
			}
			return each(m, first)
		})
		return ttft, err
	})
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
func streamAttempt[T any](r *Router, ctx context.Context, c nodetable.Candidate, watched bool, open opener[T], each func(*T) error) (ttft time.Duration, sent bool, err error) {
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
			return apierror.AnswerFailed(c.Node.GetId(), "no first token within %s", first)
		case errors.Is(cause, errIdle):
			return apierror.AnswerFailed(c.Node.GetId(), "silent for %s in the middle of an answer", l.Idle)
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
