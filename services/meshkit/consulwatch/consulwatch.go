// Package consulwatch follows a Consul service's health entries with
// blocking queries, following Consul's rules for them: the last index is
// the next wait index, an index that goes backwards resets to 0, a wait
// index is never 0 after the first answer (that would be a busy loop), and
// queries are rate-limited. When Consul is unreachable the last view is
// kept, the outage is logged once, and queries retry with backoff.
package consulwatch

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
)

// Watch follows one service.
type Watch struct {
	Client      *api.Client
	Service     string
	PassingOnly bool          // only instances whose every check passes
	Wait        time.Duration // how long one blocking query may wait; default 1m
	MinInterval time.Duration // least time between two queries; default 250ms
	MaxBackoff  time.Duration // retry delay cap while Consul is unreachable; default 30s
	Log         *slog.Logger
}

// Run calls onChange with the service's entries after the first answer and
// after every change, until ctx is done. onChange runs on Run's goroutine.
func (w *Watch) Run(ctx context.Context, onChange func([]*api.ServiceEntry)) {
	wait := orDefault(w.Wait, time.Minute)
	minInterval := orDefault(w.MinInterval, 250*time.Millisecond)
	maxBackoff := orDefault(w.MaxBackoff, 30*time.Second)
	var index uint64
	backoff := minInterval
	down, first := false, true
	for {
		started := time.Now()
		opts := (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		entries, meta, err := w.Client.Health().Service(w.Service, "", w.PassingOnly, opts)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !down {
				w.Log.Warn("consul unreachable; keeping the last view", "service", w.Service, "err", err)
				down = true
			}
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		if down {
			w.Log.Info("consul reachable again", "service", w.Service)
			down = false
		}
		backoff = minInterval
		next := meta.LastIndex
		switch {
		case next < index:
			next = 0 // Consul's index went backwards (e.g. a restarted agent): start afresh
		case next == 0:
			next = 1 // never block on index 0
		}
		if first || next != index {
			onChange(entries)
			first = false
		}
		index = next
		// Rate limit: a service that changes constantly must not turn this
		// into a hot loop.
		sleep(ctx, minInterval-time.Since(started))
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// jitter spreads d over [d/2, 3d/2) so many watchers do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
