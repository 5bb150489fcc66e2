// Package monitor probes every LLM node on an interval with jitter, turns
// probe results into an up/down verdict with hysteresis, and publishes each
// change to watchers (a snapshot first, then changes).
package monitor

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Prober probes one node. An error means the probe could not be run (the
// adapter is unreachable), which says nothing about the node.
type Prober interface {
	Probe(ctx context.Context, node *nodev1.Node) (*nodev1.ProbeResult, error)
}

// Config tunes probing.
type Config struct {
	Interval time.Duration // between probes of one node; default 5s
	Jitter   float64       // ± fraction of Interval, in [0,1); default 0.2
	Timeout  time.Duration // one probe; default 5s
	Rise     int           // successes that bring a down node up; default 2
	Fall     int           // failures that take an up node down; default 2
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		c.Jitter = 0.2
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	if c.Fall <= 0 {
		c.Fall = 2
	}
	return c
}

// WatcherBuffer is how many changes a watcher may fall behind before it is
// dropped; a dropped watcher reconnects and gets a fresh snapshot.
const WatcherBuffer = 256

// Monitor owns the probe loops and the node states.
type Monitor struct {
	cfg    Config
	prober Prober
	log    *slog.Logger

	mu       sync.Mutex
	nodes    map[string]*tracked
	watchers map[*watcher]struct{}
	// adapterDown is set by the first probe that could not be run and
	// cleared by the next one that ran. A node whose probes keep failing
	// to run while others run sets it only once (tracked.unprobed), so
	// each outage is logged once, not once per probe.
	adapterDown bool
	gauge       metric.Registration // the watcher-count callback; nil when none
}

type tracked struct {
	node    *nodev1.Node      // as configured (SetNodes)
	state   *nodev1.NodeState // published state; replaced, never mutated
	streak  int               // consecutive results against the current status
	stop    context.CancelFunc
	stopped chan struct{}
	nudge   chan struct{} // a report asks for a probe now; holds at most one
	// reportedAt is when a router last reported the node failing, until a
	// probe started after it finds the node up and says so (see Nudge).
	reportedAt time.Time
	unprobed   bool   // the node's probes could not be run since its last one that ran
	reason     string // the published reason without the note
	note       string // appended to the reason (see SetNotes)
	// recognized is node with the kind and base URL its answers showed,
	// for a node whose kind is to be recognised (recognize_kind); nil
	// until a probe recognises it. It is the node published and probed.
	recognized *nodev1.Node
	// recheck asks the next probe of a recognised node to recognise it
	// again: its last probe failed, so it may be another server now.
	recheck bool
}

// published is the node as routers should see it: as recognised, once
// it is.
func (t *tracked) published() *nodev1.Node {
	if t.recognized != nil {
		return t.recognized
	}
	return t.node
}

// MinNudgeGap is the least time between probes of one node that nudges
// can cause, so many routers reporting one failure cause one probe.
const MinNudgeGap = 250 * time.Millisecond

// Nudge asks for node id to be probed now rather than at its next
// interval (a router saw it fail). It reports whether the node is known.
//
// The routers that saw the failure took the node out of rotation; they
// need to hear when it serves again even if the probes never saw it fail
// (it came back within a probe interval, or failed fewer than Fall times).
// So the first probe that starts after a nudge and finds the node up
// names it in confirmed_node_ids, with its state if that changed.
func (m *Monitor) Nudge(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.nodes[id]
	if !ok {
		return false
	}
	t.reportedAt = time.Now()
	select {
	case t.nudge <- struct{}{}:
	default: // a probe is already asked for
	}
	return true
}

type watcher struct {
	ch      chan *healthmonv1.WatchNodesResponse
	dropped chan struct{}
}

// New returns a Monitor with no nodes.
func New(cfg Config, p Prober, log *slog.Logger) *Monitor {
	m := &Monitor{cfg: cfg.withDefaults(), prober: p, log: log,
		nodes: map[string]*tracked{}, watchers: map[*watcher]struct{}{}}
	observeWatchers(m)
	return m
}

// SetNodes makes nodes the monitored set: new nodes start probing (their
// status is unknown, so nobody routes to them before a probe succeeds),
// removed ones stop and are announced as removed, changed ones restart.
// Probe loops live until ctx is done or the node is removed; Stop waits
// for them.
func (m *Monitor) SetNodes(ctx context.Context, nodes []*nodev1.Node) {
	var stopping []chan struct{}
	defer func() {
		// Wait outside the lock: a loop may be about to take it.
		for _, s := range stopping {
			<-s
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]*nodev1.Node{}
	for _, n := range nodes {
		want[n.GetId()] = n
	}
	var removed []string
	for id, t := range m.nodes {
		if n, ok := want[id]; ok && proto.Equal(n, t.node) {
			delete(want, id)
			continue
		}
		t.stop()
		stopping = append(stopping, t.stopped)
		delete(m.nodes, id)
		if _, readded := want[id]; !readded {
			removed = append(removed, id)
		}
	}
	if len(removed) > 0 {
		m.publishLocked(&healthmonv1.WatchNodesResponse{RemovedNodeIds: removed})
	}
	for id, n := range want {
		lctx, cancel := context.WithCancel(ctx)
		t := &tracked{node: n, state: &nodev1.NodeState{Node: n, Reason: "not probed yet", ChangedAt: timestamppb.Now()},
			reason: "not probed yet", stop: cancel, stopped: make(chan struct{}), nudge: make(chan struct{}, 1)}
		m.nodes[id] = t
		m.publishLocked(&healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{t.state}})
		go func() {
			defer close(t.stopped)
			m.loop(lctx, n, t.nudge)
		}()
	}
}

// SetNotes sets a note for each node id in notes, and clears the others'.
// A note is appended to the node's reason ("…; note"), so what is wrong
// with a node's configuration shows wherever its state does; a changed
// note is published at once.
func (m *Monitor) SetNotes(notes map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range m.nodes {
		note := notes[id]
		if note == t.note {
			continue
		}
		t.note = note
		next := proto.CloneOf(t.state)
		next.Reason = withNote(t.reason, note)
		t.state = next
		m.publishLocked(&healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{next}})
	}
}

