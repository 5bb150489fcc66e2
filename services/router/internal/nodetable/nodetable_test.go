package nodetable

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	up   = nodev1.Status_STATUS_UP
	down = nodev1.Status_STATUS_DOWN
)

// state builds a node state; a trailing "*" on a model marks it loaded.
func state(id string, st nodev1.Status, reason string, models ...string) *nodev1.NodeState {
	s := &nodev1.NodeState{Node: &nodev1.Node{Id: id, BaseUrl: "http://" + id}, Status: st, Reason: reason}
	for _, m := range models {
		loaded := false
		if rest, ok := strings.CutSuffix(m, "*"); ok {
			m, loaded = rest, true
		}
		s.Models = append(s.Models, &nodev1.ModelInfo{Id: m, Loaded: loaded})
	}
	return s
}

func snapshot(states ...*nodev1.NodeState) *healthmonv1.WatchNodesResponse {
	return &healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: states}
}

func change(states ...*nodev1.NodeState) *healthmonv1.WatchNodesResponse {
	return &healthmonv1.WatchNodesResponse{Nodes: states}
}

func removal(ids ...string) *healthmonv1.WatchNodesResponse {
	return &healthmonv1.WatchNodesResponse{RemovedNodeIds: ids}
}

// candidateIDs renders candidates as ids, loaded ones with a "*".
func candidateIDs(cs []Candidate) []string {
	out := []string{}
	for _, c := range cs {
		id := c.Node.GetId()
		if c.Loaded {
			id += "*"
		}
		out = append(out, id)
	}
	return out
}

// statusOf is the status of node id, and whether the snapshot knows it.
func statusOf(s *Snapshot, id string) (nodev1.Status, bool) {
	st, ok := s.states[id]
	return st.GetStatus(), ok
}

func TestApply(t *testing.T) {
	cases := []struct {
		name      string
		msgs      []*healthmonv1.WatchNodesResponse
		wantLen   int
		wantUp    []string // node ids expected UP
		wantGone  []string // node ids expected unknown
		wantCands map[string][]string
	}{
		{
			name:      "first snapshot",
			msgs:      []*healthmonv1.WatchNodesResponse{snapshot(state("a", up, "", "m1"), state("b", down, "refused", "m1"))},
			wantLen:   2,
			wantUp:    []string{"a"},
			wantCands: map[string][]string{"m1": {"a"}},
		},
		{
			name: "a snapshot replaces everything known before",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1"), state("b", up, "", "m1")),
				snapshot(state("c", up, "", "m2")),
			},
			wantLen:   1,
			wantUp:    []string{"c"},
			wantGone:  []string{"a", "b"},
			wantCands: map[string][]string{"m1": {}, "m2": {"c"}},
		},
		{
			name: "an empty snapshot empties the table",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1")),
				snapshot(),
			},
			wantLen:   0,
			wantGone:  []string{"a"},
			wantCands: map[string][]string{"m1": {}},
		},
		{
			name: "a change adds a node and keeps the others",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1")),
				change(state("b", up, "", "m1")),
			},
			wantLen:   2,
			wantUp:    []string{"a", "b"},
			wantCands: map[string][]string{"m1": {"a", "b"}},
		},
		{
			name: "a change replaces a node's state",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1"), state("b", up, "", "m1")),
				change(state("a", down, "timeout", "m1")),
				change(state("b", up, "", "m2")),
			},
			wantLen:   2,
			wantUp:    []string{"b"},
			wantCands: map[string][]string{"m1": {}, "m2": {"b"}},
		},
		{
			name: "removal forgets the node",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1"), state("b", up, "", "m1")),
				removal("a"),
			},
			wantLen:   1,
			wantUp:    []string{"b"},
			wantGone:  []string{"a"},
			wantCands: map[string][]string{"m1": {"b"}},
		},
		{
			name: "removal of an unknown id is harmless",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1")),
				removal("zz"),
			},
			wantLen:   1,
			wantUp:    []string{"a"},
			wantCands: map[string][]string{"m1": {"a"}},
		},
		{
			name: "states without a node id are ignored",
			msgs: []*healthmonv1.WatchNodesResponse{
				snapshot(state("a", up, "", "m1"), &nodev1.NodeState{Status: up, Models: []*nodev1.ModelInfo{{Id: "m1"}}}),
			},
			wantLen:   1,
			wantUp:    []string{"a"},
			wantCands: map[string][]string{"m1": {"a"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := New()
			for _, m := range tc.msgs {
				tbl.Apply(m)
			}
			s := tbl.Snapshot()
			assert.Equal(t, tc.wantLen, s.Len())
			for _, id := range tc.wantUp {
				st, ok := statusOf(s, id)
				assert.True(t, ok, "node %s should be known", id)
				assert.Equal(t, up, st, "node %s", id)
			}
			for _, id := range tc.wantGone {
				_, ok := statusOf(s, id)
				assert.False(t, ok, "node %s should be forgotten", id)
			}
			for model, want := range tc.wantCands {
				assert.Equal(t, want, candidateIDs(s.Candidates(model)), "candidates for %s", model)
			}
		})
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	tbl := New()
	tbl.Apply(snapshot(state("a", up, "", "m1")))
	before := tbl.Snapshot()
	tbl.Apply(change(state("b", up, "", "m1")))
	tbl.Apply(removal("a"))

	assert.Equal(t, []string{"a"}, candidateIDs(before.Candidates("m1")), "an old snapshot must not see later changes")
	assert.Equal(t, 1, before.Len())
	assert.Equal(t, []string{"b"}, candidateIDs(tbl.Snapshot().Candidates("m1")))
}

