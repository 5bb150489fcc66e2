package healthwatch

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

func up(id string, models ...string) *nodev1.NodeState {
	st := &nodev1.NodeState{Node: &nodev1.Node{Id: id}, Status: nodev1.Status_STATUS_UP}
	for _, m := range models {
		st.Models = append(st.Models, &nodev1.ModelInfo{Id: m})
	}
	return st
}

func down(id, reason string, models ...string) *nodev1.NodeState {
	st := up(id, models...)
	st.Status, st.Reason = nodev1.Status_STATUS_DOWN, reason
	return st
}

// fakeHealthmon is a HealthmonService whose calls are scripted: call i
// (from 0) runs calls[i], or the last script once they run out. It stands
// in for healthmon and its probes.
type fakeHealthmon struct {
	healthmonv1.UnimplementedHealthmonServiceServer
	calls []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error
	n     atomic.Int32
}

func (f *fakeHealthmon) WatchNodes(_ *healthmonv1.WatchNodesRequest, stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
	i := int(f.n.Add(1)) - 1
	return f.calls[min(i, len(f.calls)-1)](stream)
}

// sendThen sends msgs, then waits for more messages on more (nil: none)
// until the stream ends.
func sendThen(more <-chan *healthmonv1.WatchNodesResponse, msgs ...*healthmonv1.WatchNodesResponse) func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
	return func(stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		for {
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case m := <-more:
				if err := stream.Send(m); err != nil {
					return err
				}
			}
		}
	}
}

// server is a fake healthmon served by a meshkit gRPC server over bufconn.
type server struct {
	lis  *bufconn.Listener
	srv  *grpcserver.Server
	done chan struct{}
}

func startServer(t *testing.T, fake *fakeHealthmon) *server {
	t.Helper()
	s := &server{lis: bufconn.Listen(1 << 20), srv: grpcserver.New(slog.New(slog.DiscardHandler)), done: make(chan struct{})}
	healthmonv1.RegisterHealthmonServiceServer(s.srv.GRPC, fake)
	go func() {
		defer close(s.done)
		_ = s.srv.GRPC.Serve(s.lis)
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	s.srv.GRPC.Stop()
	<-s.done
}

// dialer dials whichever listener is current, so a test can bring
// "healthmon" back on a new listener; it counts dials.
type dialer struct {
	cur   atomic.Pointer[bufconn.Listener]
	dials atomic.Int32
}

func (d *dialer) dial(ctx context.Context, _ string) (net.Conn, error) {
	d.dials.Add(1)
	return d.cur.Load().DialContext(ctx)
}

func connect(t *testing.T, d *dialer) healthmonv1.HealthmonServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///healthmon",
		grpc.WithContextDialer(d.dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Quick redials, but a whole second for each connect: a zero
		// MinConnectTimeout bounds a connect by the backoff delay (5 ms),
		// which a loaded machine misses, losing the stream at random.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, MaxDelay: 20 * time.Millisecond}, MinConnectTimeout: time.Second}))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return healthmonv1.NewHealthmonServiceClient(conn)
}

// logs records log messages.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

func (l *logs) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

const (
	lostMsg    = "healthmon stream lost; keeping last node state"
	resumedMsg = "healthmon stream resumed"
)

// run starts w and returns a func that stops it and waits for Run to return.
func run(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Fatal("Run did not return after its context was canceled")
		}
	}
	t.Cleanup(stop)
	return stop
}

func ids(cs []nodetable.Candidate) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Node.GetId())
	}
	return out
}

func downIDs(ds []nodetable.Down) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID+": "+d.Reason)
	}
	return out
}

