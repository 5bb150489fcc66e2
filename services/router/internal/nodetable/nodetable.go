// Package nodetable is the router's view of the LLM nodes: which are up,
// which models each serves and which of those are loaded. It is fed by the
// healthmon node stream and read on every request, so reads are lock-free:
// every change builds a new immutable snapshot.
package nodetable

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// Table holds the current snapshot. The zero value is not usable; use New.
type Table struct {
	snap atomic.Pointer[Snapshot]
	mu   sync.Mutex // serialises Apply; readers never take it
}

// Snapshot is an immutable view of every known node.
type Snapshot struct {
	states  map[string]*nodev1.NodeState // by node id
	byModel map[string][]Candidate       // up nodes per model, loaded first
	ids     []string                     // sorted node ids
}

// Candidate is an up node that serves a model.
type Candidate struct {
	Node   *nodev1.Node
	Loaded bool
	// Type is what the model does on this node, when the node says.
	Type nodev1.ModelType
	// Load is the node's own report of its work (vLLM metrics, llama.cpp
	// slots), as of its last probe; nil when it reports none.
	Load *nodev1.NodeLoad
}

// New returns an empty table.
func New() *Table {
	t := &Table{}
	t.snap.Store(build(map[string]*nodev1.NodeState{}))
	return t
}

// Snapshot returns the current view; it never changes after it is returned.
func (t *Table) Snapshot() *Snapshot { return t.snap.Load() }

// Apply folds one message of the healthmon stream (or of the Consul
// fallback, in the same shape) into the table. A snapshot message replaces
// everything known before.
func (t *Table) Apply(msg *healthmonv1.WatchNodesResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[string]*nodev1.NodeState{}
	if !msg.GetSnapshot() {
		for id, st := range t.snap.Load().states {
			next[id] = st
		}
	}
	for _, st := range msg.GetNodes() {
		if id := st.GetNode().GetId(); id != "" {
			next[id] = st
		}
	}
	for _, id := range msg.GetRemovedNodeIds() {
		delete(next, id)
	}
	t.snap.Store(build(next))
}

func build(states map[string]*nodev1.NodeState) *Snapshot {
	s := &Snapshot{states: states, byModel: map[string][]Candidate{}}
	for id := range states {
		s.ids = append(s.ids, id)
	}
	slices.Sort(s.ids)
	for _, id := range s.ids {
		st := states[id]
		if st.GetStatus() != nodev1.Status_STATUS_UP {
			continue
		}
		for _, m := range st.GetModels() {
			c := Candidate{Node: st.GetNode(), Loaded: m.GetLoaded(), Type: m.GetType(), Load: st.GetLoad()}
			for _, name := range names(m) {
				s.byModel[name] = append(s.byModel[name], c)
			}
		}
	}
	for model, cs := range s.byModel {
		// Loaded first: a cold load costs seconds to minutes. Stable keeps
		// node-id order within each group.
		slices.SortStableFunc(cs, func(a, b Candidate) int {
			switch {
			case a.Loaded == b.Loaded:
				return 0
			case a.Loaded:
				return -1
			default:
				return 1
			}
		})
		s.byModel[model] = cs
	}
	return s
}

// names are the names a request may use for m: its id and its aliases
// (e.g. "llama3.2" for Ollama's "llama3.2:latest").
func names(m *nodev1.ModelInfo) []string {
	return append([]string{m.GetId()}, m.GetAliases()...)
}

// Candidates returns the up nodes that serve model, loaded ones first. The
// slice is shared: do not modify it.
func (s *Snapshot) Candidates(model string) []Candidate { return s.byModel[model] }

// Down describes a node that is not up, and why.
type Down struct {
	ID     string
	Status nodev1.Status
	// Reason says why, led by the status when it is not plain down:
	// "misconfigured: 401 from …", "loading: …".
	Reason string
	// HadModel is true when the node's last successful probe listed the
	// model asked about.
	HadModel bool
}

// Unavailable lists the nodes that are not up, marking those known to
// have served model, in node-id order.
func (s *Snapshot) Unavailable(model string) []Down {
	var out []Down
	for _, id := range s.ids {
		st := s.states[id]
		if st.GetStatus() == nodev1.Status_STATUS_UP {
			continue
		}
		reason := st.GetReason()
		switch {
		case reason == "":
			reason = "not probed yet"
		case st.GetStatus() == nodev1.Status_STATUS_MISCONFIGURED:
			reason = "misconfigured: " + reason
		case st.GetStatus() == nodev1.Status_STATUS_LOADING:
			reason = "loading: " + reason
		}
		had := slices.ContainsFunc(st.GetModels(), func(m *nodev1.ModelInfo) bool { return slices.Contains(names(m), model) })
		out = append(out, Down{ID: id, Status: st.GetStatus(), Reason: reason, HadModel: had})
	}
	return out
}

// AnyUp reports whether at least one node is up.
func (s *Snapshot) AnyUp() bool {
	for _, st := range s.states {
		if st.GetStatus() == nodev1.Status_STATUS_UP {
			return true
		}
	}
	return false
}

// Models returns each model served by at least one up node, sorted by id,
// with the info of the first node (in id order) that lists it.
func (s *Snapshot) Models() []*nodev1.ModelInfo {
	seen := map[string]bool{}
	var out []*nodev1.ModelInfo
	for _, id := range s.ids {
		st := s.states[id]
		if st.GetStatus() != nodev1.Status_STATUS_UP {
			continue
		}
		for _, m := range st.GetModels() {
			if !seen[m.GetId()] {
				seen[m.GetId()] = true
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b *nodev1.ModelInfo) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// Placement is one model on one up node.
type Placement struct {
	Node  *nodev1.Node
	Model *nodev1.ModelInfo
}

// Loaded lists the models loaded in memory on up nodes, one entry per
// node that has the model loaded, ordered by model id then node id.
func (s *Snapshot) Loaded() []Placement {
	var out []Placement
	for _, id := range s.ids {
		st := s.states[id]
		if st.GetStatus() != nodev1.Status_STATUS_UP {
			continue
		}
		for _, m := range st.GetModels() {
			if m.GetLoaded() {
				out = append(out, Placement{Node: st.GetNode(), Model: m})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Placement) int { return strings.Compare(a.Model.GetId(), b.Model.GetId()) })
	return out
}

// States lists every known node's state, in node id order.
func (s *Snapshot) States() []*nodev1.NodeState {
	out := make([]*nodev1.NodeState, len(s.ids))
	for i, id := range s.ids {
		out[i] = s.states[id]
	}
	return out
}

// Status is node id's status (STATUS_UNSPECIFIED when it is not known).
func (s *Snapshot) Status(id string) nodev1.Status { return s.states[id].GetStatus() }

// Len is the number of known nodes.
func (s *Snapshot) Len() int { return len(s.ids) }
