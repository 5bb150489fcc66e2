package meshtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// RouterNode is one node in the first router's GET /debug/nodes: what the
// router routes by, which can lag healthmon's stream.
type RouterNode struct {
	ID     string
	Status string // "up", "down", …
	Models []struct {
		ID     string
		Loaded bool
	}
	InFlight      int64 `json:"in_flight"`
	OutOfRotation bool  `json:"out_of_rotation"`
}

// Loaded says whether the node has model loaded.
func (n RouterNode) Loaded(model string) bool {
	for _, m := range n.Models {
		if m.ID == model {
			return m.Loaded
		}
	}
	return false
}

// RouterNodes returns the first router's view of the nodes by id.
func (m *Mesh) RouterNodes() (map[string]RouterNode, error) {
	v, err := m.routerView()
	if err != nil {
		return nil, err
	}
	out := map[string]RouterNode{}
	for _, n := range v.Nodes {
		out[n.ID] = n
	}
	return out, nil
}

// WaitRouterOnHealthmon waits up to 30s until the first router follows
// healthmon's node stream (not Consul's fallback view, nor a last known
// state).
func (m *Mesh) WaitRouterOnHealthmon(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := m.routerView()
		if err == nil && v.Source == "healthmon" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router never followed healthmon's stream: source %q (err %v)", v.Source, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RouterSource is where the first router's node view comes from right
// now: "healthmon", "consul" or "last known".
func (m *Mesh) RouterSource() (string, error) {
	v, err := m.routerView()
	return v.Source, err
}

type routerView struct {
	Source string
	Nodes  []RouterNode
}

func (m *Mesh) routerView() (routerView, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(m.RouterAdminURL + "/debug/nodes")
	if err != nil {
		return routerView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return routerView{}, fmt.Errorf("GET /debug/nodes: %s", resp.Status)
	}
	var v routerView
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}

// WaitRouterView waits up to 30s until cond holds for the first router's
// view of the nodes: a test that needs the router to know something (a
// model loaded, a node down) before it sends a request waits here rather
// than on healthmon, whose stream the router may not have applied yet.
func (m *Mesh) WaitRouterView(t testing.TB, cond func(map[string]RouterNode) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last map[string]RouterNode
	for {
		nodes, err := m.RouterNodes()
		if err == nil && cond(nodes) {
			return
		}
		if err == nil {
			last = nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("router view never matched; last: %+v (err %v)", last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