func TestWatcherKeepsStateAndReconnects(t *testing.T) {
	more := make(chan *healthmonv1.WatchNodesResponse)
	first := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		sendThen(more,
			&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{up("a", "m1"), up("b", "m1")}},
			&healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{down("b", "refused", "m1")}},
		),
	}}
	srv1 := startServer(t, first)
	d := &dialer{}
	d.cur.Store(srv1.lis)
	log := &logs{}
	table := nodetable.New()
	w := &Watcher{Client: connect(t, d), Table: table, Log: slog.New(log),
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	assert.False(t, w.Live(), "not live before the snapshot")
	stop := run(t, w)

	// The snapshot, then the change.
	require.Eventually(t, func() bool {
		s := table.Snapshot()
		return s.Len() == 2 && slices.Equal(ids(s.Candidates("m1")), []string{"a"})
	}, waitFor, time.Millisecond)
	assert.Equal(t, []string{"b: refused"}, downIDs(table.Snapshot().Unavailable("m1")))
	assert.True(t, w.Live())

	// A later change on the same stream.
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("c", "m2")}, RemovedNodeIds: []string{"b"}}
	require.Eventually(t, func() bool {
		s := table.Snapshot()
		return s.Len() == 2 && slices.Equal(ids(s.Candidates("m2")), []string{"c"})
	}, waitFor, time.Millisecond)
	before := table.Snapshot()

	// healthmon goes away: the watcher retries, and the table keeps its
	// last state meanwhile.
	srv1.stop()
	dialsAtStop := d.dials.Load()
	require.Eventually(t, func() bool { return log.count(lostMsg) == 1 && d.dials.Load() >= dialsAtStop+3 },
		waitFor, time.Millisecond, "the watcher should notice and keep redialing")
	after := table.Snapshot()
	assert.False(t, w.Live(), "not live while healthmon is away")
	assert.Same(t, before, after, "the table is not touched while healthmon is away")
	assert.Equal(t, []string{"a"}, ids(after.Candidates("m1")))
	assert.Equal(t, []string{"c"}, ids(after.Candidates("m2")))

	// healthmon is back with different nodes: its snapshot replaces the
	// old state.
	second := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		sendThen(nil, &healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{up("d", "m3")}}),
	}}
	srv2 := startServer(t, second)
	d.cur.Store(srv2.lis)
	require.Eventually(t, func() bool {
		s := table.Snapshot()
		return s.Len() == 1 && slices.Equal(ids(s.Candidates("m3")), []string{"d"})
	}, waitFor, time.Millisecond)
	assert.Empty(t, table.Snapshot().Candidates("m1"), "nodes from before the outage are gone")
	require.Eventually(t, func() bool { return log.count(resumedMsg) == 1 }, waitFor, time.Millisecond)
	require.Eventually(t, w.Live, waitFor, time.Millisecond, "live again")
	assert.Equal(t, 1, log.count(lostMsg), "the loss is logged once, not on every retry")
	assert.Equal(t, int32(1), second.n.Load())

	stop()
}

func TestWatcherReconnects(t *testing.T) {
	snapshotOf := func(id string) *healthmonv1.WatchNodesResponse {
		return &healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{up(id, "m")}}
	}
	unavailable := func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
		return status.Error(codes.Unavailable, "not ready")
	}
	closeAfter := func(msgs ...*healthmonv1.WatchNodesResponse) func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
		return func(stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
			for _, m := range msgs {
				if err := stream.Send(m); err != nil {
					return err
				}
			}
			return nil
		}
	}
	cases := []struct {
		name      string
		calls     []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error
		wantCalls int32
	}{
		{
			name:      "after failed calls",
			calls:     []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{unavailable, unavailable, unavailable, sendThen(nil, snapshotOf("good"))},
			wantCalls: 4,
		},
		{
			name:      "after healthmon closed the stream",
			calls:     []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{closeAfter(snapshotOf("old")), sendThen(nil, snapshotOf("good"))},
			wantCalls: 2,
		},
		{
			name: "after a stream that did not start with a snapshot",
			calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
				sendThen(nil, &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("bogus", "m")}}),
				sendThen(nil, snapshotOf("good")),
			},
			wantCalls: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeHealthmon{calls: tc.calls}
			d := &dialer{}
			d.cur.Store(startServer(t, fake).lis)
			table := nodetable.New()
			run(t, &Watcher{Client: connect(t, d), Table: table, Log: slog.New(slog.DiscardHandler),
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})

			require.Eventually(t, func() bool {
				return slices.Equal(ids(table.Snapshot().Candidates("m")), []string{"good"})
			}, waitFor, time.Millisecond)
			assert.Equal(t, tc.wantCalls, fake.n.Load(), "the watcher stays on the good stream")
		})
	}
}