func TestCandidatesOrder(t *testing.T) {
	cases := []struct {
		name   string
		states []*nodev1.NodeState
		model  string
		want   []string
	}{
		{
			name:   "id order when none is loaded",
			states: []*nodev1.NodeState{state("c", up, "", "m"), state("a", up, "", "m"), state("b", up, "", "m")},
			model:  "m",
			want:   []string{"a", "b", "c"},
		},
		{
			name: "loaded first, each group in id order",
			states: []*nodev1.NodeState{
				state("a", up, "", "m"), state("b", up, "", "m*"), state("c", up, "", "m"),
				state("d", up, "", "m*"), state("e", up, "", "m"),
			},
			model: "m",
			want:  []string{"b*", "d*", "a", "c", "e"},
		},
		{
			name: "down and unprobed nodes are excluded",
			states: []*nodev1.NodeState{
				state("a", down, "refused", "m*"), state("b", up, "", "m"),
				state("c", nodev1.Status_STATUS_UNSPECIFIED, "not probed yet", "m*"),
			},
			model: "m",
			want:  []string{"b"},
		},
		{
			name:   "only nodes listing the model",
			states: []*nodev1.NodeState{state("a", up, "", "x"), state("b", up, "", "m", "x"), state("c", up, "")},
			model:  "m",
			want:   []string{"b"},
		},
		{
			name:   "loaded is per model",
			states: []*nodev1.NodeState{state("a", up, "", "m", "x*"), state("b", up, "", "m*", "x")},
			model:  "x",
			want:   []string{"a*", "b"},
		},
		{
			name:   "unknown model has no candidates",
			states: []*nodev1.NodeState{state("a", up, "", "m")},
			model:  "nope",
			want:   []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := New()
			tbl.Apply(snapshot(tc.states...))
			assert.Equal(t, tc.want, candidateIDs(tbl.Snapshot().Candidates(tc.model)))
		})
	}
}

func TestUnavailable(t *testing.T) {
	tbl := New()
	tbl.Apply(snapshot(
		state("d", down, "connect: connection refused", "m1", "m2"),
		state("a", up, "", "m1"),
		state("c", nodev1.Status_STATUS_UNSPECIFIED, ""),
		state("b", down, "timeout", "m2"),
		state("e", nodev1.Status_STATUS_MISCONFIGURED, "401 from https://x/v1/models: invalid API key — check K"),
		state("f", nodev1.Status_STATUS_LOADING, "llamacpp: loading the model", "m1"),
	))
	s := tbl.Snapshot()

	mis, loading := nodev1.Status_STATUS_MISCONFIGURED, nodev1.Status_STATUS_LOADING
	assert.Equal(t, []Down{
		{ID: "b", Status: down, Reason: "timeout", HadModel: false},
		{ID: "c", Reason: "not probed yet", HadModel: false},
		{ID: "d", Status: down, Reason: "connect: connection refused", HadModel: true},
		{ID: "e", Status: mis, Reason: "misconfigured: 401 from https://x/v1/models: invalid API key — check K"},
		{ID: "f", Status: loading, Reason: "loading: llamacpp: loading the model", HadModel: true},
	}, s.Unavailable("m1"))
	assert.Equal(t, []Down{
		{ID: "b", Status: down, Reason: "timeout", HadModel: true},
		{ID: "c", Reason: "not probed yet", HadModel: false},
		{ID: "d", Status: down, Reason: "connect: connection refused", HadModel: true},
		{ID: "e", Status: mis, Reason: "misconfigured: 401 from https://x/v1/models: invalid API key — check K"},
		{ID: "f", Status: loading, Reason: "loading: llamacpp: loading the model", HadModel: false},
	}, s.Unavailable("m2"))
	assert.Empty(t, New().Snapshot().Unavailable("m1"))
	assert.Empty(t, s.Candidates("m1")[1:], "only the up node serves m1")
}

func TestAnyUp(t *testing.T) {
	cases := []struct {
		name   string
		states []*nodev1.NodeState
		want   bool
	}{
		{name: "empty", want: false},
		{name: "all down", states: []*nodev1.NodeState{state("a", down, "x"), state("b", nodev1.Status_STATUS_UNSPECIFIED, "")}, want: false},
		{name: "one up", states: []*nodev1.NodeState{state("a", down, "x"), state("b", up, "")}, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := New()
			tbl.Apply(snapshot(tc.states...))
			assert.Equal(t, tc.want, tbl.Snapshot().AnyUp())
		})
	}
}

