package simnode

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"net/http"
	"time"
)

// Version is the Ollama version the node claims to be.
const Version = "0.17.4"

// modifiedAt is the fixed modification time of every model, so /api/tags
// and /v1/models are byte-for-byte reproducible. A function rather than a
// variable so nothing can change it.
func modifiedAt() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

const (
	keepAlive     = 5 * time.Minute // Ollama's default OLLAMA_KEEP_ALIVE
	contextLength = 4096
	// kvCacheBytes is what a loaded model takes beyond its size on disk,
	// so that /api/ps's size differs from /api/tags' as on a real Ollama.
	kvCacheBytes = contextLength * 8 << 10
)

// modelDetails mirrors Ollama's api.ModelDetails.
type modelDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

// Every simulated model has the same details; only name-derived fields vary.
func details() modelDetails {
	return modelDetails{
		Format:            "gguf",
		Family:            "llama",
		Families:          []string{"llama"},
		ParameterSize:     "1B",
		QuantizationLevel: "Q4_0",
	}
}

// modelSize is a plausible, deterministic size between 1 and 2 GiB.
func modelSize(name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return 1<<30 + int64(h.Sum32()%(1<<30))
}

func modelDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// probeFault answers a health probe with the injected ProbeStatus, if any,
// and reports whether it did.
func (s *Server) probeFault(w http.ResponseWriter, openAI bool) bool {
	code := s.currentFaults().ProbeStatus
	if code == 0 {
		return false
	}
	if openAI {
		writeOpenAIError(w, code, apiError{Message: http.StatusText(code), Type: errorType(code)})
	} else {
		writeJSON(w, code, ollamaError{Error: http.StatusText(code)})
	}
	return true
}

func (s *Server) handleRoot(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Ollama is running"))
}

func (s *Server) handleVersion(w http.ResponseWriter, _ *http.Request) {
	if s.probeFault(w, false) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Version string `json:"version"`
	}{Version})
}

type tagModel struct {
	Name       string       `json:"name"`
	Model      string       `json:"model"`
	ModifiedAt time.Time    `json:"modified_at"`
	Size       int64        `json:"size"`
	Digest     string       `json:"digest"`
	Details    modelDetails `json:"details"`
}

func (s *Server) handleTags(w http.ResponseWriter, _ *http.Request) {
	if s.probeFault(w, false) {
		return
	}
	models := make([]tagModel, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		models = append(models, tagModel{
			Name:       m,
			Model:      m,
			ModifiedAt: modifiedAt(),
			Size:       modelSize(m),
			Digest:     modelDigest(m),
			Details:    details(),
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Models []tagModel `json:"models"`
	}{models})
}

type psModel struct {
	Name          string       `json:"name"`
	Model         string       `json:"model"`
	Size          int64        `json:"size"`
	Digest        string       `json:"digest"`
	Details       modelDetails `json:"details"`
	ExpiresAt     time.Time    `json:"expires_at"`
	SizeVRAM      int64        `json:"size_vram"`
	ContextLength int          `json:"context_length"`
}

func (s *Server) handlePS(w http.ResponseWriter, _ *http.Request) {
	if s.probeFault(w, false) {
		return
	}
	// As in Ollama, expires_at is keep-alive after the last use (here: of
	// any model), so it changes only when the node is used.
	expires := time.Unix(0, s.lastUse.Load()).Add(keepAlive).UTC()
	models := make([]psModel, 0, len(s.cfg.Loaded))
	for _, m := range s.cfg.Loaded {
		size := modelSize(m) + kvCacheBytes // in memory: the weights and the KV cache
		models = append(models, psModel{
			Name:          m,
			Model:         m,
			Size:          size,
			Digest:        modelDigest(m),
			Details:       details(),
			ExpiresAt:     expires,
			SizeVRAM:      size, // fully offloaded to the (imaginary) GPU
			ContextLength: contextLength,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Models []psModel `json:"models"`
	}{models})
}

type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// owner is the owned_by the flavour's server gives its models.
func (s *Server) owner() string {
	switch s.cfg.Flavor {
	case "vllm":
		return "vllm"
	case "llamacpp":
		return "llamacpp"
	case "lmstudio":
		return "organization_owner"
	}
	return "library"
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	if s.probeFault(w, true) {
		return
	}
	data := make([]openAIModel, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		data = append(data, openAIModel{ID: m, Object: "model", Created: modifiedAt().Unix(), OwnedBy: s.owner()})
	}
	writeJSON(w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []openAIModel `json:"data"`
	}{"list", data})
}
