package consulsource

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
)

// LockKey is the KV key whose holder writes checks.
const LockKey = "llmesh/healthmon/check-writer"

// writeWhileLeader holds the writer lock whenever it can and, while
// holding it, writes every node state it sees.
func (s *Source) writeWhileLeader(ctx context.Context) {
	var lastErr string // logged once until it changes: a missing ACL rule must not go unsaid
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
			// Consul unreachable, a token that may not take the lock, or
			// ctx done: try again shortly.
			if err != nil && ctx.Err() == nil && err.Error() != lastErr {
				args := []any{"key", LockKey, "err", err}
				if h := aclHint(err); h != "" {
					args = append(args, "hint", h)
				}
				s.Log.Warn("cannot take the check-writer lock; node checks are not written to consul until it is taken", args...)
				lastErr = err.Error()
			}
			sleep(ctx, time.Second)
			continue
		}
		lastErr = ""
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

// aclHint says what a "Permission denied" from Consul needs: the
// healthmon's token lacks a rule of its policy.
func aclHint(err error) string {
	if strings.Contains(err.Error(), "Permission denied") || strings.Contains(err.Error(), "ACL not found") {
		return "the healthmon's CONSUL_HTTP_TOKEN lacks a rule of deployments/consul/acl/llmesh-healthmon.hcl (docs/security.md#consul-acls)"
	}
	return ""
}
