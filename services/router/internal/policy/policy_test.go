package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func cand(id string, loaded bool) Candidate {
	return Candidate{Node: &nodev1.Node{Id: id}, Loaded: loaded}
}

func ids(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Node.GetId()
	}
	return out
}

func loads(m map[string]nodestats.Load) func(string) nodestats.Load {
	return func(id string) nodestats.Load { return m[id] }
}

// first returns a Rand that always picks the given indices in turn.
func picks(seq ...int) func(int) int {
	i := 0
	return func(n int) int {
		v := seq[i%len(seq)] % n
		i++
		return v
	}
}

func TestOrders(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name   string
		policy Policy
		in     Input
		want   []string
	}{
		{
			name:   "p2c: loaded before cold, open last",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{cand("cold", false), cand("open", true), cand("warm", true)},
				Load: loads(map[string]nodestats.Load{"open": {Open: true}})},
			want: []string{"warm", "cold", "open"},
		},
		{
			name:   "p2c: the lower score of the two sampled leads",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{cand("a", true), cand("b", true), cand("c", true)},
				Load: loads(map[string]nodestats.Load{"a": {InFlight: 4, TTFT: 10 * ms}, "b": {InFlight: 0, TTFT: 30 * ms}, "c": {InFlight: 1, TTFT: 10 * ms}}),
				Rand: picks(0, 1)},
			// scores: a 50ms, b 30ms, c 20ms → sorted c, b, a; sample indices 0 and 2 → c wins
			want: []string{"c", "b", "a"},
		},
		{
			name:   "p2c: a slow node loses to a fast one with more in flight",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{cand("slow", true), cand("fast", true)},
				Load: loads(map[string]nodestats.Load{"slow": {InFlight: 0, TTFT: 900 * ms}, "fast": {InFlight: 2, TTFT: 100 * ms}}),
				Rand: picks(1, 0)},
			want: []string{"fast", "slow"},
		},
		{
			name:   "cloud nodes only after local ones, even cold ones",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{
				cloud("cloud"), cand("cold", false), cand("warm", true),
			}, Load: loads(nil)},
			want: []string{"warm", "cold", "cloud"},
		},
		{
			name:   "an OpenAI-API node without a key is a local server",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{
				{Node: &nodev1.Node{Id: "localai", Kind: nodev1.Kind_KIND_OPENAI}, Loaded: true}, cand("cold", false),
			}, Load: loads(nil)},
			want: []string{"localai", "cold"},
		},
		{
			name:   "cloud-first puts cloud nodes before loaded local ones",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{cand("warm", true), cloud("cloud"), cand("cold", false)},
				Load: loads(nil), Tiers: CloudFirst},
			want: []string{"cloud", "warm", "cold"},
		},
		{
			name:   "cloud-first still tries an open breaker last",
			policy: RoundRobinOrder,
			in: Input{Candidates: []Candidate{cloud("cloud"), cand("warm", true)},
				Load: loads(map[string]nodestats.Load{"cloud": {Open: true}}), Tiers: CloudFirst},
			want: []string{"warm", "cloud"},
		},
		{
			name:   "p2c: the node's own report of queued work counts (other routers share it)",
			policy: PowerOfTwo,
			in: Input{Candidates: []Candidate{
				{Node: &nodev1.Node{Id: "queued"}, Loaded: true, Load: &nodev1.NodeLoad{RequestsRunning: proto.Int32(8), RequestsWaiting: proto.Int32(4)}},
				{Node: &nodev1.Node{Id: "idle"}, Loaded: true, Load: &nodev1.NodeLoad{RequestsRunning: proto.Int32(1)}},
			}, Load: loads(nil), Rand: picks(0, 0)},
			want: []string{"idle", "queued"},
		},
		{
			name:   "least in flight counts busy slots",
			policy: LeastInFlight,
			in: Input{Candidates: []Candidate{
				{Node: &nodev1.Node{Id: "full"}, Loaded: true, Load: &nodev1.NodeLoad{SlotsBusy: proto.Int32(4), SlotsTotal: proto.Int32(4)}},
				cand("free", true),
			}, Load: loads(map[string]nodestats.Load{"free": {InFlight: 2}})},
			want: []string{"free", "full"},
		},
		{
			name:   "round robin rotates within the loaded tier",
			policy: RoundRobinOrder,
			in: Input{Candidates: []Candidate{cand("a", true), cand("b", true), cand("c", false)},
				Load: loads(nil), Turn: 1},
			want: []string{"b", "a", "c"},
		},
		{
			name:   "least in flight",
			policy: LeastInFlight,
			in: Input{Candidates: []Candidate{cand("a", true), cand("b", true)},
				Load: loads(map[string]nodestats.Load{"a": {InFlight: 3}, "b": {InFlight: 1}})},
			want: []string{"b", "a"},
		},
		{
			name:   "everything open: still an order, loaded first",
			policy: LeastInFlight,
			in: Input{Candidates: []Candidate{cand("a", true), cand("b", true)},
				Load: loads(map[string]nodestats.Load{"a": {Open: true}, "b": {Open: true}})},
			want: []string{"a", "b"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ids(tc.policy(tc.in)))
		})
	}
}

