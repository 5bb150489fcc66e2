package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

// reply is one scripted probe outcome. ack is closed when the node's loop
// asks for its next probe, which it does only after it has judged and
// published this one.
type reply struct {
	res *nodev1.ProbeResult
	err error
	ack chan struct{}
}

type queue struct {
	replies chan reply

	mu      sync.Mutex
	pending chan struct{} // ack of the reply being judged
	calls   int
	active  int
	probed  *nodev1.Node // the node of the latest Probe call
}

// fakeProber stands in for the adapter's probes: every Probe blocks until
// the test hands it a result with step, so a test decides exactly what each
// probe finds and when, without sleeping.
type fakeProber struct {
	mu     sync.Mutex
	queues map[string]*queue
	active atomic.Int32 // Probe calls in progress, all nodes
}

func newProber() *fakeProber { return &fakeProber{queues: map[string]*queue{}} }

func (p *fakeProber) queue(id string) *queue {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.queues[id]
	if !ok {
		q = &queue{replies: make(chan reply)}
		p.queues[id] = q
	}
	return q
}

func (p *fakeProber) Probe(ctx context.Context, n *nodev1.Node) (*nodev1.ProbeResult, error) {
	p.active.Add(1)
	defer p.active.Add(-1)
	q := p.queue(n.GetId())
	q.mu.Lock()
	q.calls++
	q.active++
	q.probed = n
	if q.pending != nil {
		close(q.pending)
		q.pending = nil
	}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.active--
		q.mu.Unlock()
	}()
	select {
	case r := <-q.replies:
		q.mu.Lock()
		q.pending = r.ack
		q.mu.Unlock()
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// step makes node id's next probe find res (or fail with err) and waits
// until the monitor has judged it.
func (p *fakeProber) step(t *testing.T, id string, res *nodev1.ProbeResult, err error) {
	t.Helper()
	ack := make(chan struct{})
	select {
	case p.queue(id).replies <- reply{res: res, err: err, ack: ack}:
	case <-time.After(waitFor):
		t.Fatalf("node %s is not being probed", id)
	}
	select {
	case <-ack:
	case <-time.After(waitFor):
		t.Fatalf("node %s: the monitor did not come back for the next probe", id)
	}
}

func (p *fakeProber) calls(id string) (calls, active int) {
	q := p.queue(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls, q.active
}

func node(id string) *nodev1.Node {
	return &nodev1.Node{Id: id, Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://" + id + ":11434"}
}

// upRes is a successful probe listing models; a trailing "*" marks a
// model loaded.
func upRes(models ...string) *nodev1.ProbeResult {
	r := &nodev1.ProbeResult{Up: true, Reason: fmt.Sprintf("%d models", len(models)), Version: "0.5.1"}
	for _, m := range models {
		id, loaded := strings.CutSuffix(m, "*")
		r.Models = append(r.Models, &nodev1.ModelInfo{Id: id, Loaded: loaded})
	}
	return r
}

func downRes(reason string) *nodev1.ProbeResult {
	return &nodev1.ProbeResult{Up: false, Reason: reason}
}

var errAdapter = status.Error(codes.Unavailable, "adapter: connection refused")

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

func (l *logs) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

var testCfg = Config{Interval: time.Millisecond, Jitter: 0.5, Timeout: time.Minute, Rise: 2, Fall: 3}

func newMonitor(t *testing.T, cfg Config, nodes ...*nodev1.Node) (*Monitor, *fakeProber, *logs) {
	t.Helper()
	p := newProber()
	l := &logs{}
	m := New(cfg, p, slog.New(l))
	t.Cleanup(func() { m.Stop(context.Background()) })
	m.SetNodes(context.Background(), nodes)
	return m, p, l
}

// watch runs m.Watch and returns the messages it sends, and a func that
// ends the watch and returns Watch's error.
func watch(t *testing.T, m *Monitor) (<-chan *healthmonv1.WatchNodesResponse, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *healthmonv1.WatchNodesResponse, 4*WatcherBuffer)
	errc := make(chan error, 1)
	go func() {
		errc <- m.Watch(ctx, func(msg *healthmonv1.WatchNodesResponse) error {
			ch <- msg
			return nil
		})
	}()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-errc
	})
	t.Cleanup(func() { _ = stop() })
	return ch, stop
}

func next(t *testing.T, ch <-chan *healthmonv1.WatchNodesResponse) *healthmonv1.WatchNodesResponse {
	t.Helper()
	select {
	case msg := <-ch:
		return msg
	case <-time.After(waitFor):
		t.Fatal("no message from the monitor")
		return nil
	}
}

