package probe

import (
	"context"
	"fmt"
	"net/http"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
)

// lmStudioModel is one entry of LM Studio's GET /api/v0/models.
type lmStudioModel struct {
	ID        string `json:"id"`
	Type      string `json:"type"`  // llm | vlm | embeddings
	State     string `json:"state"` // loaded | not-loaded
	Publisher string `json:"publisher"`
}

// probeLMStudio probes LM Studio through its REST API /api/v0/models,
// which says of each downloaded model whether it is loaded and whether it
// is an LLM, a vision LLM or an embedding model. A not-loaded model is
// still served (LM Studio loads it just in time), after the loaded ones.
// A server without /api/v0 (404) is probed by its OpenAI model list, with
// nothing known to be loaded.
func probeLMStudio(_ *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res := &nodev1.ProbeResult{}
	var list struct {
		Data []lmStudioModel `json:"data"`
	}
	err := getJSON(ctx, conn, "/api/v0/models", &list)
	if httpStatus(err) == http.StatusNotFound {
		if !listModels(ctx, conn, res, false) {
			return res
		}
		res.Up = true
		res.Reason = fmt.Sprintf("lmstudio: %s, loaded unknown (no /api/v0)", plural(len(res.Models), "model"))
		return res
	}
	if err != nil {
		return failed(res, conn, "/api/v0/models", err)
	}
	nLoaded := 0
	for _, m := range list.Data {
		if m.ID == "" {
			continue
		}
		mi := &nodev1.ModelInfo{Id: m.ID, Loaded: m.State == "loaded", OwnedBy: m.Publisher, Type: lmStudioType(m.Type)}
		if mi.Loaded {
			nLoaded++
		}
		res.Models = append(res.Models, mi)
	}
	res.Up = true
	res.Reason = fmt.Sprintf("lmstudio: %s, %d loaded", plural(len(res.Models), "model"), nLoaded)
	return res
}

func lmStudioType(t string) nodev1.ModelType {
	switch t {
	case "embeddings":
		return nodev1.ModelType_MODEL_TYPE_EMBEDDING
	case "llm", "vlm":
		return nodev1.ModelType_MODEL_TYPE_CHAT
	}
	return nodev1.ModelType_MODEL_TYPE_UNSPECIFIED
}
