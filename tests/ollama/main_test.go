//go:build ollama

// Package ollama drives the mesh against real Ollama servers (built by
// `make ollama`) serving tiny generated models: the OpenAI SDK end to end,
// the adapter's Ollama probes, and real failure modes — a killed server,
// "server busy" 503s and cold model loads. Run it with `make test-ollama`.
package ollama

import (
	"fmt"
	"os"
	"testing"

	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
)

var bins map[string]string

func TestMain(m *testing.M) {
	if _, err := ollamatest.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "llmesh-ollama-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err = meshtest.Binaries(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func ref(s *ollamatest.Server, models ...string) meshtest.NodeRef {
	return meshtest.NodeRef{ID: s.ID, URL: s.URL, Models: models}
}
