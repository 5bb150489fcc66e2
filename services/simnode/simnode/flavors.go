package simnode

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// flavorRoutes are the endpoints a flavour adds to the OpenAI API.
func (s *Server) flavorRoutes() map[string]*route {
	switch s.cfg.Flavor {
	case "vllm":
		return map[string]*route{
			"GET /health": {handle: s.handleHealth},
			"GET /version": {handle: func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, 200, map[string]string{"version": "0.11.0"})
			}},
			"GET /metrics": {handle: s.handleVLLMMetrics},
		}
	case "llamacpp":
		return map[string]*route{
			"GET /health": {handle: s.handleHealth},
			"GET /slots":  {handle: s.handleSlots},
			"GET /props":  {handle: s.handleProps},
		}
	case "lmstudio":
		return map[string]*route{"GET /api/v0/models": {handle: s.handleLMStudioModels}}
	default:
		return map[string]*route{
			"GET /":                {handle: s.handleRoot},
			"HEAD /":               {handle: s.handleRoot},
			"GET /api/version":     {handle: s.handleVersion},
			"HEAD /api/version":    {handle: s.handleVersion},
			"GET /api/tags":        {handle: s.handleTags},
			"HEAD /api/tags":       {handle: s.handleTags},
			"GET /api/ps":          {handle: s.handlePS},
			"POST /api/chat":       {handle: s.handleNativeChat},
			"POST /api/generate":   {handle: s.handleNativeGenerate},
			"POST /api/embed":      {handle: s.handleNativeEmbed},
			"POST /api/embeddings": {handle: s.handleNativeEmbed},
			"POST /api/show":       {handle: s.handleNativeShow},
		}
	}
}

// loadingAnswer answers r with llama-server's 503 "Loading model" when a
// llamacpp flavour has the Loading fault and r is one llama-server
// refuses while loading; it reports whether it did.
func (s *Server) loadingAnswer(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Flavor != "llamacpp" || !s.currentFaults().Loading {
		return false
	}
	if r.URL.Path != "/health" && !strings.HasPrefix(r.URL.Path, "/v1/") {
		return false
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{
		"error": map[string]any{"code": 503, "message": "Loading model", "type": "unavailable_error"},
	})
	return true
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.probeFault(w, true) {
		return
	}
	if s.cfg.Flavor == "vllm" {
		w.WriteHeader(http.StatusOK) // vLLM answers an empty 200
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleVLLMMetrics serves vLLM's gauges: requests in flight as running,
// none waiting, and the KV cache a tenth full per running request.
func (s *Server) handleVLLMMetrics(w http.ResponseWriter, _ *http.Request) {
	running := s.inFlight.Load()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range s.cfg.Models {
		fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"0\",model_name=%q} %d.0\n", m, running)
		fmt.Fprintf(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{engine=\"0\",model_name=%q} 0.0\n", m)
		fmt.Fprintf(w, "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{engine=\"0\",model_name=%q} %g\n", m, min(1, float64(running)/10))
		running = 0 // counted once
	}
}

// handleSlots serves llama-server's /slots: requests in flight fill the
// first slots.
func (s *Server) handleSlots(w http.ResponseWriter, _ *http.Request) {
	busy := int(s.inFlight.Load())
	slots := make([]map[string]any, s.cfg.Slots)
	for i := range slots {
		slots[i] = map[string]any{"id": i, "n_ctx": contextLength, "is_processing": i < busy}
	}
	writeJSON(w, http.StatusOK, slots)
}

// handleProps serves llama-server's /props: its settings, the model it
// serves and its slots.
func (s *Server) handleProps(w http.ResponseWriter, _ *http.Request) {
	model := ""
	if len(s.cfg.Models) > 0 {
		model = s.cfg.Models[0]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"default_generation_settings": map[string]any{"n_ctx": contextLength, "params": map[string]any{"temperature": 0.8}},
		"total_slots":                 s.cfg.Slots,
		"model_path":                  "/models/" + model,
		"build_info":                  "simnode",
	})
}

// handleLMStudioModels serves LM Studio's /api/v0/models.
func (s *Server) handleLMStudioModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID                string `json:"id"`
		Object            string `json:"object"`
		Type              string `json:"type"`
		Publisher         string `json:"publisher"`
		State             string `json:"state"`
		MaxContextLength  int    `json:"max_context_length"`
		CompatibilityType string `json:"compatibility_type"`
	}
	data := make([]model, 0, len(s.cfg.Models))
	for _, m := range s.cfg.Models {
		md := model{ID: m, Object: "model", Type: "llm", Publisher: "simnode", State: "not-loaded", MaxContextLength: contextLength, CompatibilityType: "gguf"}
		if slices.Contains(s.cfg.EmbeddingModels, m) {
			md.Type = "embeddings"
		}
		if slices.Contains(s.cfg.Loaded, m) {
			md.State = "loaded"
		}
		data = append(data, md)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// refuseChat answers a chat for an embedding-only model as Ollama does
// and reports whether it did.
func (s *Server) refuseChat(w http.ResponseWriter, model string) bool {
	if !slices.Contains(s.cfg.EmbeddingModels, model) {
		return false
	}
	writeOpenAIError(w, http.StatusBadRequest, apiError{Message: fmt.Sprintf("%q does not support chat", model), Type: "invalid_request_error"})
	return true
}
