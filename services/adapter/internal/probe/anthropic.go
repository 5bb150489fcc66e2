package probe

import (
	"context"
	"fmt"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/anthropic"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
)

// probeAnthropic probes Anthropic's API by its model list (GET
// /v1/models, authenticated, so a bad key shows as misconfigured). Every
// model listed chats.
func probeAnthropic(_ *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res := &nodev1.ProbeResult{}
	models, err := anthropic.New(conn).Models(ctx)
	if err != nil {
		return failed(res, conn, anthropic.ModelsPath, err)
	}
	for _, m := range models {
		res.Models = append(res.Models, &nodev1.ModelInfo{
			Id: m.ID, Loaded: true, Created: m.CreatedAt.Unix(), OwnedBy: "anthropic", Type: nodev1.ModelType_MODEL_TYPE_CHAT,
		})
	}
	res.Up = true
	res.Reason = fmt.Sprintf("anthropic: %s", plural(len(res.Models), "model"))
	return res
}
