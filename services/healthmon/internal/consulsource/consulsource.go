// Package consulsource connects healthmon to Consul: LLM nodes come from a
// Consul service (watched with blocking queries), and healthmon's verdict
// on each goes back to Consul as a check on that node's service, so the
// Consul UI and health API tell the truth.
//
// Several healthmon replicas can run: all of them probe and serve the node
// stream, but only the holder of a Consul lock (key LockKey) writes checks,
// so replicas that briefly disagree never make a check flap.
package consulsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/consulwatch"
	"google.golang.org/protobuf/encoding/protojson"
)

// LockKey is the KV key whose holder writes checks.
const LockKey = "llmesh/healthmon/check-writer"

// DefaultCheckTTL bounds how long a check written to an agent stays as
// written when no healthmon refreshes it. The check writer refreshes each
// such check every third of it.
const DefaultCheckTTL = 10 * time.Minute

// callTimeout bounds one Consul write or lookup, so an agent that stopped
// answering cannot stall the check writer.
const callTimeout = 10 * time.Second

// Nodes is what the source drives: the monitor's node set and its stream.
type Nodes interface {
	SetNodes(ctx context.Context, nodes []*nodev1.Node)
	SetNotes(notes map[string]string)
	Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error
}

// Source feeds Nodes from Consul and writes verdicts back.
type Source struct {
	Client  *api.Client
	Service string
	Nodes   Nodes
	Log     *slog.Logger
	// Static are healthmon's own configured nodes. They are registered in
	// Consul (again whenever they go missing there, e.g. after Consul lost
	// its state) and stay monitored whatever Consul says meanwhile. When
	// Consul has another registration under a static node's id, Consul's
	// wins: it is the one every router's fallback sees. The conflict is
	// logged once and noted in that node's reason.
	Static []*nodev1.Node
	// Wait bounds one blocking query (consulwatch.Watch.Wait).
	Wait time.Duration
	// CheckTTL is the TTL of checks written to an agent (DefaultCheckTTL
	// when zero).
	CheckTTL time.Duration

	// wmu orders check writes: a refresh never rewrites a verdict that a
	// newer write has replaced meanwhile.
	wmu       sync.Mutex
	mu        sync.Mutex
	placement map[string]placement // by node id
	reported  map[string]string    // invalid instance id → reason already logged
	conflicts map[string]string    // static node id → the conflict already logged
	invalid   map[string]verdict   // the check of each bad registration
	desired   map[string]verdict   // the check each monitored node should have
	written   map[string]verdict   // the check last written for each node
	kv        map[string]string    // KV's copy of each node's state as last written; "" = deleted
	leader    atomic.Bool          // this replica holds the writer lock
	viewed    atomic.Bool          // the monitor has had Consul's view of the nodes
}

// verdict is the status and output of llmesh's check on a node.
type verdict struct{ status, output string }

// placement is where a node's service lives in Consul.
type placement struct {
	consulNode string
	address    string
	external   bool // registered in the catalog, on a node without an agent
}

// Run watches Consul and writes checks until ctx is done.
func (s *Source) Run(ctx context.Context) error {
	s.placement = map[string]placement{}
	s.reported = map[string]string{}
	s.conflicts = map[string]string{}
	s.invalid = map[string]verdict{}
	s.desired = map[string]verdict{}
	s.written = map[string]verdict{}
	s.kv = map[string]string{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.writeWhileLeader(ctx)
	}()
	// Until Consul first answers, the static nodes are all there is.
	s.Nodes.SetNodes(ctx, s.Static)
	w := &consulwatch.Watch{Client: s.Client, Service: s.Service, Wait: s.Wait, Log: s.Log}
	w.Run(ctx, func(entries []*api.ServiceEntry) { s.apply(ctx, entries) })
	wg.Wait()
	return nil
}

