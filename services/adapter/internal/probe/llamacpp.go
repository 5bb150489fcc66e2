package probe

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// probeLlamaCpp probes llama.cpp's llama-server: /health answers 503
// "Loading model" while the model loads (STATUS_LOADING: alive, not
// ready, not a failure) and 200 when ready; /v1/models has the one model
// it serves; /slots, when the server enables it, says how many of its
// slots are busy (a 501 or 404 there just means it is disabled).
func probeLlamaCpp(_ *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	res := &nodev1.ProbeResult{}
	if _, err := get(ctx, conn, "/health", "application/json"); err != nil {
		if loading(err) {
			res.Status = nodev1.Status_STATUS_LOADING
			res.Reason = "llamacpp: loading the model (GET " + conn.BasePath() + "/health: HTTP 503 Loading model)"
			return res
		}
		return failed(res, conn, "/health", err)
	}
	if !listModels(ctx, conn, res, true) {
		if res.Status == nodev1.Status_STATUS_UNSPECIFIED && strings.Contains(strings.ToLower(res.Reason), "loading model") {
			res.Status = nodev1.Status_STATUS_LOADING // /health raced the end of a reload
		}
		return res
	}
	res.Up = true
	res.Reason = fmt.Sprintf("llamacpp: %s", plural(len(res.Models), "model"))
	load, err := llamaSlots(ctx, conn)
	switch {
	case err == nil:
		res.Load = load
	case httpStatus(err) == http.StatusNotImplemented || httpStatus(err) == http.StatusNotFound:
		// --no-slots (or an old server): no load to report.
	default:
		res.Reason += " (slots unknown: " + conn.Redact(nodeconn.Describe(http.MethodGet, conn.BasePath()+"/slots", err)) + ")"
	}
	return res
}

// loading reports whether err is llama-server's 503 "Loading model".
func loading(err error) bool {
	e, ok := apierror.FromError(err)
	return ok && e.HTTPStatus == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(e.Message), "loading model")
}

// llamaSlots reads GET /slots: one object per slot, busy when
// is_processing (older servers: state 1).
func llamaSlots(ctx context.Context, conn *nodeconn.Client) (*nodev1.NodeLoad, error) {
	var slots []struct {
		IsProcessing *bool `json:"is_processing"`
		State        *int  `json:"state"`
	}
	if err := getJSON(ctx, conn, "/slots", &slots); err != nil {
		return nil, err
	}
	busy := 0
	for _, s := range slots {
		if (s.IsProcessing != nil && *s.IsProcessing) || (s.IsProcessing == nil && s.State != nil && *s.State != 0) {
			busy++
		}
	}
	return &nodev1.NodeLoad{SlotsBusy: ptr(int32(busy)), SlotsTotal: ptr(int32(len(slots))), RequestsRunning: ptr(int32(busy))}, nil
}
