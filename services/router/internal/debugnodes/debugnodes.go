// Package debugnodes shows operators what one router believes about the
// nodes — the view it routes by, which can lag healthmon's by a stream
// message and adds what only the router knows (its own requests in flight,
// its time-to-first-token average, its circuit breaker). It is served on
// the router's admin address as GET /debug/nodes.
//
// It never shows a node's URL, headers or key settings: they may hold
// credentials.
package debugnodes

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
)

// Path is where Handler is served.
const Path = "/debug/nodes"

// View is the JSON document Handler serves.
type View struct {
	// Source is what the view follows now: "healthmon" (its stream),
	// "consul" (Consul's passing nodes while healthmon is away) or "last
	// known" (healthmon away and no Consul: the last state it sent).
	Source string `json:"source"`
	Nodes  []Node `json:"nodes"`
}

// Sources of a view.
const (
	SourceHealthmon = "healthmon"
	SourceConsul    = "consul"
	SourceLastKnown = "last known"
)

// Node is one node as the router sees it.
type Node struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "ollama", "vllm", …
	// KindSource says where Kind comes from: "configured" (the nodes
	// file, Consul), "recognized" (the node's kind was not configured —
	// OPENAI_BASE_URL, kind auto — and its answers showed it) or "default"
	// (not configured and not recognised yet: treated as openai).
	KindSource string  `json:"kind_source"`
	Group      string  `json:"group,omitempty"` // the node group model routes may name
	Status     string  `json:"status"`          // "up", "down", "misconfigured", "loading"
	Reason     string  `json:"reason"`          // from the probe that set the status
	Models     []Model `json:"models"`
	// InFlight are this router's requests on the node now.
	InFlight int64 `json:"in_flight"`
	// TTFTMillis is this router's moving average of the node's time to
	// first token; 0 until it has one.
	TTFTMillis float64 `json:"ttft_ms"`
	// OutOfRotation is true while the router's circuit breaker keeps the
	// node out (after a connection failure), until a trial request or a
	// good probe brings it back.
	OutOfRotation bool `json:"out_of_rotation"`
	// Load is the work the node itself last reported, for kinds that do.
	Load *Load `json:"load,omitempty"`
}

// Model is one model of a node.
type Model struct {
	ID     string `json:"id"`
	Loaded bool   `json:"loaded"` // in memory: no cold load needed
}

// Load is a node's own report of its work.
type Load struct {
	RequestsRunning *int32   `json:"requests_running,omitempty"`
	RequestsWaiting *int32   `json:"requests_waiting,omitempty"`
	KVCacheUsage    *float64 `json:"kv_cache_usage,omitempty"`
	SlotsBusy       *int32   `json:"slots_busy,omitempty"`
	SlotsTotal      *int32   `json:"slots_total,omitempty"`
}

// Of builds the view of snap and stats, nodes in id order.
func Of(source string, snap *nodetable.Snapshot, stats *nodestats.Stats) View {
	v := View{Source: source, Nodes: []Node{}}
	for _, st := range snap.States() {
		id := st.GetNode().GetId()
		l := stats.Load(id)
		n := Node{
			ID: id, Kind: name(st.GetNode().GetKind().String(), "KIND_"), KindSource: kindSource(st), Group: st.GetNode().GetGroup(),
			Status: name(st.GetStatus().String(), "STATUS_"), Reason: st.GetReason(), Models: []Model{},
			InFlight: l.InFlight, TTFTMillis: float64(l.TTFT) / float64(time.Millisecond), OutOfRotation: l.Open,
			Load: loadOf(st.GetLoad()),
		}
		for _, m := range st.GetModels() {
			n.Models = append(n.Models, Model{ID: m.GetId(), Loaded: m.GetLoaded()})
		}
		v.Nodes = append(v.Nodes, n)
	}
	return v
}

// Where a node's kind comes from.
const (
	KindConfigured = "configured"
	KindRecognized = "recognized"
	KindDefault    = "default"
)

func kindSource(st *nodev1.NodeState) string {
	switch {
	case !st.GetNode().GetRecognizeKind():
		return KindConfigured
	case st.GetKindRecognized():
		return KindRecognized
	}
	return KindDefault
}

func name(enum, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(enum, prefix))
}

func loadOf(l *nodev1.NodeLoad) *Load {
	if l == nil {
		return nil
	}
	return &Load{RequestsRunning: l.RequestsRunning, RequestsWaiting: l.RequestsWaiting,
		KVCacheUsage: l.KvCacheUsage, SlotsBusy: l.SlotsBusy, SlotsTotal: l.SlotsTotal}
}

// Handler serves the router's current view as JSON; source says what the
// table follows (one of the Source constants).
func Handler(source func() string, table *nodetable.Table, stats *nodestats.Stats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Of(source(), table.Snapshot(), stats))
	})
}
