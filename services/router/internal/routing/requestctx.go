package routing

import (
	"context"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

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
	return apierror.DeadlineExceeded("", "no node serving model %q took the request within the client's timeout of %s", apierror.Clip(model), d.timeout)
}
