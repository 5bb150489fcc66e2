package watchsvc

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/healthmon/internal/monitor"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

// serve runs svc on a meshkit gRPC server over bufconn and returns a
// client for it.
func serve(t *testing.T, svc *Service) healthmonv1.HealthmonServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcserver.New(slog.New(slog.DiscardHandler))
	healthmonv1.RegisterHealthmonServiceServer(srv.GRPC, svc)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, 5*time.Second) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		require.NoError(t, <-served)
	})
	return healthmonv1.NewHealthmonServiceClient(conn)
}

// chanProber stands in for the adapter's probes: each probe finds the next
// result the test sends.
type chanProber chan *nodev1.ProbeResult

func (p chanProber) Probe(ctx context.Context, _ *nodev1.Node) (*nodev1.ProbeResult, error) {
	select {
	case r := <-p:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// endWatcher wraps a Watcher: ended is closed when its Watch returns, and
// closing quit ends the watch regardless, so a failing test does not hang.
type endWatcher struct {
	inner Watcher
	quit  chan struct{}
	ended chan struct{}
}

func (*endWatcher) Nudge(string) bool { return false }

func (w *endWatcher) Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error {
	defer close(w.ended)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return w.inner.Watch(ctx, send)
}

func recv(t *testing.T, s grpc.ServerStreamingClient[healthmonv1.WatchNodesResponse]) *healthmonv1.WatchNodesResponse {
	t.Helper()
	msg, err := s.Recv()
	require.NoError(t, err)
	return msg
}

func TestWatchNodesStreamsSnapshotThenChanges(t *testing.T) {
	probes := make(chanProber)
	m := monitor.New(monitor.Config{Interval: time.Millisecond, Timeout: time.Minute}, probes, slog.New(slog.DiscardHandler))
	defer m.Stop(context.Background())
	m.SetNodes(context.Background(), []*nodev1.Node{{Id: "gpu-1", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://gpu-1:11434"}})
	w := &endWatcher{inner: m, quit: make(chan struct{}), ended: make(chan struct{})}
	client := serve(t, New(context.Background(), w))
	t.Cleanup(func() { close(w.quit) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stream, err := client.WatchNodes(ctx, &healthmonv1.WatchNodesRequest{})
	require.NoError(t, err)

	snap := recv(t, stream)
	assert.True(t, snap.GetSnapshot())
	require.Len(t, snap.GetNodes(), 1)
	assert.Equal(t, "gpu-1", snap.GetNodes()[0].GetNode().GetId())
	assert.Equal(t, "http://gpu-1:11434", snap.GetNodes()[0].GetNode().GetBaseUrl())
	assert.Equal(t, nodev1.Status_STATUS_UNSPECIFIED, snap.GetNodes()[0].GetStatus())

	probes <- &nodev1.ProbeResult{Up: true, Reason: "1 model", Models: []*nodev1.ModelInfo{{Id: "llama3", Loaded: true}}}

	change := recv(t, stream)
	assert.False(t, change.GetSnapshot())
	require.Len(t, change.GetNodes(), 1)
	st := change.GetNodes()[0]
	assert.Equal(t, "gpu-1", st.GetNode().GetId())
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
	require.Len(t, st.GetModels(), 1)
	assert.Equal(t, "llama3", st.GetModels()[0].GetId())
	assert.True(t, st.GetModels()[0].GetLoaded())

	m.SetNodes(context.Background(), nil)
	removed := recv(t, stream)
	assert.Equal(t, []string{"gpu-1"}, removed.GetRemovedNodeIds())

	// The caller leaving ends the monitor's watch.
	cancel()
	select {
	case <-w.ended:
	case <-time.After(waitFor):
		t.Fatal("the monitor's watch did not end when the caller left")
	}
}

// scriptedWatcher sends msgs, then ends with err (nil: waits for the
// caller to go away), reporting the end of its context on gone. quit ends
// it regardless, so a failing test does not hang.
type scriptedWatcher struct {
	msgs []*healthmonv1.WatchNodesResponse
	err  error
	gone chan struct{}
	quit chan struct{}
}

func (*scriptedWatcher) Nudge(string) bool { return false }

func (w *scriptedWatcher) Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error {
	for _, m := range w.msgs {
		if err := send(m); err != nil {
			return err
		}
	}
	if w.err != nil {
		return w.err
	}
	select {
	case <-ctx.Done():
		close(w.gone)
		return ctx.Err()
	case <-w.quit:
		return status.Error(codes.Aborted, "test over")
	}
}

func TestWatchNodesSlowWatcherIsResourceExhausted(t *testing.T) {
	w := &scriptedWatcher{msgs: []*healthmonv1.WatchNodesResponse{{Snapshot: true}}, err: monitor.ErrTooSlow}
	client := serve(t, New(context.Background(), w))

	stream, err := client.WatchNodes(context.Background(), &healthmonv1.WatchNodesRequest{})
	require.NoError(t, err)
	assert.True(t, recv(t, stream).GetSnapshot())
	_, err = stream.Recv()
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "the caller learns to reconnect for a fresh snapshot")
}

func TestWatchNodesEndsWhenTheCallerLeaves(t *testing.T) {
	w := &scriptedWatcher{msgs: []*healthmonv1.WatchNodesResponse{{Snapshot: true}}, gone: make(chan struct{}), quit: make(chan struct{})}
	client := serve(t, New(context.Background(), w))
	t.Cleanup(func() { close(w.quit) })
	ctx, cancel := context.WithCancel(context.Background())

	stream, err := client.WatchNodes(ctx, &healthmonv1.WatchNodesRequest{})
	require.NoError(t, err)
	assert.True(t, recv(t, stream).GetSnapshot())
	cancel()

	select {
	case <-w.gone:
	case <-time.After(waitFor):
		t.Fatal("the watch did not see the caller leave")
	}
	_, err = stream.Recv()
	assert.Equal(t, codes.Canceled, status.Code(err))
}

// A shutting-down healthmon ends its watch streams (UNAVAILABLE, so
// routers reconnect) instead of holding its graceful stop for its grace.
func TestWatchNodesEndsWhenHealthmonStops(t *testing.T) {
	w := &scriptedWatcher{msgs: []*healthmonv1.WatchNodesResponse{{Snapshot: true}}, gone: make(chan struct{}), quit: make(chan struct{})}
	serving, stop := context.WithCancel(context.Background())
	client := serve(t, New(serving, w))
	t.Cleanup(func() { close(w.quit) })

	stream, err := client.WatchNodes(context.Background(), &healthmonv1.WatchNodesRequest{})
	require.NoError(t, err)
	assert.True(t, recv(t, stream).GetSnapshot())
	stop()

	select {
	case <-w.gone:
	case <-time.After(waitFor):
		t.Fatal("the watch did not end when healthmon stopped")
	}
	_, err = stream.Recv()
	assert.Equal(t, codes.Unavailable, status.Code(err))
}

type nudgeWatcher struct {
	scriptedWatcher
	nudged []string
}

func (w *nudgeWatcher) Nudge(id string) bool {
	w.nudged = append(w.nudged, id)
	return id == "known"
}

func TestReportOutcome(t *testing.T) {
	w := &nudgeWatcher{}
	client := serve(t, New(context.Background(), w))
	ctx := context.Background()
	_, err := client.ReportOutcome(ctx, &healthmonv1.ReportOutcomeRequest{})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = client.ReportOutcome(ctx, &healthmonv1.ReportOutcomeRequest{NodeId: "unknown", Failed: true})
	assert.Equal(t, codes.NotFound, status.Code(err))
	_, err = client.ReportOutcome(ctx, &healthmonv1.ReportOutcomeRequest{NodeId: "known", Failed: true, Reason: "connect: connection refused"})
	assert.NoError(t, err)
	_, err = client.ReportOutcome(ctx, &healthmonv1.ReportOutcomeRequest{NodeId: "known", Failed: false})
	assert.NoError(t, err)
	assert.Equal(t, []string{"unknown", "known"}, w.nudged, "only failures ask for a probe")
}
