// Package policy orders a request's candidate nodes: the first is where
// the request goes, the rest are its failover order. Policies are pure
// functions of the candidates, their live load and the request's session
// key (randomness comes in as a parameter), so they are table-tested.
//
// Every policy keeps the same tiers: local nodes with the model loaded,
// then local nodes that would need a cold load, then cloud nodes (paid per
// token, used only when no local node can serve; see IsCloud), and nodes
// out of rotation (breaker open) last — tried only when nothing else is
// left. Per model, Tiers can put the cloud first or use only one side.
package policy

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
)

// Candidate is a node that can serve the request.
type Candidate = nodetable.Candidate

// Input is what a policy decides on.
type Input struct {
	Candidates []Candidate
	Load       func(nodeID string) nodestats.Load
	// SessionKey, when set, keeps a conversation on one node (its KV
	// cache) while that node is healthy.
	SessionKey string
	// SessionNode is the node the session last used, when known: it
	// keeps the session while it is in the best tier.
	SessionNode string
	// Rand returns a number in [0, n); policies that sample use it.
	Rand func(n int) int
	// Turn is a counter that advances per request, for round robin.
	Turn uint64
	// Tiers says where cloud nodes stand; the zero value is LocalFirst.
	// Candidates must already be Eligible under it.
	Tiers Tiers
}

// Policy orders candidates.
type Policy func(Input) []Candidate

// Names of the policies, for configuration.
const (
	NameP2C           = "p2c"
	NameRoundRobin    = "round-robin"
	NameLeastInFlight = "least-in-flight"
)

// ByName returns the named policy.
func ByName(name string) (Policy, error) {
	switch name {
	case NameP2C, "":
		return PowerOfTwo, nil
	case NameRoundRobin:
		return RoundRobinOrder, nil
	case NameLeastInFlight:
		return LeastInFlight, nil
	}
	return nil, fmt.Errorf("routing policy %q: want %s, %s or %s", name, NameP2C, NameRoundRobin, NameLeastInFlight)
}

// Tiers says where cloud nodes stand for a model.
type Tiers int

// The tier modes.
const (
	// LocalFirst uses cloud nodes only when no local node can serve.
	LocalFirst Tiers = iota
	// CloudFirst prefers cloud nodes and falls back to local ones.
	CloudFirst
	// LocalOnly never uses cloud nodes.
	LocalOnly
	// CloudOnly never uses local nodes.
	CloudOnly
)

var tiersNames = []string{"local-first", "cloud-first", "local-only", "cloud-only"}

func (t Tiers) String() string {
	if int(t) < len(tiersNames) {
		return tiersNames[t]
	}
	return fmt.Sprintf("Tiers(%d)", int(t))
}

// ParseTiers reads a tier mode by name.
func ParseTiers(name string) (Tiers, error) {
	if i := slices.Index(tiersNames, name); i >= 0 {
		return Tiers(i), nil
	}
	return 0, fmt.Errorf("tiers %q: want one of %s", name, strings.Join(tiersNames, ", "))
}

// IsCloud says whether n is a cloud node (a paid provider): an Anthropic
// node, or an OpenAI-API node reached with an API key. Local
// OpenAI-compatible servers without a key, and every other kind, are
// local.
func IsCloud(n *nodev1.Node) bool {
	switch n.GetKind() {
	case nodev1.Kind_KIND_ANTHROPIC:
		return true
	case nodev1.Kind_KIND_OPENAI:
		return n.GetApiKeyEnv() != ""
	}
	return false
}

// Eligible says whether c may serve a request under t at all.
func Eligible(c Candidate, t Tiers) bool {
	switch t {
	case LocalOnly:
		return !IsCloud(c.Node)
	case CloudOnly:
		return IsCloud(c.Node)
	}
	return true
}

// Tiers, in order.
const (
	tierCloudFirst = iota // cloud nodes under CloudFirst
	tierLoaded
	tierCold
	tierCloud
	tierOut
	nTiers
)

// ordered are the tiers a policy orders within; tierOut keeps its order.
var ordered = []int{tierCloudFirst, tierLoaded, tierCold, tierCloud}

