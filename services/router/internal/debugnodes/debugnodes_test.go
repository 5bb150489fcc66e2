package debugnodes_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/debugnodes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"google.golang.org/protobuf/proto"
)

func TestServesTheRoutersViewWithoutSecrets(t *testing.T) {
	table := nodetable.New()
	table.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{
		{
			Node: &nodev1.Node{Id: "gpu-2", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://user:planted-password@10.0.0.6:8000/v1",
				ApiKeyEnv: "PLANTED_KEY_ENV", Group: "big",
				Headers: []*nodev1.Header{{Name: "X-Token", Value: "planted-header-value"}}},
			Status: nodev1.Status_STATUS_UP, Reason: "2 models",
			Models: []*nodev1.ModelInfo{{Id: "llama3.2:3b", Loaded: true}, {Id: "qwen3:8b"}},
			Load:   &nodev1.NodeLoad{RequestsRunning: proto.Int32(3), RequestsWaiting: proto.Int32(1)},
		},
		{
			Node:   &nodev1.Node{Id: "gpu-1", Kind: nodev1.Kind_KIND_OLLAMA},
			Status: nodev1.Status_STATUS_DOWN, Reason: "connect: connection refused",
		},
	}})
	stats := nodestats.New(time.Minute, nil)
	end, _ := stats.Begin("gpu-2", 0)
	defer end(0, nodestats.Served)
	failed, _ := stats.Begin("gpu-1", 0)
	failed(0, nodestats.Unreachable) // a refused connection opens the breaker

	srv := httptest.NewServer(debugnodes.Handler(func() string { return debugnodes.SourceHealthmon }, table, stats))
	defer srv.Close()
	resp, err := http.Get(srv.URL + debugnodes.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	for _, secret := range []string{"planted-password", "PLANTED_KEY_ENV", "planted-header-value", "10.0.0.6"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("view shows %q:\n%s", secret, body)
		}
	}
	var v debugnodes.View
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Source != "healthmon" {
		t.Errorf("source %q, want healthmon", v.Source)
	}
	if len(v.Nodes) != 2 || v.Nodes[0].ID != "gpu-1" || v.Nodes[1].ID != "gpu-2" {
		t.Fatalf("nodes not in id order: %+v", v.Nodes)
	}
	down, up := v.Nodes[0], v.Nodes[1]
	if down.Status != "down" || down.Reason != "connect: connection refused" || !down.OutOfRotation || down.Kind != "ollama" {
		t.Errorf("down node: %+v", down)
	}
	if up.Status != "up" || up.Kind != "vllm" || up.Group != "big" || up.InFlight != 1 || up.OutOfRotation {
		t.Errorf("up node: %+v", up)
	}
	want := []debugnodes.Model{{ID: "llama3.2:3b", Loaded: true}, {ID: "qwen3:8b"}}
	if len(up.Models) != 2 || up.Models[0] != want[0] || up.Models[1] != want[1] {
		t.Errorf("models: %+v, want %+v", up.Models, want)
	}
	if up.Load == nil || *up.Load.RequestsRunning != 3 || *up.Load.RequestsWaiting != 1 || up.Load.SlotsBusy != nil {
		t.Errorf("load: %+v", up.Load)
	}
}

func TestRefusesWrites(t *testing.T) {
	srv := httptest.NewServer(debugnodes.Handler(func() string { return debugnodes.SourceLastKnown }, nodetable.New(), nodestats.New(time.Second, nil)))
	defer srv.Close()
	resp, err := http.Post(srv.URL+debugnodes.Path, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
}

func TestShowsWhereAKindComesFrom(t *testing.T) {
	table := nodetable.New()
	table.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{
		{Node: &nodev1.Node{Id: "a", Kind: nodev1.Kind_KIND_OPENAI}, Status: nodev1.Status_STATUS_UP},
		{Node: &nodev1.Node{Id: "b", Kind: nodev1.Kind_KIND_OLLAMA, RecognizeKind: true}, KindRecognized: true, Status: nodev1.Status_STATUS_UP},
		{Node: &nodev1.Node{Id: "c", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true}, Status: nodev1.Status_STATUS_DOWN},
	}})
	v := debugnodes.Of(debugnodes.SourceHealthmon, table.Snapshot(), nodestats.New(time.Minute, nil))
	got := map[string]string{}
	for _, n := range v.Nodes {
		got[n.ID] = n.Kind + " " + n.KindSource
	}
	want := map[string]string{"a": "openai configured", "b": "ollama recognized", "c": "openai default"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("node %s: kind %q, want %q", id, got[id], w)
		}
	}
}