func TestWatcherIgnoresChangesBeforeSnapshot(t *testing.T) {
	firstEnded := make(chan struct{})
	proceed := make(chan struct{})
	fake := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		func(stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
			defer close(firstEnded)
			return sendThen(nil, &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("bogus", "m")}})(stream)
		},
		func(stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
			select {
			case <-proceed:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
			return sendThen(nil, &healthmonv1.WatchNodesResponse{Snapshot: true})(stream)
		},
	}}
	d := &dialer{}
	d.cur.Store(startServer(t, fake).lis)
	table := nodetable.New()
	run(t, &Watcher{Client: connect(t, d), Table: table, Log: slog.New(slog.DiscardHandler),
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})

	select {
	case <-firstEnded: // the watcher hung up on the stream
	case <-time.After(waitFor):
		t.Fatal("the watcher kept a stream that did not start with a snapshot")
	}
	assert.Zero(t, table.Snapshot().Len(), "a change before the snapshot is not applied")
	close(proceed)
	require.Eventually(t, func() bool { return fake.n.Load() == 2 }, waitFor, time.Millisecond)
}

func TestWatcherStopsDuringBackoff(t *testing.T) {
	fake := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
			return status.Error(codes.Unavailable, "down")
		},
	}}
	d := &dialer{}
	d.cur.Store(startServer(t, fake).lis)
	stop := run(t, &Watcher{Client: connect(t, d), Table: nodetable.New(), Log: slog.New(slog.DiscardHandler),
		MinBackoff: time.Hour, MaxBackoff: time.Hour})

	require.Eventually(t, func() bool { return fake.n.Load() == 1 }, waitFor, time.Millisecond)
	stop() // fails the test if Run sits out its hour-long backoff
	assert.Equal(t, int32(1), fake.n.Load())
}

// OnUp hears of a node that turns up and of a node healthmon confirms
// serving; an update of an up node's models or load is no news about its
// health (it must not close a breaker the router opened).
func TestOnUpOnlyForRecoveries(t *testing.T) {
	more := make(chan *healthmonv1.WatchNodesResponse)
	fake := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		sendThen(more, &healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{up("a", "m1"), down("b", "refused", "m1")}}),
	}}
	d := &dialer{}
	d.cur.Store(startServer(t, fake).lis)
	var mu sync.Mutex
	var ups []string
	stop := run(t, &Watcher{Client: connect(t, d), Table: nodetable.New(), Log: slog.New(&logs{}),
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnUp: func(id string) { mu.Lock(); ups = append(ups, id); mu.Unlock() }})
	defer stop()

	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("a", "m1", "m2")}} // a's models changed
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("b", "m1")}}       // b turns up
	more <- &healthmonv1.WatchNodesResponse{ConfirmedNodeIds: []string{"a"}}                 // a confirmed
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("b", "m1", "m3")}} // b's models changed
	more <- &healthmonv1.WatchNodesResponse{ConfirmedNodeIds: []string{"marker"}}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(ups, "marker")
	}, waitFor, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a", "b", "a", "marker"}, ups, "the snapshot's up node, b turning up, the confirmation")
}

// OnDown hears of an up node healthmon declares down (its requests still
// waiting for a first token can move on), not of a node that was down
// already nor of one that is loading.
func TestOnDownWhenAnUpNodeGoesDown(t *testing.T) {
	more := make(chan *healthmonv1.WatchNodesResponse)
	fake := &fakeHealthmon{calls: []func(grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error{
		sendThen(more, &healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{up("a", "m1"), down("b", "refused", "m1"), up("c", "m1")}}),
	}}
	d := &dialer{}
	d.cur.Store(startServer(t, fake).lis)
	var mu sync.Mutex
	var downs []string
	stop := run(t, &Watcher{Client: connect(t, d), Table: nodetable.New(), Log: slog.New(&logs{}),
		MinBackoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnDown: func(id string) { mu.Lock(); downs = append(downs, id); mu.Unlock() }})
	defer stop()

	loading := up("c", "m1")
	loading.Status = nodev1.Status_STATUS_LOADING
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{down("b", "still refused", "m1")}} // down already
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{loading}}                          // not down
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{down("a", "no answer", "m1")}}     // a goes down
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{up("marker", "m1")}}
	more <- &healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{down("marker", "gone", "m1")}}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(downs, "marker")
	}, waitFor, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a", "marker"}, downs)
}
