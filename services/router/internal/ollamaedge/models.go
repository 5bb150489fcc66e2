package ollamaedge

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// details is Ollama's model details, as far as the node reported them
// (Ollama nodes report them all; other kinds at most the family): what
// is not known is empty rather than guessed.
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

// tags is /api/tags: every model a healthy node serves, once, then each
// configured alias whose model is served, as its own entry with that
// model's details (Ollama clients can only pick a name the list has).
func (h *Handler) tags() any {
	models := h.opts.Table.Snapshot().Models()
	out := make([]tagModel, 0, len(models))
	for _, m := range models {
		out = append(out, tagEntry(m.GetId(), m))
	}
	byName := map[string]*nodev1.ModelInfo{}
	for _, m := range models {
		for _, a := range m.GetAliases() {
			if byName[a] == nil {
				byName[a] = m
			}
		}
	}
	for _, m := range models {
		byName[m.GetId()] = m // a model's own id wins over another's alias
	}
	if h.opts.Routes != nil {
		for _, alias := range h.opts.Routes.Aliases() {
			if m := byName[h.opts.Routes.Resolve(alias).Model]; m != nil && byName[alias] == nil {
				out = append(out, tagEntry(alias, m))
			}
		}
	}
	return map[string]any{"models": out}
}

func tagEntry(name string, m *nodev1.ModelInfo) tagModel {
	return tagModel{Name: name, Model: name, ModifiedAt: modified(m), Size: m.GetSizeBytes(), Digest: digestOf(m), Details: detailsOf(m)}
}

// ps is /api/ps: the models loaded in memory on healthy nodes, once per
// model. A model loaded on several nodes is shown as on the one where it
// stays loaded longest (latest expires_at; a node that never unloads
// wins), and the list is ordered by that expiry, longest first, as
// Ollama orders its own.
func (h *Handler) ps() any {
	best := map[string]*nodev1.ModelInfo{}
	var ids []string
	for _, p := range h.opts.Table.Snapshot().Loaded() {
		id := p.Model.GetId()
		have, ok := best[id]
		if !ok {
			ids = append(ids, id)
		}
		if !ok || expiry(p.Model).After(expiry(have)) {
			best[id] = p.Model
		}
	}
	slices.SortStableFunc(ids, func(a, b string) int { return expiry(best[b]).Compare(expiry(best[a])) })
	out := make([]psModel, 0, len(ids))
	for _, id := range ids {
		m := best[id]
		size := m.GetLoadedSizeBytes()
		if size == 0 {
			size = m.GetSizeBytes() // the node reports no loaded size (kinds other than ollama)
		}
		out = append(out, psModel{Name: id, Model: id, Size: size, Digest: digestOf(m),
			Details: detailsOf(m), ExpiresAt: expiry(m), SizeVRAM: m.GetSizeVram(),
			ContextLength: m.GetContextLength()})
	}
	return map[string]any{"models": out}
}

// expiry is when a loaded model will be unloaded: as the node says, or
// never (vLLM, llama.cpp and cloud nodes keep their models loaded).
func expiry(m *nodev1.ModelInfo) time.Time {
	if t := m.GetExpiresAt(); t != nil {
		return t.AsTime()
	}
	return forever
}

func detailsOf(m *nodev1.ModelInfo) details {
	d := details{Format: m.GetFormat(), Family: m.GetFamily(), Families: m.GetFamilies(),
		ParameterSize: m.GetParameterSize(), QuantizationLevel: m.GetQuantizationLevel()}
	if len(d.Families) == 0 && d.Family != "" {
		d.Families = []string{d.Family}
	}
	return d
}