func (s *Source) apply(ctx context.Context, entries []*api.ServiceEntry) {
	nodes, invalid := consulnodes.FromEntries(entries)
	s.Log.Debug("consul view", "service", s.Service, "nodes", len(nodes), "invalid", len(invalid))
	nodes = s.withStatic(ctx, nodes)
	s.mu.Lock()
	old := s.placement
	s.placement = map[string]placement{}
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		id := e.Service.ID
		p := placement{consulNode: e.Node.Node, address: e.Node.Address, external: e.Node.Meta["external-node"] == "true"}
		s.placement[id] = p
		if old[id] != p || !hasCheck(e, s.written[id]) {
			delete(s.written, id) // new here, or Consul lost or changed the check: write again
		}
	}
	for id := range s.written {
		if _, ok := s.placement[id]; !ok {
			delete(s.written, id) // gone from Consul: a node registered again under its id starts afresh
		}
	}
	reported := map[string]string{}
	s.invalid = map[string]verdict{}
	for _, bad := range invalid {
		if s.reported[bad.ID] != bad.Reason {
			s.Log.Warn("skipping LLM node with a bad registration", "id", bad.ID, "consul_node", bad.Node, "reason", bad.Reason)
		}
		reported[bad.ID] = bad.Reason
		s.invalid[bad.ID] = verdict{api.HealthCritical, "llmesh: bad registration: " + bad.Reason}
	}
	s.reported = reported
	s.mu.Unlock()
	s.Nodes.SetNodes(ctx, nodes)
	s.Nodes.SetNotes(s.conflicts)
	s.viewed.Store(true)
	s.sync(ctx)
}

// putStates keeps KV's copy of node states current: an up node's state is
// put when it changed; a node that is not up, or left, has its entry
// deleted, so KV holds exactly the nodes healthmon last judged up (what
// routers that lose healthmon may route to). A snapshot also deletes
// entries of nodes healthmon no longer knows.
//
// complete says whether a snapshot in msg holds every node Consul lists:
// taken before Consul's first answer it holds only the static nodes, and
// deleting the others' entries then would take them from the routers'
// fallback.
func (s *Source) putStates(ctx context.Context, msg *healthmonv1.WatchNodesResponse, complete bool) {
	kv := s.Client.KV()
	set := func(id, value string) {
		s.mu.Lock()
		cur, known := s.kv[id]
		s.mu.Unlock()
		if known && cur == value {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		opts := (&api.WriteOptions{}).WithContext(cctx)
		var err error
		if value == "" {
			_, err = kv.Delete(consulnodes.StatePrefix+id, opts)
		} else {
			_, err = kv.Put(&api.KVPair{Key: consulnodes.StatePrefix + id, Value: []byte(value)}, opts)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("writing node state to consul kv", "node", id, "err", err)
			}
			return
		}
		s.mu.Lock()
		s.kv[id] = value
		s.mu.Unlock()
	}
	if msg.GetSnapshot() && complete {
		s.deleteStale(ctx, msg.GetNodes())
	}
	for _, st := range msg.GetNodes() {
		id := st.GetNode().GetId()
		if st.GetStatus() != nodev1.Status_STATUS_UP {
			set(id, "")
			continue
		}
		// changed_at is left out so that an unchanged state is unchanged bytes.
		b, err := protojson.Marshal(&nodev1.NodeState{Node: st.GetNode(), Status: st.GetStatus(), Reason: st.GetReason(),
			Models: st.GetModels(), Version: st.GetVersion(), KindRecognized: st.GetKindRecognized()})
		if err != nil {
			continue
		}
		set(id, string(b))
	}
	for _, id := range msg.GetRemovedNodeIds() {
		set(id, "")
	}
}

// deleteStale deletes the KV entries of nodes not in nodes (left while no
// healthmon wrote).
func (s *Source) deleteStale(ctx context.Context, nodes []*nodev1.NodeState) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	keys, _, err := s.Client.KV().Keys(consulnodes.StatePrefix, "", (&api.QueryOptions{}).WithContext(cctx))
	if err != nil {
		return // the next snapshot tries again
	}
	known := map[string]bool{}
	for _, st := range nodes {
		known[consulnodes.StatePrefix+st.GetNode().GetId()] = true
	}
	for _, k := range keys {
		if !known[k] {
			if _, err := s.Client.KV().Delete(k, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
				return
			}
		}
	}
}

// hasCheck reports whether e carries llmesh's check with v's status. The
// output is not compared: an agent syncs output-only changes late.
func hasCheck(e *api.ServiceEntry, v verdict) bool {
	for _, c := range e.Checks {
		if c.CheckID == consulnodes.CheckID(e.Service.ID) {
			return c.Status == v.status
		}
	}
	return false
}