func TestSessionAffinity(t *testing.T) {
	nodes := []Candidate{cand("a", true), cand("b", true), cand("c", true), cand("d", false)}
	in := func(key string, cs []Candidate, l map[string]nodestats.Load) Input {
		return Input{Candidates: cs, Load: loads(l), SessionKey: key, Rand: rand.IntN}
	}
	for _, p := range []Policy{PowerOfTwo, RoundRobinOrder, LeastInFlight} {
		first := PowerOfTwo(in("user-42", nodes, nil))[0].Node.GetId()
		for range 20 {
			assert.Equal(t, first, ids(p(in("user-42", nodes, nil)))[0], "the same key goes to the same node")
		}
		// Its node out of rotation: the key falls back to another healthy node.
		got := p(in("user-42", nodes, map[string]nodestats.Load{first: {Open: true}}))[0].Node.GetId()
		assert.NotEqual(t, first, got)
	}
	// Keys spread over the nodes.
	seen := map[string]bool{}
	for i := range 64 {
		seen[PowerOfTwo(in(fmt.Sprint("user-", i), nodes, nil))[0].Node.GetId()] = true
	}
	assert.Len(t, seen, 3, "loaded nodes only, all of them used")
}

// A session keeps the node it last used while that node is in the best
// tier, even when a node joins that tier to which hashing would move it.
func TestSessionKeepsItsNodeWhenANodeJoins(t *testing.T) {
	two := []Candidate{cand("a", true), cand("b", true)}
	three := []Candidate{cand("a", true), cand("b", true), cand("c", true)}
	hashed := func(key string, cs []Candidate) string {
		return PowerOfTwo(Input{Candidates: slices.Clone(cs), Load: loads(nil), SessionKey: key, Rand: rand.IntN})[0].Node.GetId()
	}
	// A key that hashing moves from a or b to c once c joins.
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("user-", i); hashed(k, three) == "c" {
			key = k
		}
	}
	last := hashed(key, two)
	for _, p := range []Policy{PowerOfTwo, RoundRobinOrder, LeastInFlight} {
		got := p(Input{Candidates: slices.Clone(three), Load: loads(nil), SessionKey: key, SessionNode: last, Rand: rand.IntN})
		assert.Equal(t, last, got[0].Node.GetId(), "the session stays on its node")
	}
	// Its node no longer in the best tier (the model unloaded there): the
	// session goes where the model is loaded.
	cold := []Candidate{cand(last, false), cand("c", true)}
	got := PowerOfTwo(Input{Candidates: cold, Load: loads(nil), SessionKey: key, SessionNode: last, Rand: rand.IntN})
	assert.Equal(t, "c", got[0].Node.GetId())
}

