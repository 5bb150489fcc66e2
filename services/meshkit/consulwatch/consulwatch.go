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
	PassingOnly bool // only instances whose every check passes
	// Wait is how long one blocking query may wait; default 10s. Keep it
	// short: a query sent to a Consul that lost its state (a rebuilt
	// server) blocks until the new index passes the old one, so only the
	// wait running out reveals that the index went backwards.
	Wait        time.Duration
	MinInterval time.Duration // least time between two queries; default 250ms
	// MaxBackoff caps the retry delay while Consul is unreachable; default
	// 2s, so that when Consul comes back (perhaps without its state, to be
	// filled again by re-registrations) the watcher sees it within
	// seconds. A query to an unreachable Consul costs next to nothing.
	MaxBackoff time.Duration
	// OnGap, when set, is called before the first view after a gap in
	// what the watch saw: Consul unreachable, or its index gone backwards
	// (restarted without its state). That view may lack what Consul has
	// yet to be told again by those who registered it.
	OnGap func()
	Log   *slog.Logger
}

// Run calls onView with the service's entries after every answer — at
// once when they change, and at least once per Wait otherwise — until ctx
// is done. Calling it for unchanged answers too is deliberate: a Consul
// that lost its state can come back at the very index it had, and only the
// content then shows the loss. onView runs on Run's goroutine.
func (w *Watch) Run(ctx context.Context, onView func([]*api.ServiceEntry)) {
	wait := orDefault(w.Wait, 10*time.Second)
	minInterval := orDefault(w.MinInterval, 250*time.Millisecond)
	maxBackoff := orDefault(w.MaxBackoff, 2*time.Second)
	var index, highest uint64
	backoff := minInterval
	down, gap, hidden := false, false, false
	for {
		started := time.Now()
		// Consul answers a blocking query within wait + wait/16; a query
		// that outlives that (an agent that died mid-answer) is abandoned.
		qctx, cancel := context.WithTimeout(ctx, wait+wait/16+time.Second)
		opts := (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(qctx)
		entries, meta, err := w.Client.Health().Service(w.Service, "", w.PassingOnly, opts)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.Log.Debug("consul query failed", "service", w.Service, "err", err)
			gap = highest > 0
			if !down {
				w.Log.Warn("consul unreachable; keeping the last view", "service", w.Service, "err", err)
				down = true
			}
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, maxBackoff)
			// Consul may come back without its state, at a lower index:
			// a query at the old one would block for a whole Wait before
			// that shows. The first query after an outage asks afresh.
			index = 0
			continue
		}
		if down {
			w.Log.Info("consul reachable again", "service", w.Service)
			down = false
		}
		backoff = minInterval
		if meta.ResultsFilteredByACLs && !hidden {
			// Once: Consul does not flag every answer (not those of a
			// blocking query that timed out), so the flag cannot say when
			// the token was fixed.
			hidden = true
			w.Log.Warn("consul's ACLs hide instances of the service from this process's token (CONSUL_HTTP_TOKEN); its policy needs service:read on the service and node:read on the nodes (docs/security.md#consul-acls)",
				"service", w.Service)
		}
		next := meta.LastIndex
		if next < highest {
			gap = true // Consul restarted without its state
		}
		highest = max(highest, next)
		switch {
		case next < index:
			next = 0 // Consul's index went backwards (e.g. a restarted agent): start afresh
		case next == 0:
			next = 1 // never block on index 0
		}
		if gap && w.OnGap != nil {
			w.OnGap()
		}
		gap = false
		onView(entries)
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
