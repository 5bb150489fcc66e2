package hangwatch

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNoFirstMessage(t *testing.T) {
	ctx, _, stop := Start(t.Context(), 20*time.Millisecond, time.Hour)
	defer stop()
	<-ctx.Done()
	if c := Cause(t.Context(), ctx); !errors.Is(c, ErrNoFirst) {
		t.Fatalf("cause = %v, want ErrNoFirst", c)
	}
}

func TestIdleAfterTheFirst(t *testing.T) {
	ctx, w, stop := Start(t.Context(), time.Hour, 20*time.Millisecond)
	defer stop()
	w.Arrived()
	w.Waiting()
	<-ctx.Done()
	if c := Cause(t.Context(), ctx); !errors.Is(c, ErrIdle) {
		t.Fatalf("cause = %v, want ErrIdle", c)
	}
}

// Between Arrived and Waiting the clock stands: a slow consumer is not
// the other side's silence.
func TestTheClockStandsWhileTheConsumerWorks(t *testing.T) {
	ctx, w, stop := Start(t.Context(), time.Hour, 20*time.Millisecond)
	defer stop()
	w.Arrived()
	time.Sleep(60 * time.Millisecond) // the consumer takes its time
	if err := ctx.Err(); err != nil {
		t.Fatalf("canceled while the consumer worked: %v", context.Cause(ctx))
	}
}

func TestNothingWatchedAndCallerCancel(t *testing.T) {
	ctx, w, stop := Start(t.Context(), 0, 0)
	w.Arrived()
	w.Waiting()
	stop()
	if c := Cause(t.Context(), ctx); c != nil {
		t.Fatalf("cause = %v, want nil when nothing is watched", c)
	}
	caller, cancel := context.WithCancel(t.Context())
	ctx, _, stop = Start(caller, time.Hour, 0)
	defer stop()
	cancel()
	<-ctx.Done()
	if c := Cause(caller, ctx); c != nil {
		t.Fatalf("cause = %v, want nil when the caller gave up", c)
	}
}

// Timing keeps the first message of the calls watched under its context:
// the earliest of several, none before any arrived, and later messages of
// a call do not move it.
func TestTimingRecordsTheFirstMessage(t *testing.T) {
	var tm Timing
	ctx := WithTiming(t.Context(), &tm)
	if _, ok := tm.First(); ok {
		t.Fatal("a first message before any call")
	}
	_, a, stopA := Start(ctx, time.Hour, 0)
	defer stopA()
	_, b, stopB := Start(ctx, 0, 0) // unwatched calls record too
	defer stopB()
	before := time.Now()
	b.Arrived()
	first, ok := tm.First()
	if !ok || first.Before(before) {
		t.Fatalf("first = %v %v, want at or after %v", first, ok, before)
	}
	a.Arrived() // a later first message of another call
	b.Arrived() // and a next message of the same call
	if again, _ := tm.First(); !again.Equal(first) {
		t.Errorf("first moved from %v to %v", first, again)
	}
	// A call without a Timing in its context records nothing anywhere.
	_, c, stopC := Start(t.Context(), 0, 0)
	defer stopC()
	c.Arrived()
}
