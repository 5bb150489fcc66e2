package probe

import (
	"context"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/ollama"
)

// probeOllama probes through Ollama's native API (package ollama):
// /api/version, /api/tags, /api/ps and, once per model version,
// /api/show for the model's type. Never a chat or an embedding call.
func probeOllama(p *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res, fail := ollama.New(conn).Probe(ctx, &p.ollamaTypes)
	if fail != nil {
		return failed(res, conn, fail.Path, fail.Err)
	}
	return res
}