// nextState returns the single node state of the next change message.
func nextState(t *testing.T, ch <-chan *healthmonv1.WatchNodesResponse) *nodev1.NodeState {
	t.Helper()
	msg := next(t, ch)
	require.False(t, msg.GetSnapshot())
	require.Len(t, msg.GetNodes(), 1, "message %v", msg)
	return msg.GetNodes()[0]
}

func modelIDs(st *nodev1.NodeState) []string {
	var out []string
	for _, m := range st.GetModels() {
		id := m.GetId()
		if m.GetLoaded() {
			id += "*"
		}
		out = append(out, id)
	}
	return out
}

func stateOf(t *testing.T, m *Monitor, id string) *nodev1.NodeState {
	t.Helper()
	for _, st := range m.States() {
		if st.GetNode().GetId() == id {
			return st
		}
	}
	t.Fatalf("node %s is not monitored", id)
	return nil
}

func TestNewNodesStartUnknown(t *testing.T) {
	m, _, _ := newMonitor(t, testCfg)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	m.SetNodes(context.Background(), []*nodev1.Node{node("a"), node("b")})

	var got []string
	for range 2 {
		st := nextState(t, ch)
		assert.Equal(t, nodev1.Status_STATUS_UNSPECIFIED, st.GetStatus(), "nobody routes to a node before a probe succeeds")
		assert.Equal(t, "not probed yet", st.GetReason())
		got = append(got, st.GetNode().GetId())
	}
	assert.ElementsMatch(t, []string{"a", "b"}, got)
}

func TestFirstProbeDecides(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"), node("b"))
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	p.step(t, "a", upRes("m1*", "m2"), nil)
	st := nextState(t, ch)
	assert.Equal(t, "a", st.GetNode().GetId())
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus(), "one success is enough for an unknown node")
	assert.Equal(t, []string{"m1*", "m2"}, modelIDs(st))
	assert.Equal(t, "0.5.1", st.GetVersion())
	assert.Equal(t, "2 models", st.GetReason())
	assert.NotNil(t, st.GetChangedAt())

	p.step(t, "b", downRes("connect: connection refused"), nil)
	st = nextState(t, ch)
	assert.Equal(t, "b", st.GetNode().GetId())
	assert.Equal(t, nodev1.Status_STATUS_DOWN, st.GetStatus(), "one failure is enough for an unknown node")
	assert.Equal(t, "connect: connection refused", st.GetReason())
}

func TestFallHysteresis(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	// Fewer than Fall failures in a row, broken by a success: still up.
	for range testCfg.Fall - 1 {
		p.step(t, "a", downRes("timeout"), nil)
	}
	p.step(t, "a", upRes("m1"), nil)
	for range testCfg.Fall - 1 {
		p.step(t, "a", downRes("timeout"), nil)
		assert.Equal(t, nodev1.Status_STATUS_UP, stateOf(t, m, "a").GetStatus())
	}
	// The Fall-th failure in a row takes it down.
	p.step(t, "a", downRes("connect: connection refused"), nil)

	st := nextState(t, ch) // the first and only change
	assert.Equal(t, nodev1.Status_STATUS_DOWN, st.GetStatus())
	assert.Equal(t, "connect: connection refused", st.GetReason())
	assert.Equal(t, []string{"m1"}, modelIDs(st), "a down node keeps the models of its last success")
	assert.Equal(t, nodev1.Status_STATUS_DOWN, stateOf(t, m, "a").GetStatus())
}

func TestRiseHysteresis(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", downRes("refused"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	// A success broken by a failure does not count.
	for range testCfg.Rise - 1 {
		p.step(t, "a", upRes("m1"), nil)
	}
	p.step(t, "a", downRes("refused"), nil)
	for range testCfg.Rise - 1 {
		p.step(t, "a", upRes("m1"), nil)
		assert.Equal(t, nodev1.Status_STATUS_DOWN, stateOf(t, m, "a").GetStatus())
	}
	p.step(t, "a", upRes("m1", "m2*"), nil)

	st := nextState(t, ch)
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
	assert.Equal(t, []string{"m1", "m2*"}, modelIDs(st), "the models come from the probe that brought it up")
}

