package consulsource

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
)

func (s *Source) apply(ctx context.Context, entries []*api.ServiceEntry) {
	nodes, invalid := consulnodes.FromEntries(entries)
	s.Log.Debug("consul view", "service", s.Service, "nodes", len(nodes), "invalid", len(invalid))
	// Static nodes first: one that Consul lost must be registered again
	// now, not hidden by the grace that keeps the last view's nodes.
	nodes = s.withStatic(ctx, nodes)
	nodes = s.keepMissing(nodes)
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

// keepMissing adds to nodes, during the grace after a gap in the watch
// (ReregisterGrace), the nodes of the last view that Consul no longer
// lists: a Consul that came back without its state lists only what has
// been registered again since.
func (s *Source) keepMissing(nodes []*nodev1.Node) []*nodev1.Node {
	listed := make(map[string]*nodev1.Node, len(nodes))
	for _, n := range nodes {
		listed[n.GetId()] = n
	}
	if time.Now().Before(s.keepUntil) {
		for id, n := range s.listed {
			if _, ok := listed[id]; !ok {
				s.Log.Debug("keeping a node consul no longer lists, for it to register again", "node", id, "until", s.keepUntil)
				nodes = append(nodes, n)
				listed[id] = n
			}
		}
	}
	s.listed = listed
	return nodes
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
			if nodespec.KindOf(c) != nodespec.KindOf(n) || c.GetBaseUrl() != n.GetBaseUrl() {
				conflicts[n.GetId()] = fmt.Sprintf("the nodes file's %s node at %s is ignored: Consul registers this id as a %s node at %s",
					nodespec.KindOf(n), n.GetBaseUrl(), nodespec.KindOf(c), c.GetBaseUrl())
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

// static returns the static node with id, nil when there is none.
func (s *Source) static(id string) *nodev1.Node {
	for _, n := range s.Static {
		if n.GetId() == id {
			return n
		}
	}
	return nil
}