func withNote(reason, note string) string {
	if note == "" {
		return reason
	}
	return reason + "; " + note
}

// Stop ends every probe loop and waits for them. ctx carries values only
// (a caller shutting down passes a context that is already done).
func (m *Monitor) Stop(ctx context.Context) {
	m.SetNodes(context.WithoutCancel(ctx), nil)
	if m.gauge != nil {
		_ = m.gauge.Unregister()
	}
}

// adapterRetry bounds the wait before re-probing when the adapter could not
// run a probe (e.g. it is still starting): the node has no verdict yet.
const adapterRetry = 500 * time.Millisecond

func (m *Monitor) loop(ctx context.Context, n *nodev1.Node, nudge <-chan struct{}) {
	for {
		last := time.Now()
		ran := m.probe(ctx, n)
		spread := float64(m.cfg.Interval) * m.cfg.Jitter
		wait := m.cfg.Interval + time.Duration((rand.Float64()*2-1)*spread)
		if !ran {
			wait = min(wait, adapterRetry)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-nudge:
			t.Stop()
			if gap := MinNudgeGap - time.Since(last); gap > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
			}
		}
	}
}

// AnswerSlack is added to Config.Timeout for the probe call: the adapter
// ends a probe before the call's deadline (its probe.AnswerMargin), so a
// node that never answers is judged down within Timeout and the call
// itself fails only when the adapter is really away.
const AnswerSlack = 500 * time.Millisecond