func TestChangesOnAnUpNode(t *testing.T) {
	cases := []struct {
		name string
		next *nodev1.ProbeResult
		want func(t *testing.T, st *nodev1.NodeState)
	}{
		{name: "a model added", next: upRes("m1", "m2"), want: func(t *testing.T, st *nodev1.NodeState) {
			assert.Equal(t, []string{"m1", "m2"}, modelIDs(st))
		}},
		{name: "a model removed", next: upRes(), want: func(t *testing.T, st *nodev1.NodeState) {
			assert.Empty(t, modelIDs(st))
		}},
		{name: "a model loaded", next: upRes("m1*"), want: func(t *testing.T, st *nodev1.NodeState) {
			assert.Equal(t, []string{"m1*"}, modelIDs(st))
		}},
		{name: "a new version", next: func() *nodev1.ProbeResult { r := upRes("m1"); r.Version = "0.6.0"; return r }(),
			want: func(t *testing.T, st *nodev1.NodeState) { assert.Equal(t, "0.6.0", st.GetVersion()) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, p, _ := newMonitor(t, testCfg, node("a"))
			p.step(t, "a", upRes("m1"), nil)
			ch, _ := watch(t, m)
			require.True(t, next(t, ch).GetSnapshot())
			before := stateOf(t, m, "a")

			p.step(t, "a", tc.next, nil)

			st := nextState(t, ch)
			assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
			tc.want(t, st)
			assert.NotSame(t, before, stateOf(t, m, "a"), "a published state is replaced, never mutated")
		})
	}
}

func TestUnchangedResultsPublishNothing(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("up"), node("down"))
	p.step(t, "up", upRes("m1"), nil)
	p.step(t, "down", downRes("refused"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	for range 5 {
		p.step(t, "up", upRes("m1"), nil)
		p.step(t, "down", downRes("refused"), nil)
		p.step(t, "down", downRes("i/o timeout"), nil) // only the reason differs
	}
	p.step(t, "up", upRes("marker"), nil)

	st := nextState(t, ch)
	assert.Equal(t, []string{"marker"}, modelIDs(st), "nothing was published before the first real change")
}

func TestProberErrorKeepsState(t *testing.T) {
	m, p, l := newMonitor(t, testCfg, node("a"), node("b"))
	p.step(t, "a", upRes("m1"), nil)
	p.step(t, "b", downRes("refused"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	for range testCfg.Fall + testCfg.Rise {
		p.step(t, "a", nil, errAdapter)
		p.step(t, "b", nil, errAdapter)
	}
	assert.Equal(t, nodev1.Status_STATUS_UP, stateOf(t, m, "a").GetStatus(), "an unreachable adapter says nothing about the node")
	assert.Equal(t, nodev1.Status_STATUS_DOWN, stateOf(t, m, "b").GetStatus())
	assert.Equal(t, 1, l.count("adapter unreachable"), "the outage is logged once")
	assert.Zero(t, l.count("adapter reachable again"))

	p.step(t, "a", upRes("marker"), nil)
	st := nextState(t, ch)
	assert.Equal(t, []string{"marker"}, modelIDs(st), "nothing was published during the adapter outage")
	assert.Equal(t, 1, l.count("adapter reachable again"))
}

// One node whose probes cannot be run while the others' can (the adapter
// times out on it) is one outage in the log, not one per probe.
func TestOneUnprobedNodeIsLoggedOnce(t *testing.T) {
	m, p, l := newMonitor(t, testCfg, node("a"), node("b"))
	p.step(t, "a", upRes("m1"), nil)
	p.step(t, "b", upRes("m2"), nil)
	for range 4 {
		p.step(t, "a", nil, errAdapter)
		p.step(t, "b", upRes("m2"), nil)
	}
	assert.Equal(t, 1, l.count("adapter unreachable"))
	assert.Equal(t, 1, l.count("adapter reachable again"))
	assert.Equal(t, nodev1.Status_STATUS_UP, stateOf(t, m, "a").GetStatus(), "a probe that did not run says nothing about the node")
}

// A note is part of the node's reason from when it is set, through later
// probes, until it is cleared.
func TestNotesJoinTheReason(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"), node("b"))
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())
	p.step(t, "a", upRes("m1"), nil)
	assert.Equal(t, "1 models", nextState(t, ch).GetReason())

	m.SetNotes(map[string]string{"a": "config conflict"})
	assert.Equal(t, "1 models; config conflict", nextState(t, ch).GetReason(), "published at once")
	m.SetNotes(map[string]string{"a": "config conflict"})
	p.step(t, "a", upRes("m1", "m2"), nil)
	st := nextState(t, ch)
	assert.Equal(t, "2 models; config conflict", st.GetReason(), "kept through probes; an unchanged note publishes nothing")
	assert.Equal(t, []string{"m1", "m2"}, modelIDs(st))

	m.SetNotes(nil)
	assert.Equal(t, "2 models", nextState(t, ch).GetReason())
	assert.Equal(t, "not probed yet", stateOf(t, m, "b").GetReason())
}

func TestProbeTimeout(t *testing.T) {
	cfg := testCfg
	cfg.Timeout = 5 * time.Millisecond
	m, p, _ := newMonitor(t, cfg, node("a"))

	// The prober never answers; each probe is cut off at Timeout and the
	// loop goes on probing.
	require.Eventually(t, func() bool { c, _ := p.calls("a"); return c >= 3 }, waitFor, time.Millisecond)
	assert.Equal(t, nodev1.Status_STATUS_UNSPECIFIED, stateOf(t, m, "a").GetStatus())
}

func TestWatchSnapshotThenChanges(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"), node("b"), node("c"))
	p.step(t, "a", upRes("m1"), nil)
	p.step(t, "b", downRes("refused"), nil)

	ch, stop := watch(t, m)

	snap := next(t, ch)
	require.True(t, snap.GetSnapshot())
	assert.Empty(t, snap.GetRemovedNodeIds())
	got := map[string]nodev1.Status{}
	for _, st := range snap.GetNodes() {
		got[st.GetNode().GetId()] = st.GetStatus()
	}
	assert.Equal(t, map[string]nodev1.Status{
		"a": nodev1.Status_STATUS_UP, "b": nodev1.Status_STATUS_DOWN, "c": nodev1.Status_STATUS_UNSPECIFIED,
	}, got, "the snapshot has every node's current state")

	p.step(t, "c", upRes("m3"), nil)
	msg := next(t, ch)
	assert.False(t, msg.GetSnapshot(), "only the first message is a snapshot")
	require.Len(t, msg.GetNodes(), 1)
	assert.Equal(t, "c", msg.GetNodes()[0].GetNode().GetId())
	assert.Equal(t, nodev1.Status_STATUS_UP, msg.GetNodes()[0].GetStatus())

	assert.ErrorIs(t, stop(), context.Canceled)
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Empty(t, m.watchers, "an ended watch is forgotten")
}

func TestWatchEndsWhenSendFails(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	broken := errors.New("stream broken")
	snapshot := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- m.Watch(context.Background(), func(msg *healthmonv1.WatchNodesResponse) error {
			if msg.GetSnapshot() {
				close(snapshot)
				return nil
			}
			return broken
		})
	}()
	<-snapshot
	p.step(t, "a", upRes("m1"), nil)
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, broken)
	case <-time.After(waitFor):
		t.Fatal("Watch did not end after send failed")
	}
}