// tiers splits candidates into the tiers, keeping their order.
func tiers(in Input) [nTiers][]Candidate {
	var t [nTiers][]Candidate
	for _, c := range in.Candidates {
		switch {
		case in.Load(c.Node.GetId()).Open:
			t[tierOut] = append(t[tierOut], c)
		case IsCloud(c.Node) && in.Tiers == CloudFirst:
			t[tierCloudFirst] = append(t[tierCloudFirst], c)
		case IsCloud(c.Node):
			t[tierCloud] = append(t[tierCloud], c)
		case c.Loaded:
			t[tierLoaded] = append(t[tierLoaded], c)
		default:
			t[tierCold] = append(t[tierCold], c)
		}
	}
	return t
}

func concat(t [nTiers][]Candidate) []Candidate {
	return slices.Concat(t[:]...)
}

// score is the expected wait on a node: its requests (plus this one)
// times its time to first token. Unknown TTFT counts as the same small
// unit for every node, so load alone decides until samples exist.
func score(c Candidate, l nodestats.Load) float64 {
	ttft := float64(l.TTFT)
	if ttft <= 0 {
		ttft = 1
	}
	return float64(busy(c, l)+1) * ttft
}

// busy is how many requests c is working on or holding: this router's own
// in flight, or what the node itself last reported (running and queued
// requests, or busy slots) when that is more — other routers and clients
// share the node.
func busy(c Candidate, l nodestats.Load) int64 {
	n := l.InFlight
	if r := c.Load; r != nil {
		n = max(n, int64(r.GetRequestsRunning()+r.GetRequestsWaiting()), int64(r.GetSlotsBusy()))
	}
	return n
}

// PowerOfTwo is the default: within the best tier it samples two nodes
// and leads with the one with the lower score; the rest follow by score.
// A session key first sends the request to the key's node (rendezvous
// hashing) when that node is in the best non-empty tier.
func PowerOfTwo(in Input) []Candidate {
	t := tiers(in)
	for _, i := range ordered {
		g := t[i]
		slices.SortStableFunc(g, func(a, b Candidate) int {
			sa, sb := score(a, in.Load(a.Node.GetId())), score(b, in.Load(b.Node.GetId()))
			switch {
			case sa < sb:
				return -1
			case sa > sb:
				return 1
			}
			return 0
		})
		if len(g) >= 2 && in.Rand != nil {
			a, b := in.Rand(len(g)), in.Rand(len(g)-1)
			if b >= a {
				b++
			}
			win := min(a, b) // sorted by score: the lower index has the lower score
			g[0], g[win] = g[win], g[0]
		}
	}
	return withAffinity(t, in.SessionKey, in.SessionNode)
}

// RoundRobinOrder rotates the start within each tier per request.
func RoundRobinOrder(in Input) []Candidate {
	t := tiers(in)
	for _, i := range ordered {
		if n := len(t[i]); n > 1 {
			k := int(in.Turn % uint64(n))
			t[i] = append(t[i][k:], t[i][:k]...)
		}
	}
	return withAffinity(t, in.SessionKey, in.SessionNode)
}

// LeastInFlight orders each tier by requests in flight (or the node's
// own report of its work, when that is more; see busy).
func LeastInFlight(in Input) []Candidate {
	t := tiers(in)
	for _, i := range ordered {
		slices.SortStableFunc(t[i], func(a, b Candidate) int {
			return int(busy(a, in.Load(a.Node.GetId())) - busy(b, in.Load(b.Node.GetId())))
		})
	}
	return withAffinity(t, in.SessionKey, in.SessionNode)
}

// withAffinity moves the session's node to the front of the best
// non-empty in-rotation tier: the node the session last used when it is
// in that tier, else the key's node by rendezvous hashing, so a new
// session picks the same node on every router while the set of healthy
// candidates is the same.
func withAffinity(t [nTiers][]Candidate, key, last string) []Candidate {
	if key == "" {
		return concat(t)
	}
	for _, i := range ordered {
		g := t[i]
		if len(g) == 0 {
			continue
		}
		if j := slices.IndexFunc(g, func(c Candidate) bool { return c.Node.GetId() == last }); last != "" && j >= 0 {
			g[0], g[j] = g[j], g[0]
			break
		}
		best, bestHash := 0, uint64(0)
		for j, c := range g {
			h := fnv.New64a()
			h.Write([]byte(key))
			h.Write([]byte{0})
			h.Write([]byte(c.Node.GetId()))
			if v := h.Sum64(); j == 0 || v > bestHash {
				best, bestHash = j, v
			}
		}
		g[0], g[best] = g[best], g[0]
		break
	}
	return concat(t)
}
