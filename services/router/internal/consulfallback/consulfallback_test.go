package consulfallback

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/assert"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestUsable(t *testing.T) {
	check := func(id, status, output string) *api.HealthCheck {
		return &api.HealthCheck{CheckID: id, Status: status, Output: output}
	}
	cases := []struct {
		name   string
		checks []*api.HealthCheck
		want   bool
	}{
		{"no checks (an agent's service healthmon cannot write to)", nil, true},
		{"llmesh passing", []*api.HealthCheck{check("llmesh:n", api.HealthPassing, "2 models")}, true},
		{"llmesh expired while healthmon was away", []*api.HealthCheck{
			check("llmesh:n", api.HealthCritical, "TTL expired (last output before timeout follows): 2 models")}, true},
		{"llmesh says down", []*api.HealthCheck{check("llmesh:n", api.HealthCritical, "connection refused")}, false},
		{"llmesh says loading", []*api.HealthCheck{check("llmesh:n", api.HealthWarning, "loading: …")}, false},
		{"the agent's node is dead", []*api.HealthCheck{
			check("llmesh:n", api.HealthPassing, "2 models"), check("serfHealth", api.HealthCritical, "Agent not live")}, false},
		{"the agent's own service check fails", []*api.HealthCheck{check("service:n", api.HealthCritical, "refused")}, false},
		{"the agent's own check warns", []*api.HealthCheck{check("service:n", api.HealthWarning, "slow")}, true},
		{"another node's expired llmesh check is not this one's", []*api.HealthCheck{
			check("llmesh:other", api.HealthCritical, "TTL expired")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &api.ServiceEntry{Node: &api.Node{Node: "box"}, Service: &api.AgentService{ID: "n"}, Checks: tc.checks}
			assert.Equal(t, tc.want, Usable(e))
		})
	}
}

// A node registered with kind auto falls back as the kind healthmon
// recognised, at the server root read from its own registration.
func TestRecognizedAs(t *testing.T) {
	n := &nodev1.Node{Id: "auto", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://10.0.0.5:11434/v1"}
	got := recognizedAs(n, nodev1.Kind_KIND_OLLAMA)
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, got.GetKind())
	assert.Equal(t, "http://10.0.0.5:11434", got.GetBaseUrl())
	assert.True(t, got.GetRecognizeKind())
	assert.Equal(t, "http://10.0.0.5:11434/v1", n.GetBaseUrl(), "n itself is left alone")
	assert.Equal(t, "http://10.0.0.5:11434/v1", recognizedAs(n, nodev1.Kind_KIND_OPENAI).GetBaseUrl())
}
