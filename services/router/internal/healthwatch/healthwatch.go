// Package healthwatch keeps a nodetable fed from healthmon's WatchNodes
// stream. When healthmon is unreachable the table keeps its last state and
// the stream is retried with capped exponential backoff.
package healthwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
)

// Watcher streams node state from healthmon into a table.
type Watcher struct {
	Client     healthmonv1.HealthmonServiceClient
	Table      *nodetable.Table
	Log        *slog.Logger
	MinBackoff time.Duration // first retry delay; default 100ms
	// MaxBackoff caps the retry delay; default 1s. A retry while the
	// connection is down fails at once in the client (the connection
	// itself retries at most grpcserver.ReconnectMaxDelay apart), so
	// retrying often costs nothing and finds healthmon soon after it is
	// back.
	MaxBackoff time.Duration
	// OnLost and OnResumed, when set, are called when the stream is lost
	// and when it delivers again (before its snapshot is applied).
	OnLost, OnResumed func()
	// OnUp, when set, is called for each node that turns up, and for each
	// node healthmon confirms serving after a router reported it failing.
	OnUp func(nodeID string)
	// OnDown, when set, is called for each node healthmon declares down
	// that was up, so requests still waiting on it can move on.
	OnDown func(nodeID string)

	live atomic.Bool
}

// Live says whether the table follows healthmon's stream right now: the
// stream has delivered its snapshot and not failed since.
func (w *Watcher) Live() bool { return w.live.Load() }

// Run watches until ctx is done. It logs once when the stream is lost and
// once when it is back, not on every retry.
func (w *Watcher) Run(ctx context.Context) {
	minB, maxB := w.MinBackoff, w.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = time.Second
	}
	backoff := minB
	lost := false
	for {
		received, err := w.watch(ctx, &lost)
		if ctx.Err() != nil {
			return
		}
		if received {
			backoff = minB
		}
		if !lost {
			w.Log.Warn("healthmon stream lost; keeping last node state", "err", err)
			lost = true
			if w.OnLost != nil {
				w.OnLost()
			}
		}
		// Full jitter keeps many routers from reconnecting in lock step.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxB)
	}
}

// watch runs one stream until it fails. received says whether any message
// arrived, which resets the backoff; lost is cleared (and the recovery
// logged) on the first message.
func (w *Watcher) watch(ctx context.Context, lost *bool) (received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.Client.WatchNodes(ctx, &healthmonv1.WatchNodesRequest{})
	if err != nil {
		return false, err
	}
	defer w.live.Store(false)
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("healthmon closed the stream")
			}
			return received, err
		}
		if !received && !msg.GetSnapshot() {
			return false, errors.New("healthmon stream did not start with a snapshot")
		}
		if !received && *lost {
			w.Log.Info("healthmon stream resumed")
			*lost = false
			if w.OnResumed != nil {
				w.OnResumed()
			}
		}
		received = true
		before := w.Table.Snapshot()
		w.Table.Apply(msg)
		w.live.Store(true)
		if w.OnDown != nil {
			for _, st := range msg.GetNodes() {
				if id := st.GetNode().GetId(); st.GetStatus() == nodev1.Status_STATUS_DOWN && before.Status(id) == nodev1.Status_STATUS_UP {
					w.OnDown(id)
				}
			}
		}
		if w.OnUp != nil {
			// A node comes back when it turns up, or when healthmon
			// confirms one a router reported failing is serving; a
			// message that only updates an up node's load or models is
			// no news about its health.
			for _, st := range msg.GetNodes() {
				if id := st.GetNode().GetId(); st.GetStatus() == nodev1.Status_STATUS_UP && before.Status(id) != nodev1.Status_STATUS_UP {
					w.OnUp(id)
				}
			}
			for _, id := range msg.GetConfirmedNodeIds() {
				w.OnUp(id)
			}
		}
	}
}