func TestModels(t *testing.T) {
	tbl := New()
	a := state("a", up, "", "zeta", "alpha")
	a.Models[1].OwnedBy = "from-a"
	b := state("b", up, "", "alpha", "mid")
	b.Models[0].OwnedBy = "from-b"
	tbl.Apply(snapshot(b, a, state("c", down, "refused", "only-on-down")))

	var ids, owners []string
	for _, m := range tbl.Snapshot().Models() {
		ids = append(ids, m.GetId())
		owners = append(owners, m.GetOwnedBy())
	}
	assert.Equal(t, []string{"alpha", "mid", "zeta"}, ids, "deduplicated, sorted, up nodes only")
	assert.Equal(t, "from-a", owners[0], "a duplicated model takes the info of the first node in id order")
	assert.Empty(t, New().Snapshot().Models())
}

// TestCandidatesProperty checks over random tables that Candidates only
// ever returns up nodes that list the model, each once, loaded first and
// in id order within each group, and that it misses none of them.
func TestCandidatesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	models := []string{"m0", "m1", "m2", "m3", "m4"}
	asked := append(slices.Clone(models), "absent")
	statuses := []nodev1.Status{up, down, nodev1.Status_STATUS_UNSPECIFIED}
	for iter := range 500 {
		tbl := New()
		truth := map[string]*nodev1.NodeState{}
		// A random sequence of snapshots, changes and removals.
		for range 1 + rng.IntN(6) {
			var states []*nodev1.NodeState
			for range rng.IntN(8) {
				id := fmt.Sprintf("n%d", rng.IntN(10))
				st := &nodev1.NodeState{Node: &nodev1.Node{Id: id}, Status: statuses[rng.IntN(len(statuses))]}
				for _, m := range models {
					if rng.IntN(2) == 0 {
						st.Models = append(st.Models, &nodev1.ModelInfo{Id: m, Loaded: rng.IntN(2) == 0})
					}
				}
				states = append(states, st)
			}
			msg := &healthmonv1.WatchNodesResponse{Snapshot: rng.IntN(3) == 0, Nodes: states}
			if !msg.Snapshot && rng.IntN(2) == 0 {
				msg.RemovedNodeIds = []string{fmt.Sprintf("n%d", rng.IntN(10))}
			}
			tbl.Apply(msg)
			if msg.Snapshot {
				truth = map[string]*nodev1.NodeState{}
			}
			for _, st := range states {
				truth[st.Node.Id] = st
			}
			for _, id := range msg.RemovedNodeIds {
				delete(truth, id)
			}
		}

		s := tbl.Snapshot()
		require.Equal(t, len(truth), s.Len(), "iteration %d", iter)
		for _, m := range asked {
			var wantLoaded, wantCold []string
			for _, st := range truth {
				if st.Status != up {
					continue
				}
				for _, mi := range st.Models {
					if mi.Id == m {
						if mi.Loaded {
							wantLoaded = append(wantLoaded, st.Node.Id)
						} else {
							wantCold = append(wantCold, st.Node.Id)
						}
					}
				}
			}
			slices.Sort(wantLoaded)
			slices.Sort(wantCold)
			var got []string
			for _, c := range s.Candidates(m) {
				st, ok := truth[c.Node.GetId()]
				require.True(t, ok, "iteration %d: candidate %s is not a known node", iter, c.Node.GetId())
				require.Equal(t, up, st.Status, "iteration %d: candidate %s for %s is not up", iter, c.Node.GetId(), m)
				require.True(t, slices.ContainsFunc(st.Models, func(mi *nodev1.ModelInfo) bool { return mi.Id == m }),
					"iteration %d: candidate %s does not list %s", iter, c.Node.GetId(), m)
				got = append(got, c.Node.GetId())
			}
			assert.Equal(t, append(wantLoaded, wantCold...), got, "iteration %d, model %s", iter, m)
		}
	}
}

func TestAliasesFindTheModel(t *testing.T) {
	tbl := New()
	tbl.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{{
		Node:   &nodev1.Node{Id: "a"},
		Status: nodev1.Status_STATUS_UP,
		Models: []*nodev1.ModelInfo{{Id: "llama3.2:latest", Aliases: []string{"llama3.2"}, Loaded: true}},
	}}})
	snap := tbl.Snapshot()
	for _, name := range []string{"llama3.2", "llama3.2:latest"} {
		require.Len(t, snap.Candidates(name), 1, name)
	}
	assert.Empty(t, snap.Candidates("llama3"))
	models := snap.Models()
	require.Len(t, models, 1)
	assert.Equal(t, "llama3.2:latest", models[0].GetId(), "the list shows ids, not aliases")
}
