package consul

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// A node of kind auto is registered in Consul as llmesh-kind auto, its
// recognised kind is in the state healthmon keeps in KV, and a router
// that only has Consul (healthmon gone) still treats it as what it was
// recognised as: an Ollama node, whose /api/chat passes through.
func TestKindAutoInConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	ol := meshtest.StartNode(t, "ol", simnode.Config{Models: []string{"tiny:latest"}, Tokens: 3})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{{ID: "auto-1", URL: ol.URL + "/v1", Models: ol.ModelIDs, Kind: "auto"}},
		meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true})

	entries, _, err := c.Health().Service("llm", "", false, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "auto", entries[0].Service.Meta["llmesh-kind"], "registered as configured, not as recognised")
	assert.Contains(t, llmesh(t, agent, "node", "list"), "auto")

	var st nodev1.NodeState
	require.Eventually(t, func() bool {
		pair, _, err := c.KV().Get("llmesh/nodes/auto-1", nil)
		return err == nil && pair != nil && protojson.Unmarshal(pair.Value, &st) == nil
	}, 10*time.Second, 20*time.Millisecond, "healthmon stores the node's state in KV")
	assert.True(t, st.GetKindRecognized())
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, st.GetNode().GetKind())
	require.Eventually(t, func() bool {
		s, out := check(t, c, "auto-1")
		return s == api.HealthPassing && strings.Contains(out, "ollama")
	}, 10*time.Second, 20*time.Millisecond)

	m.Stop(t, "healthmon")
	late := m.StartRouter(t)
	before := ol.Stats().Requests["POST /api/chat"]
	require.Eventually(t, func() bool {
		resp, err := http.Post(late+"/api/chat", "application/json",
			strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":false}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "a router with only consul serves the recognised node")
	assert.Greater(t, ol.Stats().Requests["POST /api/chat"], before, "as an Ollama node: /api/chat passes through")
}
