// Package anthropicsim is a simulated Anthropic API on a real HTTP server:
// POST /v1/messages (plain and streamed) and GET /v1/models, with the
// documented request checks, answer shapes, event stream and error
// bodies, deterministic answers (token i is "t<i> ") and injected faults.
// It stands in for api.anthropic.com, which tests cannot reach.
package anthropicsim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the simulated API.
type Config struct {
	// Models are the model ids served, e.g. "claude-sonnet-4-5". Required.
	Models []string
	// APIKey, when set, is required as x-api-key on every request.
	APIKey string
	// Tokens is the number of output tokens per answer unless max_tokens
	// is lower (default 4).
	Tokens int
	// PageSize bounds a /v1/models page below the request's limit
	// (default 1000), to exercise paging.
	PageSize int
	// Faults are the faults active from the start; see Server.SetFaults.
	Faults Faults
}

// Faults are injected failures; the zero value is a healthy API.
type Faults struct {
	// Status, when set, answers every /v1/messages request with this
	// status and the matching error type (529: overloaded_error, 429:
	// rate_limit_error with retry-after, …).
	Status int
	// ErrorAfterTokens, when > 0, ends a stream with an overloaded_error
	// event after that many text deltas.
	ErrorAfterTokens int
}

// Request is a /v1/messages request as received.
type Request struct {
	Header http.Header
	Body   map[string]any
	// Raw is the body as sent, for checks that the map loses (key order).
	Raw []byte
}

// Server is the simulated API; it is an http.Handler.
type Server struct {
	cfg    Config
	faults atomic.Pointer[Faults]
	nextID atomic.Int64

	mu   sync.Mutex
	last *Request
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if len(cfg.Models) == 0 {
		return nil, fmt.Errorf("anthropicsim: at least one model is required")
	}
	if cfg.Tokens <= 0 {
		cfg.Tokens = 4
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 1000
	}
	s := &Server{cfg: cfg}
	f := cfg.Faults
	s.faults.Store(&f)
	return s, nil
}

// SetFaults replaces the active faults.
func (s *Server) SetFaults(f Faults) { s.faults.Store(&f) }

// LastRequest is the last /v1/messages request received, nil before one.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", fmt.Sprintf("req_sim%d", s.nextID.Add(1)))
	if s.cfg.APIKey != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("x-api-key")), []byte(s.cfg.APIKey)) != 1 {
		writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/models":
		s.handleModels(w, r)
	case "POST /v1/messages":
		s.handleMessages(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found_error", "Not found")
	}
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// handleModels pages through the models newest first, as the API does.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be less than or equal to 1000")
			return
		}
		limit = n
	}
	limit = min(limit, s.cfg.PageSize)
	start := 0
	if after := r.URL.Query().Get("after_id"); after != "" {
		start = slices.Index(s.cfg.Models, after) + 1
	}
	end := min(start+limit, len(s.cfg.Models))
	data := []map[string]any{}
	for i, id := range s.cfg.Models[start:end] {
		data = append(data, map[string]any{"type": "model", "id": id, "display_name": id,
			"created_at": time.Date(2025, 1, 1+start+i, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)})
	}
	page := map[string]any{"data": data, "has_more": end < len(s.cfg.Models), "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		page["first_id"], page["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	writeJSON(w, page)
}

