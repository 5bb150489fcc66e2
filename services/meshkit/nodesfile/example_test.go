package nodesfile

import (
	"testing"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example shipped in deployments/ must stay valid.
func TestDeploymentsExample(t *testing.T) {
	nodes, err := Load("../../../deployments/nodes.example.yaml")
	require.NoError(t, err)
	require.Len(t, nodes, 5)
	assert.Equal(t, "laptop", nodes[0].GetId())
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, nodes[0].GetKind())
	assert.Equal(t, "GPU1_API_KEY", nodes[1].GetApiKeyEnv())
	assert.Equal(t, nodev1.Kind_KIND_OPENAI, nodes[4].GetKind())
	assert.Equal(t, "https://api.openai.com/v1", nodes[4].GetBaseUrl())
}