// Property: whatever the loads, a policy returns exactly the candidates
// (so never a node that was not up with the model), puts an out-of-
// rotation node first only when every candidate is out, puts a cloud node
// first only under cloud-first or when no local node is in rotation, and
// puts a cold node before a loaded one only when the loaded ones are out.
func TestPoliciesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []Policy{PowerOfTwo, RoundRobinOrder, LeastInFlight} {
		for range 500 {
			n := 1 + rng.IntN(6)
			mode := Tiers(rng.IntN(4))
			var cs []Candidate
			l := map[string]nodestats.Load{}
			for i := range n {
				id := fmt.Sprint("n", i)
				c := cand(id, rng.IntN(2) == 0)
				if rng.IntN(4) == 0 {
					c = cloud(id)
				}
				if Eligible(c, mode) {
					cs = append(cs, c)
				}
				l[id] = nodestats.Load{InFlight: int64(rng.IntN(5)), TTFT: time.Duration(rng.IntN(100)) * time.Millisecond, Open: rng.IntN(4) == 0}
			}
			key := ""
			if rng.IntN(2) == 0 {
				key = fmt.Sprint("k", rng.IntN(10))
			}
			if len(cs) == 0 {
				continue
			}
			out := p(Input{Candidates: cs, Load: loads(l), SessionKey: key, Rand: rng.IntN, Turn: rng.Uint64(), Tiers: mode})
			require.ElementsMatch(t, ids(cs), ids(out))
			anyOpenFree, anyLoadedFree, anyCloudFree, anyLocalFree := false, false, false, false
			for _, c := range cs {
				if !l[c.Node.GetId()].Open {
					anyOpenFree = true
					anyCloudFree = anyCloudFree || IsCloud(c.Node)
					anyLocalFree = anyLocalFree || !IsCloud(c.Node)
					anyLoadedFree = anyLoadedFree || (c.Loaded && !IsCloud(c.Node))
				}
			}
			head := out[0]
			if anyOpenFree {
				require.False(t, l[head.Node.GetId()].Open, "picked a node out of rotation while others were in")
			}
			switch {
			case mode == CloudFirst && anyCloudFree:
				require.True(t, IsCloud(head.Node), "cloud-first picked a local node while a cloud one was free")
			case anyLocalFree:
				require.False(t, IsCloud(head.Node), "%s picked a cloud node while a local one was free", mode)
				if anyLoadedFree {
					require.True(t, head.Loaded, "picked a cold node while a loaded one was free")
				}
			}
		}
	}
}

func TestByName(t *testing.T) {
	for _, name := range []string{"", NameP2C, NameRoundRobin, NameLeastInFlight} {
		_, err := ByName(name)
		assert.NoError(t, err, name)
	}
	_, err := ByName("random")
	assert.ErrorContains(t, err, `routing policy "random"`)
}

func cloud(id string) Candidate {
	return Candidate{Node: &nodev1.Node{Id: id, Kind: nodev1.Kind_KIND_OPENAI, ApiKeyEnv: "KEY"}, Loaded: true}
}

func TestEligibleAndParseTiers(t *testing.T) {
	local, remote := cand("l", true), cloud("c")
	for _, tt := range []struct {
		tiers         string
		local, remote bool
	}{
		{"local-first", true, true},
		{"cloud-first", true, true},
		{"local-only", true, false},
		{"cloud-only", false, true},
	} {
		mode, err := ParseTiers(tt.tiers)
		if err != nil {
			t.Fatal(err)
		}
		if mode.String() != tt.tiers {
			t.Errorf("String() = %q, want %q", mode, tt.tiers)
		}
		if Eligible(local, mode) != tt.local || Eligible(remote, mode) != tt.remote {
			t.Errorf("%s: local %v, cloud %v; want %v, %v", tt.tiers, Eligible(local, mode), Eligible(remote, mode), tt.local, tt.remote)
		}
	}
	if _, err := ParseTiers("cloudy"); err == nil || !strings.Contains(err.Error(), `"cloudy"`) {
		t.Errorf("ParseTiers(cloudy) = %v, want an error quoting it", err)
	}
}
