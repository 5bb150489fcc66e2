// Package hangwatch ends a call whose other side stays silent: no first
// message within one bound (a hung node), or, once it has started, no next
// message within another (a node that stalled in the middle of an
// answer). Only the wait for the other side counts: between Arrived and
// Waiting the clock stands, so a slow consumer of the messages is never
// taken for a silent producer.
package hangwatch

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// The causes a watched context is canceled with.
var (
	ErrNoFirst = errors.New("no first message in time")
	ErrIdle    = errors.New("silent for too long")
)

// Watch is the clock of one call.
type Watch struct {
	t       *time.Timer // nil: nothing to watch
	idle    time.Duration
	started atomic.Bool
	timing  *Timing // from the context, when its caller asked
}

// Timing records when the first message of the calls watched under a
// context arrived, for a caller that wants the other side's time to first
// message of a call it does not see message by message (one folded into
// a whole answer). Several calls under one context (a fan-out) record the
// earliest. The zero value is ready to use.
type Timing struct {
	first atomic.Int64 // unix nanoseconds; 0: none yet
}

type timingKey struct{}

// WithTiming returns ctx carrying t: calls watched by Start under it
// record their first message in t.
func WithTiming(ctx context.Context, t *Timing) context.Context {
	return context.WithValue(ctx, timingKey{}, t)
}

// First returns when the first message arrived, false when none did.
func (t *Timing) First() (time.Time, bool) {
	n := t.first.Load()
	return time.Unix(0, n), n != 0
}

func (t *Timing) arrived(now time.Time) {
	n := now.UnixNano()
	for {
		old := t.first.Load()
		if old != 0 && old <= n {
			return
		}
		if t.first.CompareAndSwap(old, n) {
			return
		}
	}
}

// Start watches a call made with the returned context: it is canceled
// with ErrNoFirst when no message arrives within first, and with ErrIdle
// when, after the first, the wait for a next one exceeds idle. first ≤ 0
// watches nothing; idle ≤ 0 bounds only the first message. The caller
// must call stop when the call is over.
func Start(ctx context.Context, first, idle time.Duration) (wctx context.Context, w *Watch, stop func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	w = &Watch{idle: idle}
	w.timing, _ = ctx.Value(timingKey{}).(*Timing)
	if first > 0 {
		w.t = time.AfterFunc(first, func() {
			if w.started.Load() {
				cancel(ErrIdle)
			} else {
				cancel(ErrNoFirst)
			}
		})
	}
	return wctx, w, func() {
		if w.t != nil {
			w.t.Stop()
		}
		cancel(nil)
	}
}

// Arrived stops the clock: a message came.
func (w *Watch) Arrived() {
	if w.timing != nil && !w.started.Load() {
		w.timing.arrived(time.Now())
	}
	if w.t != nil {
		w.t.Stop()
	}
	w.started.Store(true)
}

// Waiting starts the idle clock, before waiting for the next message.
func (w *Watch) Waiting() {
	if w.t != nil && w.idle > 0 && w.started.Load() {
		w.t.Reset(w.idle)
	}
}

// Cause says why the watched call ended early: ErrNoFirst, ErrIdle, or
// nil when the watch did not end it (the caller's own context, the other
// side's error). caller is the context Start was given.
func Cause(caller, watched context.Context) error {
	if caller.Err() != nil {
		return nil //nolint:nilerr // the caller ended it: not the watch's doing, so no cause
	}
	if c := context.Cause(watched); errors.Is(c, ErrNoFirst) || errors.Is(c, ErrIdle) {
		return c
	}
	return nil
}

// NodeError is err from a call to node watched by Start, or, when the
// watch ended it, the error for a node that stopped answering: UNAVAILABLE
// with reason NODE_ANSWER_FAILED and the node's id, so it goes out of
// rotation until a trial request succeeds, and the request may move on. caller is the context Start was
// given, watched the one it returned.
func NodeError(caller, watched context.Context, node string, first, idle time.Duration, err error) error {
	switch cause := Cause(caller, watched); {
	case errors.Is(cause, ErrNoFirst):
		return apierror.AnswerFailed(node, "no first token within %s", first)
	case errors.Is(cause, ErrIdle):
		return apierror.AnswerFailed(node, "silent for %s in the middle of an answer", idle)
	}
	return err
}
