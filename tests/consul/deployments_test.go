package consul

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The service definitions in deployments/consul are valid LLM nodes.
func TestDeploymentExamplesAreValidNodes(t *testing.T) {
	for file, wantID := range map[string]string{"ollama-node.json": "gpu-1", "vllm-node-with-key.json": "vllm-1", "gateway-node-tls.json": "gw-1"} {
		b, err := os.ReadFile("../../deployments/consul/" + file)
		require.NoError(t, err)
		var def struct {
			Service struct {
				ID   string            `json:"id"`
				Name string            `json:"name"`
				Port int               `json:"port"`
				Meta map[string]string `json:"meta"`
			} `json:"service"`
		}
		require.NoError(t, json.Unmarshal(b, &def), file)
		assert.Equal(t, consulnodes.DefaultService, def.Service.Name, file)
		n, err := consulnodes.FromEntry(&api.ServiceEntry{
			Node:    &api.Node{Node: "box", Address: "10.0.0.5"},
			Service: &api.AgentService{ID: def.Service.ID, Service: def.Service.Name, Port: def.Service.Port, Meta: def.Service.Meta},
		})
		require.NoError(t, err, file)
		assert.Equal(t, wantID, n.GetId())
		if wantID == "gw-1" {
			assert.Equal(t, "https://10.0.0.5:8443", n.GetBaseUrl())
			assert.Equal(t, "/etc/llmesh/corp-ca.pem", n.GetTlsCaFile())
			assert.Equal(t, "/etc/llmesh/adapter.key", n.GetTlsKeyFile())
			assert.Len(t, n.GetHeaders(), 2)
		}
	}
}