// messagesRequest is the part of a request the simulation reads.
type messagesRequest struct {
	Model         string    `json:"model"`
	MaxTokens     *int      `json:"max_tokens"`
	System        any       `json:"system"`
	Messages      []message `json:"messages"`
	StopSequences []string  `json:"stop_sequences"`
	Temperature   *float64  `json:"temperature"`
	TopP          *float64  `json:"top_p"`
	Stream        bool      `json:"stream"`
	Tools         []struct {
		Name        string         `json:"name"`
		InputSchema map[string]any `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
}

// blocks is a message's content: a string or a list of blocks.
func (m message) blocks() ([]block, error) {
	var text string
	if err := json.Unmarshal(m.Content, &text); err == nil {
		return []block{{Type: "text", Text: text}}, nil
	}
	var bs []block
	if err := json.Unmarshal(m.Content, &bs); err != nil {
		return nil, fmt.Errorf("content: Input should be a valid list")
	}
	return bs, nil
}

// answer is what the simulated model says.
type answer struct {
	id, model    string
	text         []string // one entry per token
	tool         *block
	stopReason   string
	stopSequence string
	inputTokens  int
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "could not read the body")
		return
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	s.mu.Lock()
	s.last = &Request{Header: r.Header.Clone(), Body: raw, Raw: body}
	s.mu.Unlock()

	if f := *s.faults.Load(); f.Status != 0 {
		typ := map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
			413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}[f.Status]
		if typ == "" {
			typ = "api_error"
		}
		if f.Status == http.StatusTooManyRequests {
			w.Header().Set("retry-after", "1")
		}
		msg := map[string]string{"overloaded_error": "Overloaded",
			"rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit"}[typ]
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		writeError(w, f.Status, typ, msg)
		return
	}
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON: "+err.Error())
		return
	}
	a, status, msg := s.plan(&req)
	if status != 0 {
		typ := "invalid_request_error"
		if status == http.StatusNotFound {
			typ = "not_found_error"
		}
		writeError(w, status, typ, msg)
		return
	}
	if req.Stream {
		s.stream(w, r, a)
		return
	}
	content := []map[string]any{}
	if len(a.text) > 0 {
		content = append(content, map[string]any{"type": "text", "text": strings.Join(a.text, "")})
	}
	if a.tool != nil {
		content = append(content, map[string]any{"type": "tool_use", "id": a.tool.ID, "name": a.tool.Name, "input": a.tool.Input})
	}
	writeJSON(w, map[string]any{
		"id": a.id, "type": "message", "role": "assistant", "model": a.model, "content": content,
		"stop_reason": a.stopReason, "stop_sequence": nullable(a.stopSequence),
		"usage": map[string]any{"input_tokens": a.inputTokens, "output_tokens": a.outputTokens(),
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (a *answer) outputTokens() int {
	n := len(a.text)
	if a.tool != nil {
		n += 3
	}
	return n
}

// plan checks the request as the API does and decides the answer; a
// non-zero status is the error to answer with.
func (s *Server) plan(req *messagesRequest) (*answer, int, string) {
	switch {
	case req.Model == "":
		return nil, 400, "model: Field required"
	case !slices.Contains(s.cfg.Models, req.Model):
		return nil, 404, "model: " + req.Model
	case req.MaxTokens == nil:
		return nil, 400, "max_tokens: Field required"
	case *req.MaxTokens < 1:
		return nil, 400, "max_tokens: Input should be greater than or equal to 1"
	case len(req.Messages) == 0:
		return nil, 400, "messages: at least one message is required"
	case req.Temperature != nil && (*req.Temperature < 0 || *req.Temperature > 1):
		return nil, 400, "temperature: Input should be less than or equal to 1"
	}
	if _, ok := req.System.(string); req.System != nil && !ok {
		if _, isList := req.System.([]any); !isList {
			return nil, 400, "system: Input should be a valid string or list"
		}
	}
	a := &answer{id: fmt.Sprintf("msg_sim%04d", s.nextID.Add(1)), model: req.Model}
	if sys, ok := req.System.(string); ok {
		a.inputTokens += len(strings.Fields(sys))
	}
	lastToolResult := false
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, 400, fmt.Sprintf("messages.%d.role: Unexpected role %q. The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.", i, m.Role)
		}
		bs, err := m.blocks()
		if err != nil {
			return nil, 400, fmt.Sprintf("messages.%d.%v", i, err)
		}
		lastToolResult = false
		for _, b := range bs {
			switch b.Type {
			case "text":
				a.inputTokens += len(strings.Fields(b.Text))
			case "tool_result":
				if b.ToolUseID == "" {
					return nil, 400, fmt.Sprintf("messages.%d.content: tool_use_id: Field required", i)
				}
				lastToolResult = true
			case "tool_use":
				var obj map[string]any
				if err := json.Unmarshal(b.Input, &obj); err != nil {
					return nil, 400, fmt.Sprintf("messages.%d.content: tool_use.input: Input should be a valid dictionary", i)
				}
			case "image":
			default:
				return nil, 400, fmt.Sprintf("messages.%d.content: unknown block type %q", i, b.Type)
			}
		}
	}
	a.inputTokens = max(a.inputTokens, 1)
	// With tools, the model calls one unless the last turn brought a
	// tool's result (then it answers) or tool_choice is none.
	if len(req.Tools) > 0 && !lastToolResult && (req.ToolChoice == nil || req.ToolChoice.Type != "none") {
		name := req.Tools[0].Name
		if req.ToolChoice != nil && req.ToolChoice.Type == "tool" {
			name = req.ToolChoice.Name
		}
		a.tool = &block{Type: "tool_use", ID: "toolu_sim" + a.id[7:], Name: name, Input: json.RawMessage(`{"query":"t0"}`)}
		a.stopReason = "tool_use"
		return a, 0, ""
	}
	n := min(s.cfg.Tokens, *req.MaxTokens)
	a.stopReason = "end_turn"
	if *req.MaxTokens < s.cfg.Tokens {
		a.stopReason = "max_tokens"
	}
	for i := range n {
		tok := fmt.Sprintf("t%d", i)
		if slices.Contains(req.StopSequences, tok) {
			a.stopReason, a.stopSequence = "stop_sequence", tok
			break
		}
		a.text = append(a.text, tok+" ")
	}
	return a, 0, ""
}

// stream sends the answer as the documented event sequence.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, a *answer) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(typ string, v map[string]any) bool {
		v["type"] = typ
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return r.Context().Err() == nil
	}
	errAfter := s.faults.Load().ErrorAfterTokens
	if !send("message_start", map[string]any{"message": map[string]any{
		"id": a.id, "type": "message", "role": "assistant", "model": a.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": a.inputTokens, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	}}) {
		return
	}
	if !send("ping", map[string]any{}) {
		return
	}
	idx := 0
	if len(a.text) > 0 {
		if !send("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "text", "text": ""}}) {
			return
		}
		for i, tok := range a.text {
			if errAfter > 0 && i == errAfter {
				send("error", map[string]any{"error": map[string]string{"type": "overloaded_error", "message": "Overloaded"}})
				return
			}
			if !send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "text_delta", "text": tok}}) {
				return
			}
		}
		if !send("content_block_stop", map[string]any{"index": idx}) {
			return
		}
		idx++
	}
	if a.tool != nil {
		input := string(a.tool.Input)
		half := len(input) / 2
		if !send("content_block_start", map[string]any{"index": idx, "content_block": map[string]any{"type": "tool_use", "id": a.tool.ID, "name": a.tool.Name, "input": map[string]any{}}}) ||
			!send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "input_json_delta", "partial_json": input[:half]}}) ||
			!send("content_block_delta", map[string]any{"index": idx, "delta": map[string]any{"type": "input_json_delta", "partial_json": input[half:]}}) ||
			!send("content_block_stop", map[string]any{"index": idx}) {
			return
		}
	}
	if !send("message_delta", map[string]any{"delta": map[string]any{"stop_reason": a.stopReason, "stop_sequence": nullable(a.stopSequence)},
		"usage": map[string]any{"output_tokens": a.outputTokens()}}) {
		return
	}
	send("message_stop", map[string]any{})
}
