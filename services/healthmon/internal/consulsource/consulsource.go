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
	"fmt"
	"log/slog"
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

// CheckTTL bounds how long a check written to an agent stays as written
// when no healthmon refreshes it.
const CheckTTL = 10 * time.Minute

// Nodes is what the source drives: the monitor's node set and its stream.
type Nodes interface {
	SetNodes(ctx context.Context, nodes []*nodev1.Node)
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
	// its state) and stay monitored whatever Consul says meanwhile.
	Static []*nodev1.Node
	// Wait bounds one blocking query (consulwatch.Watch.Wait).
	Wait time.Duration

	mu        sync.Mutex
	placement map[string]placement // by node id
	reported  map[string]string    // invalid instance id → reason already logged
	desired   map[string]verdict   // the check each node should have
	written   map[string]verdict   // the check last written for each node
	kv        map[string]string    // the state last put in KV for each node
	agentNode string               // the Consul node of the agent we talk to
	leader    atomic.Bool          // this replica holds the writer lock
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
	for _, bad := range invalid {
		if s.reported[bad.ID] != bad.Reason {
			s.reported[bad.ID] = bad.Reason
			s.Log.Warn("skipping LLM node with a bad registration", "id", bad.ID, "consul_node", bad.Node, "reason", bad.Reason)
		}
		s.desired[bad.ID] = verdict{api.HealthCritical, "llmesh: bad registration: " + bad.Reason}
	}
	s.mu.Unlock()
	s.Nodes.SetNodes(ctx, nodes)
	s.sync(ctx)
}

// putStates keeps KV's copy of up nodes' states current: put when it
// changed, deleted when the node left.
func (s *Source) putStates(ctx context.Context, msg *healthmonv1.WatchNodesResponse) {
	kv := s.Client.KV()
	opts := (&api.WriteOptions{}).WithContext(ctx)
	for _, st := range msg.GetNodes() {
		if st.GetStatus() != nodev1.Status_STATUS_UP {
			continue
		}
		id := st.GetNode().GetId()
		// changed_at is left out so that an unchanged state is unchanged bytes.
		b, err := protojson.Marshal(&nodev1.NodeState{Node: st.GetNode(), Status: st.GetStatus(), Reason: st.GetReason(),
			Models: st.GetModels(), Version: st.GetVersion()})
		if err != nil {
			continue
		}
		s.mu.Lock()
		same := s.kv[id] == string(b)
		s.mu.Unlock()
		if same {
			continue
		}
		if _, err := kv.Put(&api.KVPair{Key: consulnodes.StatePrefix + id, Value: b}, opts); err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("writing node state to consul kv", "node", id, "err", err)
			}
			continue
		}
		s.mu.Lock()
		s.kv[id] = string(b)
		s.mu.Unlock()
	}
	for _, id := range msg.GetRemovedNodeIds() {
		if _, err := kv.Delete(consulnodes.StatePrefix+id, opts); err == nil {
			s.mu.Lock()
			delete(s.kv, id)
			s.mu.Unlock()
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
	listed := map[string]bool{}
	for _, n := range nodes {
		listed[n.GetId()] = true
	}
	for _, n := range s.Static {
		if listed[n.GetId()] {
			continue
		}
		nodes = append(nodes, n)
		if err := consulnodes.RegisterExternal(s.Client, s.Service, n); err != nil && ctx.Err() == nil {
			s.Log.Warn("registering static node in consul", "node", n.GetId(), "err", err)
		}
	}
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
		_ = s.Nodes.Watch(lctx, func(msg *healthmonv1.WatchNodesResponse) error {
			s.mu.Lock()
			for _, st := range msg.GetNodes() {
				switch st.GetStatus() {
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
			s.putStates(lctx, msg)
			return nil
		})
		cancel()
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
	for id, v := range s.desired {
		p, ok := s.placement[id]
		if ok && s.written[id] != v {
			jobs = append(jobs, job{id, p, v})
		}
	}
	s.mu.Unlock()
	for _, j := range jobs {
		written, err := s.write(ctx, j.id, j.p, j.v)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("writing node check", "node", j.id, "err", err)
			}
			continue
		}
		if written {
			s.mu.Lock()
			s.written[j.id] = j.v
			s.mu.Unlock()
		}
	}
}

// write sets llmesh's check on a node's service. External nodes get it
// through the catalog; services of the agent healthmon talks to get a TTL
// check; services owned by other agents are left to those agents (their
// anti-entropy would undo a catalog write), so written is false.
func (s *Source) write(ctx context.Context, id string, p placement, v verdict) (written bool, err error) {
	switch {
	case p.external:
		opts := (&api.WriteOptions{}).WithContext(ctx)
		_, err = s.Client.Catalog().Register(&api.CatalogRegistration{
			Node: p.consulNode, Address: p.address, SkipNodeUpdate: true,
			Check: &api.AgentCheck{Node: p.consulNode, CheckID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
				Status: v.status, Output: v.output},
		}, opts)
		return err == nil, err
	case p.consulNode == s.localAgentNode():
		err = s.agentTTL(id, v.status, v.output)
		return err == nil, err
	}
	return false, nil
}

func (s *Source) agentTTL(id, status, output string) error {
	agent := s.Client.Agent()
	err := agent.UpdateTTL(consulnodes.CheckID(id), output, status)
	if err == nil {
		return nil
	}
	// Not registered yet (or the agent restarted): register, then update.
	// The check starts as "warning", a status llmesh never writes, so the
	// update is a status change, which the agent syncs to the catalog at
	// once; an output-only change would wait for check_update_interval.
	if err := agent.CheckRegister(&api.AgentCheckRegistration{
		ID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
		AgentServiceCheck: api.AgentServiceCheck{TTL: CheckTTL.String(), Status: api.HealthWarning},
	}); err != nil {
		return fmt.Errorf("register check: %w", err)
	}
	return agent.UpdateTTL(consulnodes.CheckID(id), output, status)
}

func (s *Source) localAgentNode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agentNode == "" {
		if name, err := s.Client.Agent().NodeName(); err == nil {
			s.agentNode = name
		}
	}
	return s.agentNode
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