// probe probes n once and applies the result. It reports whether the
// probe ran (false when the adapter could not be asked).
func (m *Monitor) probe(ctx context.Context, n *nodev1.Node) bool {
	started := time.Now()
	target := m.target(n)
	sctx, span := tracer.Start(ctx, "probe "+n.GetId(), trace.WithAttributes(attrNode.String(n.GetId()),
		attribute.String("llmesh.node.kind", strings.ToLower(strings.TrimPrefix(target.GetKind().String(), "KIND_")))))
	pctx, cancel := context.WithTimeout(sctx, m.cfg.Timeout+AnswerSlack)
	res, err := m.prober.Probe(pctx, target)
	cancel()
	probed(sctx, span, n.GetId(), time.Since(started), res, err)
	if ctx.Err() != nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.nodes[n.GetId()]
	if !ok || !proto.Equal(t.node, n) {
		return err == nil // removed or replaced while probing
	}
	if err != nil {
		// The adapter could not run the probe: keep the last verdict and
		// say so once per outage.
		if !t.unprobed && !m.adapterDown {
			m.log.Warn("adapter unreachable; keeping last node states", "node", n.GetId(), "err", err)
			m.adapterDown = true
		}
		t.unprobed = true
		return false
	}
	t.unprobed = false
	if m.adapterDown {
		m.log.Info("adapter reachable again")
		m.adapterDown = false
	}
	recognized := m.recognizeLocked(t, res)
	next, changed := m.judge(t, res)
	judged := changed
	if recognized && !changed {
		// The status waits for more probes, but the node is another kind.
		next = proto.CloneOf(t.state)
		next.Node, next.KindRecognized, next.ChangedAt = t.published(), true, timestamppb.Now()
		changed = true
	}
	confirms := !t.reportedAt.IsZero() && started.After(t.reportedAt) && res.GetUp()
	var confirmed []string
	if confirms && (next.GetStatus() == nodev1.Status_STATUS_UP || (!changed && t.state.GetStatus() == nodev1.Status_STATUS_UP)) {
		t.reportedAt = time.Time{}
		confirmed = []string{n.GetId()}
		if !changed {
			m.publishLocked(&healthmonv1.WatchNodesResponse{ConfirmedNodeIds: confirmed})
			return true
		}
	}
	if !changed {
		return true
	}
	if next.GetStatus() != t.state.GetStatus() {
		m.log.Info("node status", "node", n.GetId(), "status", next.GetStatus().String(), "reason", next.GetReason())
	}
	t.state = next
	if judged {
		t.reason = res.GetReason()
	}
	m.publishLocked(&healthmonv1.WatchNodesResponse{Nodes: []*nodev1.NodeState{next}, ConfirmedNodeIds: confirmed})
	return true
}

// target is the node to probe for n: n itself until its kind is
// recognised (recognize_kind), then the node as recognised — without
// recognize_kind, so the steady probe asks nothing beyond its kind's own
// URLs, unless the last probe failed and the node is to be recognised
// again.
func (m *Monitor) target(n *nodev1.Node) *nodev1.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.nodes[n.GetId()]
	if !ok || !n.GetRecognizeKind() || t.recognized == nil || !proto.Equal(t.node, n) {
		return n
	}
	target := proto.CloneOf(t.recognized)
	target.RecognizeKind = t.recheck
	return target
}

// recognizeLocked takes what a probe recognised the node as. It reports
// whether the node changed: recognised for the first time, or as another
// kind (or at another base URL) than before, which it logs.
func (m *Monitor) recognizeLocked(t *tracked, res *nodev1.ProbeResult) bool {
	if !t.node.GetRecognizeKind() {
		return false
	}
	k := res.GetRecognizedKind()
	if k == nodev1.Kind_KIND_UNSPECIFIED {
		if !res.GetUp() && t.recognized != nil {
			t.recheck = true
		}
		return false
	}
	t.recheck = false
	rec := proto.CloneOf(t.node)
	rec.Kind, rec.BaseUrl = k, res.GetRecognizedBaseUrl()
	if t.recognized != nil && proto.Equal(rec, t.recognized) {
		return false
	}
	attrs := []any{"node", rec.GetId(), "kind", nodespec.KindName(k), "url", rec.GetBaseUrl()}
	if t.recognized != nil {
		attrs = append(attrs, "was", nodespec.KindName(t.recognized.GetKind()))
	}
	m.log.Info("node kind recognised", attrs...)
	t.recognized = rec
	return true
}