// withStatic adds the static nodes Consul does not list (yet, or any more)
// and registers those again.
func (s *Source) withStatic(ctx context.Context, nodes []*nodev1.Node) []*nodev1.Node {
	listed := map[string]*nodev1.Node{}
	for _, n := range nodes {
		listed[n.GetId()] = n
	}
	conflicts := map[string]string{}
	for _, n := range s.Static {
		if c, ok := listed[n.GetId()]; ok {
			if consulnodes.KindOf(c) != consulnodes.KindOf(n) || c.GetBaseUrl() != n.GetBaseUrl() {
				conflicts[n.GetId()] = fmt.Sprintf("the nodes file's %s node at %s is ignored: Consul registers this id as a %s node at %s",
					consulnodes.KindOf(n), n.GetBaseUrl(), consulnodes.KindOf(c), c.GetBaseUrl())
			}
			continue
		}
		nodes = append(nodes, n)
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := consulnodes.RegisterExternal(cctx, s.Client, s.Service, n)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("registering static node in consul", "node", n.GetId(), "err", err)
		}
	}
	for id, c := range conflicts {
		if s.conflicts[id] != c {
			s.Log.Warn("static node conflicts with consul; using consul's registration", "node", id, "conflict", c)
		}
	}
	s.conflicts = conflicts
	return nodes
}

// writeWhileLeader holds the writer lock whenever it can and, while
// holding it, writes every node state it sees.
func (s *Source) writeWhileLeader(ctx context.Context) {
	for ctx.Err() == nil {
		// A holder that dies loses the lock when its session's TTL runs out
		// (Consul allows up to twice the TTL); a short lock delay then lets
		// another replica take over within seconds.
		lock, err := s.Client.LockOpts(&api.LockOptions{Key: LockKey, SessionOpts: &api.SessionEntry{
			Name: "llmesh-healthmon", TTL: "10s", LockDelay: time.Second, Behavior: api.SessionBehaviorRelease,
		}})
		if err != nil {
			s.Log.Error("consul lock", "err", err)
			return
		}
		lost, err := lock.Lock(ctx.Done())
		if err != nil || lost == nil {
			// Consul unreachable or ctx done: try again shortly.
			sleep(ctx, time.Second)
			continue
		}
		s.Log.Info("writing node checks to consul (holding the writer lock)")
		s.mu.Lock()
		s.written = map[string]verdict{} // another replica may have written meanwhile
		s.kv = map[string]string{}
		s.mu.Unlock()
		s.leader.Store(true)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
			case <-lctx.Done():
			}
			cancel()
		}()
		refreshed := make(chan struct{})
		go func() {
			defer close(refreshed)
			s.refreshWhileLeader(lctx)
		}()
		complete := s.viewed.Load() // before Watch takes its snapshot
		_ = s.Nodes.Watch(lctx, func(msg *healthmonv1.WatchNodesResponse) error {
			s.mu.Lock()
			if msg.GetSnapshot() {
				s.desired = map[string]verdict{}
			}
			for _, id := range msg.GetRemovedNodeIds() {
				delete(s.desired, id)
			}
			for _, st := range msg.GetNodes() {
				switch st.GetStatus() {
				case nodev1.Status_STATUS_UNSPECIFIED:
					// Not probed yet: whatever an earlier node of this id
					// was, this one has not earned a verdict.
					s.desired[st.GetNode().GetId()] = verdict{consulnodes.AwaitingStatus, consulnodes.AwaitingProbe}
				case nodev1.Status_STATUS_UP:
					s.desired[st.GetNode().GetId()] = verdict{api.HealthPassing, st.GetReason()}
				case nodev1.Status_STATUS_DOWN:
					s.desired[st.GetNode().GetId()] = verdict{api.HealthCritical, st.GetReason()}
				case nodev1.Status_STATUS_MISCONFIGURED:
					s.desired[st.GetNode().GetId()] = verdict{api.HealthCritical, "misconfigured: " + st.GetReason()}
				case nodev1.Status_STATUS_LOADING:
					// Alive but not ready: warning, which Consul's passing
					// list (the routers' fallback) leaves out.
					s.desired[st.GetNode().GetId()] = verdict{api.HealthWarning, "loading: " + st.GetReason()}
				}
			}
			s.mu.Unlock()
			s.sync(lctx)
			s.putStates(lctx, msg, complete)
			return nil
		})
		cancel()
		<-refreshed
		s.leader.Store(false)
		_ = lock.Unlock()
		if ctx.Err() == nil {
			s.Log.Warn("lost the check writer lock; another healthmon writes checks now")
		}
	}
}

