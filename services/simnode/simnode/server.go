package simnode

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a simulated Ollama node (or, by Config.Flavor, a vLLM,
// llama-server or LM Studio one). It is an http.Handler; create it with
// New. All methods are safe for concurrent use.
type Server struct {
	cfg    Config          // defaulted, validated, never mutated after New
	models map[string]bool // set of cfg.Models for request validation

	faults atomic.Pointer[Faults] // read once per request

	nextID   atomic.Int64 // source of chatcmpl-<n> ids
	inFlight atomic.Int64
	peak     atomic.Int64 // most inFlight ever seen at once
	canceled atomic.Int64
	lastUse  atomic.Int64 // unix nanoseconds of the last inference request (or start)

	routes map[string]*route // keyed by "METHOD /path"

	bodies lastBodies // last body per Ollama native endpoint and chat completions

	headers sync.Map // "METHOD PATH" → http.Header of the last such request

	// Requests that match no route are rare (typos, scanners), so a
	// mutex-guarded map is simpler than pre-allocated counters.
	unroutedMu sync.Mutex
	unrouted   map[string]int64
}

// route is one endpoint with its own request counter.
type route struct {
	handle http.HandlerFunc
	hits   atomic.Int64
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Requests counts every request received, by "METHOD PATH"
	// (e.g. "POST /v1/chat/completions"). Only non-zero entries appear.
	Requests map[string]int64 `json:"requests"`
	// InFlight is the number of chat and embeddings requests being handled
	// (until each starts writing the last bytes of its answer).
	InFlight int64 `json:"in_flight"`
	// PeakInFlight is the most chat and embeddings requests ever handled
	// at once: the node's own proof of how many it was sent together.
	PeakInFlight int64 `json:"peak_in_flight"`
	// Canceled counts chat and embeddings requests whose client went away
	// before the answer was complete. Each such request counts once, as
	// soon as the handler notices.
	Canceled int64 `json:"canceled"`
}

// New validates cfg, applies defaults and returns a ready Server.
// The returned error joins every problem found.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("simnode: invalid config: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		models:   make(map[string]bool, len(cfg.Models)),
		unrouted: make(map[string]int64),
	}
	for _, m := range cfg.Models {
		s.models[m] = true
	}
	s.lastUse.Store(time.Now().UnixNano())
	faults := cfg.Faults
	s.faults.Store(&faults)
	s.routes = map[string]*route{
		"GET /v1/models":            {handle: s.handleModels},
		"POST /v1/chat/completions": {handle: s.handleChat},
		"POST /v1/embeddings":       {handle: s.handleEmbeddings},
		"POST /v1/completions":      {handle: s.handleCompletions},
		"POST /simnode/faults":      {handle: s.handleSetFaults},
		"GET /simnode/faults":       {handle: s.handleGetFaults},
		"GET /simnode/stats":        {handle: s.handleStats},
	}
	for k, r := range s.flavorRoutes() {
		s.routes[k] = r
	}
	return s, nil
}

// SetFaults replaces all active faults; requests that start afterwards see
// the new faults, requests already running keep the ones they started with.
// Invalid faults (see Faults.Validate) are a programming error and panic,
// because injecting them would otherwise make net/http panic later.
func (s *Server) SetFaults(f Faults) {
	if err := f.Validate(); err != nil {
		panic(fmt.Sprintf("simnode: SetFaults: %v", err))
	}
	s.faults.Store(&f)
}

// LastHeader returns the headers of the last request received for
// method and path (e.g. "POST", "/v1/chat/completions"), nil when none
// came: a test sees what the mesh sent the node (a W3C traceparent, …).
func (s *Server) LastHeader(method, path string) http.Header {
	h, _ := s.headers.Load(method + " " + path)
	hh, _ := h.(http.Header)
	return hh
}

// currentFaults returns the faults a request starting now must obey.
func (s *Server) currentFaults() Faults { return *s.faults.Load() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:     make(map[string]int64),
		InFlight:     s.inFlight.Load(),
		PeakInFlight: s.peak.Load(),
		Canceled:     s.canceled.Load(),
	}
	for key, rt := range s.routes {
		if n := rt.hits.Load(); n > 0 {
			st.Requests[key] = n
		}
	}
	s.unroutedMu.Lock()
	for key, n := range s.unrouted {
		st.Requests[key] = n
	}
	s.unroutedMu.Unlock()
	return st
}

// ServeHTTP dispatches on exact method and path, like Ollama's router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Simnode-Name", s.cfg.Name)
	key := r.Method + " " + r.URL.Path
	s.headers.Store(key, r.Header.Clone())
	rt := s.routes[key]
	if rt != nil {
		rt.hits.Add(1)
	} else {
		s.unroutedMu.Lock()
		s.unrouted[key]++
		s.unroutedMu.Unlock()
	}

	if s.loadingAnswer(w, r) {
		return
	}
	openAI := r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")
	if openAI && !s.authorized(r) {
		writeOpenAIError(w, http.StatusUnauthorized, apiError{
			Message: "Incorrect API key provided",
			Type:    "invalid_request_error",
			Code:    "invalid_api_key",
		})
		return
	}
	switch {
	case rt != nil:
		rt.handle(w, r)
	case openAI:
		writeOpenAIError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    "invalid_request_error",
		})
	default:
		writeJSON(w, http.StatusNotFound, ollamaError{Error: "not found"})
	}
}

// authorized reports whether r carries the configured bearer key.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.APIKey)) == 1
}

// serves reports whether model names one of the node's models. The
// Ollama flavour has Ollama's rule: a name without a tag is the model's
// ":latest" ("tiny" is "tiny:latest").
func (s *Server) serves(model string) bool {
	if s.models[model] {
		return true
	}
	if s.cfg.Flavor != "ollama" || model == "" {
		return false
	}
	name := model[strings.LastIndex(model, "/")+1:]
	return !strings.Contains(name, ":") && s.models[model+":latest"]
}