// judge applies hysteresis: an unknown node takes the first verdict; an up
// node goes down after Fall failures in a row; a node that is not up comes
// up after Rise successes in a row. A node that refuses llmesh's
// credentials (STATUS_MISCONFIGURED) or says it is still loading
// (STATUS_LOADING) takes that status at once — neither is a failure to
// count, and neither takes requests; from either, a failed probe is DOWN
// at once. It returns the state to publish, if any.
func (m *Monitor) judge(t *tracked, res *nodev1.ProbeResult) (*nodev1.NodeState, bool) {
	cur := t.state
	verdict := verdictOf(res)
	status := cur.GetStatus()
	switch {
	case status == nodev1.Status_STATUS_UNSPECIFIED || verdict == status,
		verdict == nodev1.Status_STATUS_MISCONFIGURED || verdict == nodev1.Status_STATUS_LOADING,
		verdict == nodev1.Status_STATUS_DOWN && status != nodev1.Status_STATUS_UP:
		t.streak = 0
		status = verdict
	default:
		t.streak++
		need := m.cfg.Fall
		if verdict == nodev1.Status_STATUS_UP {
			need = m.cfg.Rise
		}
		if t.streak < need {
			return nil, false
		}
		t.streak = 0
		status = verdict
	}
	next := &nodev1.NodeState{Node: t.published(), KindRecognized: t.recognized != nil, Status: status,
		Reason: withNote(res.GetReason(), t.note), Models: cur.GetModels(), Version: cur.GetVersion(), ChangedAt: cur.GetChangedAt()}
	if res.GetUp() {
		next.Models = res.GetModels()
		next.Version = res.GetVersion()
		next.Load = res.GetLoad()
	}
	if status == cur.GetStatus() && sameModels(next.GetModels(), cur.GetModels()) && next.GetVersion() == cur.GetVersion() &&
		proto.Equal(next.GetLoad(), cur.GetLoad()) && proto.Equal(next.GetNode(), cur.GetNode()) {
		return nil, false // nothing a router cares about changed
	}
	next.ChangedAt = timestamppb.Now()
	return next, true
}

// verdictOf is the status one probe result argues for.
func verdictOf(res *nodev1.ProbeResult) nodev1.Status {
	switch {
	case res.GetUp():
		return nodev1.Status_STATUS_UP
	case res.GetStatus() == nodev1.Status_STATUS_MISCONFIGURED, res.GetStatus() == nodev1.Status_STATUS_LOADING:
		return res.GetStatus()
	default:
		return nodev1.Status_STATUS_DOWN
	}
}

func sameModels(a, b []*nodev1.ModelInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// publishLocked sends msg to every watcher, dropping those that fell
// WatcherBuffer messages behind.
func (m *Monitor) publishLocked(msg *healthmonv1.WatchNodesResponse) {
	for w := range m.watchers {
		select {
		case w.ch <- msg:
		default:
			delete(m.watchers, w)
			close(w.dropped)
		}
	}
}

// Watch calls send with a snapshot of every node, then with each change,
// until ctx is done, send fails, or the watcher falls too far behind
// (ErrTooSlow).
func (m *Monitor) Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error {
	w := &watcher{ch: make(chan *healthmonv1.WatchNodesResponse, WatcherBuffer), dropped: make(chan struct{})}
	m.mu.Lock()
	snap := &healthmonv1.WatchNodesResponse{Snapshot: true}
	for _, t := range m.nodes {
		snap.Nodes = append(snap.Nodes, t.state)
	}
	m.watchers[w] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	}()
	if err := send(snap); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.dropped:
			return ErrTooSlow
		case msg := <-w.ch:
			if err := send(msg); err != nil {
				return err
			}
		}
	}
}

// States returns the current state of every node.
func (m *Monitor) States() []*nodev1.NodeState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*nodev1.NodeState, 0, len(m.nodes))
	for _, t := range m.nodes {
		out = append(out, t.state)
	}
	return out
}
