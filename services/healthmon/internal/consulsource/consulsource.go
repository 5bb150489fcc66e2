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

	mu        sync.Mutex
	placement map[string]placement // by node id
	reported  map[string]string    // invalid instance id → reason already logged
	agentNode string               // the Consul node of the agent we talk to
	leader    atomic.Bool          // this replica holds the writer lock
}

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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.writeWhileLeader(ctx)
	}()
	w := &consulwatch.Watch{Client: s.Client, Service: s.Service, Log: s.Log}
	w.Run(ctx, func(entries []*api.ServiceEntry) { s.apply(ctx, entries) })
	wg.Wait()
	return nil
}

func (s *Source) apply(ctx context.Context, entries []*api.ServiceEntry) {
	nodes, invalid := consulnodes.FromEntries(entries)
	s.mu.Lock()
	s.placement = map[string]placement{}
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		addr := e.Node.Address
		s.placement[e.Service.ID] = placement{consulNode: e.Node.Node, address: addr, external: e.Node.Meta["external-node"] == "true"}
	}
	for _, bad := range invalid {
		if s.reported[bad.ID] != bad.Reason {
			s.reported[bad.ID] = bad.Reason
			s.Log.Warn("skipping LLM node with a bad registration", "id", bad.ID, "consul_node", bad.Node, "reason", bad.Reason)
		}
	}
	s.mu.Unlock()
	if s.leader.Load() {
		for _, bad := range invalid {
			s.write(ctx, bad.ID, api.HealthCritical, "llmesh: bad registration: "+bad.Reason)
		}
	}
	s.Nodes.SetNodes(ctx, nodes)
}

// writeWhileLeader holds the writer lock whenever it can and, while
// holding it, writes every node state it sees.
func (s *Source) writeWhileLeader(ctx context.Context) {
	for ctx.Err() == nil {
		lock, err := s.Client.LockOpts(&api.LockOptions{Key: LockKey, SessionName: "llmesh-healthmon", SessionTTL: "15s"})
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
			for _, st := range msg.GetNodes() {
				s.writeState(lctx, st)
			}
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

func (s *Source) writeState(ctx context.Context, st *nodev1.NodeState) {
	switch st.GetStatus() {
	case nodev1.Status_STATUS_UP:
		s.write(ctx, st.GetNode().GetId(), api.HealthPassing, st.GetReason())
	case nodev1.Status_STATUS_DOWN:
		s.write(ctx, st.GetNode().GetId(), api.HealthCritical, st.GetReason())
	}
}

// write sets llmesh's check on a node's service. External nodes get it
// through the catalog; services of the agent healthmon talks to get a TTL
// check; services owned by other agents are left to those agents (their
// anti-entropy would undo a catalog write).
func (s *Source) write(ctx context.Context, id, status, output string) {
	s.mu.Lock()
	p, ok := s.placement[id]
	s.mu.Unlock()
	if !ok {
		return
	}
	opts := (&api.WriteOptions{}).WithContext(ctx)
	var err error
	switch {
	case p.external:
		_, err = s.Client.Catalog().Register(&api.CatalogRegistration{
			Node: p.consulNode, Address: p.address, SkipNodeUpdate: true,
			Check: &api.AgentCheck{Node: p.consulNode, CheckID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
				Status: status, Output: output},
		}, opts)
	case p.consulNode == s.localAgentNode(ctx):
		err = s.agentTTL(id, status, output)
	default:
		return
	}
	if err != nil && ctx.Err() == nil {
		s.Log.Warn("writing node check", "node", id, "err", err)
	}
}

func (s *Source) agentTTL(id, status, output string) error {
	agent := s.Client.Agent()
	err := agent.UpdateTTL(consulnodes.CheckID(id), output, status)
	if err == nil {
		return nil
	}
	// Not registered yet (or the agent restarted): register, then update.
	if err := agent.CheckRegister(&api.AgentCheckRegistration{
		ID: consulnodes.CheckID(id), Name: consulnodes.CheckName, ServiceID: id,
		AgentServiceCheck: api.AgentServiceCheck{TTL: CheckTTL.String()},
	}); err != nil {
		return fmt.Errorf("register check: %w", err)
	}
	return agent.UpdateTTL(consulnodes.CheckID(id), output, status)
}

func (s *Source) localAgentNode(ctx context.Context) string {
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
