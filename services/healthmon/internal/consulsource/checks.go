package consulsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
)

// DefaultCheckTTL bounds how long a check written to an agent stays as
// written when no healthmon refreshes it. The check writer refreshes each
// such check every third of it.
const DefaultCheckTTL = 10 * time.Minute

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
