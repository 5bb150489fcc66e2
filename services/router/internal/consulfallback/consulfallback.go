// Package consulfallback lets a router that has lost healthmon keep
// routing on what Consul knows. It routes to an LLM node when healthmon's
// last verdict was up — its state, with the models, is in KV (healthmon
// deletes it when the node goes down or leaves) — and no check on the
// service says otherwise: llmesh's check passes, or is critical only
// because its TTL ran out while no healthmon refreshed it, and no other
// check (the node's own agent's) is critical. Passive health in the
// router covers what Consul cannot see. The
// view is kept current all the time but fed to the node table only while
// the healthmon stream is lost, and then only when it says something new:
// the state healthmon last streamed is fresher than a Consul view taken
// before the loss (KV may lag the checks), so it stays until Consul
// changes — except in a router that never heard from healthmon, whose
// table starts from the view. healthmon's next snapshot replaces it all.
package consulfallback

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/consulwatch"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Fallback follows Consul and, while active, feeds the node table.
type Fallback struct {
	Client  *api.Client
	Service string
	Table   *nodetable.Table
	Log     *slog.Logger

	kvErr string // the last KV error logged; only update's goroutine uses it

	mu     sync.Mutex
	active bool
	view   *healthmonv1.WatchNodesResponse // the latest view
	base   *healthmonv1.WatchNodesResponse // the view when the stream was lost
}

// Run follows Consul until ctx is done.
func (f *Fallback) Run(ctx context.Context) error {
	w := &consulwatch.Watch{Client: f.Client, Service: f.Service, Log: f.Log}
	w.Run(ctx, func(entries []*api.ServiceEntry) { f.update(ctx, entries) })
	return nil
}

func (f *Fallback) update(ctx context.Context, entries []*api.ServiceEntry) {
	pairs, _, err := f.Client.KV().List(consulnodes.StatePrefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		// Keep the previous view; say why once (a token without
		// key_prefix "llmesh/nodes/" read would otherwise go unnoticed).
		if ctx.Err() == nil && err.Error() != f.kvErr {
			f.kvErr = err.Error()
			f.Log.Warn("reading node states from consul kv for the fallback; keeping the previous view", "prefix", consulnodes.StatePrefix, "err", err)
		}
		return
	}
	f.kvErr = ""
	states := map[string]*nodev1.NodeState{}
	for _, p := range pairs {
		st := &nodev1.NodeState{}
		if protojson.Unmarshal(p.Value, st) == nil {
			states[strings.TrimPrefix(p.Key, consulnodes.StatePrefix)] = st
		}
	}
	var usable []*api.ServiceEntry
	for _, e := range entries {
		if Usable(e) {
			usable = append(usable, e)
		}
	}
	nodes, _ := consulnodes.FromEntries(usable)
	view := &healthmonv1.WatchNodesResponse{Snapshot: true}
	for _, n := range nodes {
		st, ok := states[n.GetId()]
		if !ok {
			continue // no models known: nothing to route there
		}
		recognized := n.GetRecognizeKind() && st.GetKindRecognized()
		if recognized {
			n = recognizedAs(n, st.GetNode().GetKind())
		}
		view.Nodes = append(view.Nodes, &nodev1.NodeState{Node: n, Status: nodev1.Status_STATUS_UP, KindRecognized: recognized,
			Reason: "healthmon's last verdict, from consul (healthmon unreachable): " + st.GetReason(), Models: st.GetModels(), Version: st.GetVersion()})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.view = view
	if f.active && !proto.Equal(view, f.base) {
		f.base = view
		f.Table.Apply(view)
	}
}

// recognizedAs is n, a node whose kind is recognised, as a node of the
// kind healthmon recognised: the kind from its last verdict, the base URL
// still the registration's, read for that kind (the server root for all
// but openai).
func recognizedAs(n *nodev1.Node, kind nodev1.Kind) *nodev1.Node {
	u, err := nodeurl.ForKind(n.GetBaseUrl(), kind)
	if err != nil {
		return n
	}
	out := proto.CloneOf(n)
	out.Kind, out.BaseUrl = kind, u.String()
	return out
}

// ttlExpired starts the output Consul gives a TTL check that nobody
// refreshed in time (agent/checks CheckTTL.getExpiredOutput).
const ttlExpired = "TTL expired"

// Usable reports whether e's checks leave it to healthmon's last verdict:
// llmesh's check (if any) passing, or critical only because its TTL
// expired, and no other check critical.
func Usable(e *api.ServiceEntry) bool {
	if e.Service == nil {
		return false
	}
	llmesh := consulnodes.CheckID(e.Service.ID)
	for _, c := range e.Checks {
		if c.CheckID == llmesh {
			if c.Status != api.HealthPassing && (c.Status != api.HealthCritical || !strings.HasPrefix(c.Output, ttlExpired)) {
				return false
			}
			continue
		}
		if c.Status == api.HealthCritical {
			return false
		}
	}
	return true
}

// Activate starts feeding the table (healthmon is lost).
func (f *Fallback) Activate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = true
	f.base = f.view
	if f.view != nil && f.Table.Snapshot().Len() == 0 {
		f.Log.Info("routing on healthmon's last verdicts in consul until healthmon is back", "nodes", len(f.view.GetNodes()))
		f.Table.Apply(f.view)
	}
}

// Deactivate stops feeding the table (healthmon is back).
func (f *Fallback) Deactivate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active = false
}
