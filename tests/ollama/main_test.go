//go:build ollama

// Package ollama drives the mesh against real Ollama servers (built by
// `make ollama`) serving tiny generated models: the OpenAI SDK end to end,
// the adapter's Ollama probes, and real failure modes — a killed server,
// "server busy" 503s and cold model loads. Run it with `make test-ollama`.
package ollama

import (
	"testing"

	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
)

var bins map[string]string

func TestMain(m *testing.M) { meshtest.Main(m, &bins, ollamatest.Binary) }

func ref(s *ollamatest.Server, models ...string) meshtest.NodeRef {
	return meshtest.NodeRef{ID: s.ID, URL: s.URL, Models: models}
}
