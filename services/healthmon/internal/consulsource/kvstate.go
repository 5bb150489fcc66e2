package consulsource

import (
	"context"

	"github.com/hashicorp/consul/api"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"google.golang.org/protobuf/encoding/protojson"
)

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
