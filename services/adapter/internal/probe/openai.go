package probe

import (
	"context"
	"fmt"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
)

// probeOpenAI probes a generic OpenAI-compatible server or cloud API by
// its model list — a cheap call that is authenticated, so a bad key shows
// as STATUS_MISCONFIGURED. Everything listed is served at once (loaded);
// the list says nothing reliable about embedding-only models.
func probeOpenAI(_ *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res := &nodev1.ProbeResult{}
	if !listModels(ctx, conn, res, true) {
		return res
	}
	res.Up = true
	res.Reason = fmt.Sprintf("%s: %s", nodespec.KindName(conn.Kind()), plural(len(res.Models), "model"))
	return res
}