func TestSetNodesRemovesNode(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"), node("b"))
	p.step(t, "a", upRes("m1"), nil)
	p.step(t, "b", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	m.SetNodes(context.Background(), []*nodev1.Node{node("a")})

	msg := next(t, ch)
	assert.Equal(t, []string{"b"}, msg.GetRemovedNodeIds())
	assert.Empty(t, msg.GetNodes())
	callsB, activeB := p.calls("b")
	assert.Zero(t, activeB, "SetNodes returns after the removed node's loop has stopped")
	require.Len(t, m.States(), 1)
	assert.Equal(t, "a", m.States()[0].GetNode().GetId())

	// The kept node goes on being probed; the removed one is not.
	for range 3 {
		p.step(t, "a", upRes("m1"), nil)
	}
	p.step(t, "a", upRes("marker"), nil)
	assert.Equal(t, []string{"marker"}, modelIDs(nextState(t, ch)), "the kept node was not restarted or republished")
	c, _ := p.calls("b")
	assert.Equal(t, callsB, c, "the removed node is no longer probed")
}

func TestSetNodesRestartsChangedNode(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	moved := node("a")
	moved.BaseUrl = "http://elsewhere:11434"
	m.SetNodes(context.Background(), []*nodev1.Node{moved})

	msg := next(t, ch)
	assert.Empty(t, msg.GetRemovedNodeIds(), "a changed node is not announced as removed")
	require.Len(t, msg.GetNodes(), 1)
	assert.Equal(t, "http://elsewhere:11434", msg.GetNodes()[0].GetNode().GetBaseUrl())
	assert.Equal(t, nodev1.Status_STATUS_UNSPECIFIED, msg.GetNodes()[0].GetStatus(), "a changed node is probed afresh")

	p.step(t, "a", upRes("m2"), nil)
	st := nextState(t, ch)
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
	assert.Equal(t, "http://elsewhere:11434", st.GetNode().GetBaseUrl())
	_, active := p.calls("a")
	assert.Equal(t, 1, active, "only the new loop probes the node")
}

// blockingWatch starts a watch whose send blocks on its first change until
// release is closed, and counts the changes it got. done yields Watch's
// error; cancel ends the watch.
func blockingWatch(t *testing.T, m *Monitor) (blocked, release chan struct{}, changes *atomic.Int32, done <-chan error, cancel func()) {
	t.Helper()
	blocked, release, changes = make(chan struct{}), make(chan struct{}), &atomic.Int32{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	snapshot := make(chan struct{})
	go func() {
		errc <- m.Watch(ctx, func(msg *healthmonv1.WatchNodesResponse) error {
			if msg.GetSnapshot() {
				close(snapshot)
				return nil
			}
			if changes.Add(1) == 1 {
				close(blocked)
				<-release
			}
			return nil
		})
	}()
	<-snapshot
	t.Cleanup(cancel)
	return blocked, release, changes, errc, cancel
}

func nodes(n int) []*nodev1.Node {
	out := make([]*nodev1.Node, n)
	for i := range out {
		out[i] = node(fmt.Sprintf("n%03d", i))
	}
	return out
}

func TestSlowWatcher(t *testing.T) {
	cases := []struct {
		name        string
		behind      int // changes queued while the watcher is stuck
		wantDropped bool
	}{
		{name: "WatcherBuffer behind is kept", behind: WatcherBuffer, wantDropped: false},
		{name: "one more is dropped", behind: WatcherBuffer + 1, wantDropped: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := newMonitor(t, testCfg)
			blocked, release, changes, done, cancel := blockingWatch(t, m)

			m.SetNodes(context.Background(), nodes(1)) // one change, which the watcher is stuck sending
			<-blocked
			m.SetNodes(context.Background(), nodes(1+tc.behind)) // one change per new node
			close(release)

			if tc.wantDropped {
				select {
				case err := <-done:
					assert.ErrorIs(t, err, ErrTooSlow)
					assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				case <-time.After(waitFor):
					t.Fatal("the slow watcher was not dropped")
				}
				m.mu.Lock()
				assert.Empty(t, m.watchers)
				m.mu.Unlock()
				// Reconnecting gives a fresh snapshot of everything.
				ch, _ := watch(t, m)
				assert.Len(t, next(t, ch).GetNodes(), 1+tc.behind)
				return
			}
			require.Eventually(t, func() bool { return changes.Load() == int32(1+tc.behind) }, waitFor, time.Millisecond,
				"every change reaches a watcher that catches up")
			cancel()
			assert.ErrorIs(t, <-done, context.Canceled, "the watcher was not dropped")
		})
	}
}

func TestStopWaitsForLoops(t *testing.T) {
	p := newProber()
	m := New(testCfg, p, slog.New(slog.DiscardHandler))
	ids := []string{"a", "b", "c"}
	var ns []*nodev1.Node
	for _, id := range ids {
		ns = append(ns, node(id))
	}
	m.SetNodes(context.Background(), ns)
	require.Eventually(t, func() bool { return p.active.Load() == int32(len(ids)) }, waitFor, time.Millisecond)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	m.Stop(context.Background())

	assert.Zero(t, p.active.Load(), "Stop returns after every probe has ended")
	assert.Empty(t, m.States())
	msg := next(t, ch)
	assert.ElementsMatch(t, ids, msg.GetRemovedNodeIds())
	// goleak in TestMain checks that no loop goroutine is left.
}

// After a router reports a node failing (Nudge), the first probe that
// starts afterwards and finds the node up confirms it (confirmed_node_ids),
// changed or not: the routers took the node out of rotation and must hear
// that it serves, even when the probes never saw it fail. Probes already
// running when the report came do not count.
func TestReportedNodeIsConfirmedUpOnce(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	require.True(t, m.Nudge("a"))
	p.step(t, "a", upRes("m1"), nil) // started before the report
	select {
	case msg := <-ch: // published before step returns, so never late
		t.Fatalf("a probe that started before the report confirmed it: %v", msg)
	default:
	}
	p.step(t, "a", downRes("refused"), nil) // one failure: fewer than Fall, no verdict change
	p.step(t, "a", upRes("m1"), nil)        // the confirmation
	p.step(t, "a", upRes("m1"), nil)        // nothing new
	p.step(t, "a", upRes("marker"), nil)

	msg := next(t, ch)
	assert.Equal(t, []string{"a"}, msg.GetConfirmedNodeIds(), "confirmed serving")
	assert.Empty(t, msg.GetNodes(), "its state did not change")
	assert.Equal(t, []string{"marker"}, modelIDs(nextState(t, ch)), "one confirmation per report")
	assert.False(t, m.Nudge("nope"))
}
