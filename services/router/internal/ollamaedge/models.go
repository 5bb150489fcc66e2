package ollamaedge

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// details is Ollama's model details: the family when the node reported
// it; the rest is not in the mesh's node state, so it is empty rather than
// guessed.
type details struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

type tagModel struct {
	Name       string    `json:"name"`
	Model      string    `json:"model"`
	ModifiedAt time.Time `json:"modified_at"`
	Size       int64     `json:"size"`
	Digest     string    `json:"digest"`
	Details    details   `json:"details"`
}

type psModel struct {
	Name      string    `json:"name"`
	Model     string    `json:"model"`
	Size      int64     `json:"size"`
	Digest    string    `json:"digest"`
	Details   details   `json:"details"`
	ExpiresAt time.Time `json:"expires_at"`
	SizeVRAM  int64     `json:"size_vram"`
	// ContextLength is omitted when the node did not report it (older
	// Ollama versions, and the kinds other than ollama).
	ContextLength int32 `json:"context_length,omitempty"`
}

// digestOf is the node's digest of m, or for nodes that report none
// (every kind but ollama) the SHA-256 of the model id: Ollama's clients
// expect 64 hex digits (the ollama CLI's list and ps print the first 12
// and crash on fewer), and a model keeps its digest from one call to the
// next.
func digestOf(m *nodev1.ModelInfo) string {
	if d := m.GetDigest(); d != "" {
		return d
	}
	sum := sha256.Sum256([]byte(m.GetId()))
	return hex.EncodeToString(sum[:])
}

func modified(m *nodev1.ModelInfo) time.Time {
	if m.GetCreated() > 0 {
		return time.Unix(m.GetCreated(), 0).UTC()
	}
	return zeroTime
}

// tags is /api/tags: every model a healthy node serves, once.
func (h *Handler) tags() any {
	models := h.opts.Table.Snapshot().Models()
	out := make([]tagModel, 0, len(models))
	for _, m := range models {
		out = append(out, tagModel{Name: m.GetId(), Model: m.GetId(), ModifiedAt: modified(m), Size: m.GetSizeBytes(),
			Digest: digestOf(m), Details: detailsOf(m)})
	}
	return map[string]any{"models": out}
}

// ps is /api/ps: the models loaded in memory on healthy nodes, once per
// model (the first node in id order that has it loaded).
func (h *Handler) ps() any {
	seen := map[string]bool{}
	out := []psModel{}
	for _, p := range h.opts.Table.Snapshot().Loaded() {
		id := p.Model.GetId()
		if seen[id] {
			continue
		}
		seen[id] = true
		expires := forever // a model that is never unloaded (vLLM, llama.cpp, cloud)
		if t := p.Model.GetExpiresAt(); t != nil {
			expires = t.AsTime()
		}
		out = append(out, psModel{Name: id, Model: id, Size: p.Model.GetSizeBytes(), Digest: digestOf(p.Model),
			Details: detailsOf(p.Model), ExpiresAt: expires, SizeVRAM: p.Model.GetSizeVram(),
			ContextLength: p.Model.GetContextLength()})
	}
	return map[string]any{"models": out}
}

func detailsOf(m *nodev1.ModelInfo) details {
	d := details{Family: m.GetFamily()}
	if d.Family != "" {
		d.Families = []string{d.Family}
	}
	return d
}