// sync writes every check whose desired verdict differs from what was
// last written, if this replica holds the writer lock. Writing only
// changes keeps healthmon's own writes from feeding its Consul watch.
func (s *Source) sync(ctx context.Context) {
	if !s.leader.Load() {
		return
	}
	s.mu.Lock()
	type job struct {
		id string
		p  placement
		v  verdict
	}
	var jobs []job
	for id, p := range s.placement {
		v, ok := s.invalid[id]
		if !ok {
			v, ok = s.desired[id]
		}
		if ok && s.written[id] != v {
			jobs = append(jobs, job{id, p, v})
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		s.wmu.Lock()
		written, err := s.write(ctx, j.id, j.p, j.v)
		if err == nil && written {
			s.mu.Lock()
			s.written[j.id] = j.v
			s.mu.Unlock()
		}
		s.wmu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("writing node check", "node", j.id, "err", err)
		}
	}
}

// write sets llmesh's check on a node's service. External nodes get it
// through the catalog; services of the agent healthmon talks to get a TTL
// check; services owned by other agents are left to those agents (their
// anti-entropy would undo a catalog write), so written is false.
func (s *Source) write(ctx context.Context, id string, p placement, v verdict) (written bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if p.external {
		err = s.catalogCheck(ctx, id, p, v)
		if n := s.static(id); n != nil && unknownService(err) {
			// Consul lost the node (it came back without its state):
			// register it again now rather than at the watch's next view.
			if err = consulnodes.RegisterExternal(ctx, s.Client, s.Service, n); err == nil {
				s.Log.Info("registered static node in consul again: consul had lost it", "node", id)
				err = s.catalogCheck(ctx, id, p, v)
			}
		}
		return err == nil, err
	}
	// Registered by an agent: only that agent may hold the check. The
	// agent healthmon talks to knows its own services.
	opts := (&api.QueryOptions{}).WithContext(ctx)
	if _, _, err := s.Client.Agent().Service(id, opts); err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return false, nil // another agent's service
		}
		return false, err
	}
	err = s.agentTTL(opts, id, v.status, v.output)
	return err == nil, err
}

// catalogCheck sets llmesh's check on an external node's service.
func (s *Source) catalogCheck(ctx context.Context, id string, p placement, v verdict) error {
	_, err := s.Client.Catalog().Register(&api.CatalogRegistration{
		Node: p.consulNode, Address: p.address, SkipNodeUpdate: true,
		Check: &api.AgentCheck{Node: p.consulNode, CheckID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
			Status: v.status, Output: v.output},
	}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

// static returns the static node with id, nil when there is none.
func (s *Source) static(id string) *nodev1.Node {
	for _, n := range s.Static {
		if n.GetId() == id {
			return n
		}
	}
	return nil
}

// unknownService says whether err is Consul refusing a check because the
// service it belongs to is not registered ("Unknown service ID 'n1' for
// check ID 'llmesh:n1'"), as after Consul lost its state.
func unknownService(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "unknown service")
}

func (s *Source) checkTTL() time.Duration {
	if s.CheckTTL > 0 {
		return s.CheckTTL
	}
	return DefaultCheckTTL
}

func (s *Source) agentTTL(opts *api.QueryOptions, id, status, output string) error {
	agent := s.Client.Agent()
	err := agent.UpdateTTLOpts(consulnodes.CheckID(id), output, status, opts)
	if err == nil {
		return nil
	}
	// Not registered yet (or the agent restarted): register, then update.
	// The check starts as "awaiting the first probe" (see
	// consulnodes.AwaitingStatus), so the first verdict is a status change,
	// which the agent syncs to the catalog at once; an output-only change
	// would wait for check_update_interval.
	if err := agent.CheckRegisterOpts(&api.AgentCheckRegistration{
		ID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
		AgentServiceCheck: api.AgentServiceCheck{TTL: s.checkTTL().String(), Status: consulnodes.AwaitingStatus},
	}, opts); err != nil {
		return fmt.Errorf("register check: %w", err)
	}
	return agent.UpdateTTLOpts(consulnodes.CheckID(id), output, status, opts)
}

// refresh writes node id's check again as last written, if it still is.
func (s *Source) refresh(ctx context.Context, id string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	v, ok := s.written[id]
	s.mu.Unlock()
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.agentTTL((&api.QueryOptions{}).WithContext(cctx), id, v.status, v.output); err != nil && ctx.Err() == nil {
		s.Log.Warn("refreshing node check", "node", id, "err", err)
	}
}

// refreshWhileLeader writes every check on the local agent again each
// third of its TTL until ctx is done, so a verdict that does not change
// never expires while a check writer is alive.
func (s *Source) refreshWhileLeader(ctx context.Context) {
	t := time.NewTicker(s.checkTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var ids []string
		for id := range s.written {
			if p, ok := s.placement[id]; ok && !p.external {
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
		for _, id := range ids {
			s.refresh(ctx, id)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
