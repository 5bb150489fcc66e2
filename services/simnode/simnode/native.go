package simnode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Ollama's native inference API: /api/chat and /api/generate (NDJSON
// streams, "stream" true by default), /api/embed, /api/embeddings and
// /api/show. Answers use the same deterministic tokens and embeddings as
// the OpenAI-compatible API; errors are Ollama's {"error": "..."}.

// nativeRequest is the part of an /api/chat or /api/generate body simnode
// reads.
type nativeRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Prompt  string     `json:"prompt"`
	Tools   []toolSpec `json:"tools"`
	Stream  *bool      `json:"stream"`
	Options struct {
		NumPredict *int `json:"num_predict"`
	} `json:"options"`
}

type nativeMessage struct {
	Role      string           `json:"role"`
	Content   string           `json:"content"`
	ToolCalls []nativeToolCall `json:"tool_calls,omitempty"`
}

type nativeToolCall struct {
	Function struct {
		Index     int             `json:"index"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type nativeObject struct {
	Model              string         `json:"model"`
	CreatedAt          time.Time      `json:"created_at"`
	Message            *nativeMessage `json:"message,omitempty"`
	Response           *string        `json:"response,omitempty"`
	Done               bool           `json:"done"`
	DoneReason         string         `json:"done_reason,omitempty"`
	TotalDuration      int64          `json:"total_duration,omitempty"`
	LoadDuration       int64          `json:"load_duration,omitempty"`
	PromptEvalCount    int            `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64          `json:"prompt_eval_duration,omitempty"`
	EvalCount          int            `json:"eval_count,omitempty"`
	EvalDuration       int64          `json:"eval_duration,omitempty"`
}

// lastBodies keeps the last body of each Ollama native endpoint and of
// /v1/chat/completions, so tests can check what reached the node.
type lastBodies struct {
	mu   sync.Mutex
	last map[string][]byte
}

func (n *lastBodies) keep(path string, body []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last == nil {
		n.last = map[string][]byte{}
	}
	n.last[path] = body
}

// LastRequest is the body of the last request to an Ollama native
// endpoint such as "/api/chat", or to "/v1/chat/completions", as received
// (nil if there was none).
func (s *Server) LastRequest(path string) []byte {
	s.bodies.mu.Lock()
	defer s.bodies.mu.Unlock()
	return s.bodies.last[path]
}

func writeOllamaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ollamaError{Error: msg})
}

// checkNativeModel answers Ollama's 400 or 404 for a missing or unknown
// model.
func (s *Server) checkNativeModel(w http.ResponseWriter, model string) bool {
	switch {
	case model == "":
		writeOllamaError(w, http.StatusBadRequest, "model is required")
		return false
	case !s.serves(model):
		writeOllamaError(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found", model))
		return false
	}
	return true
}

func (s *Server) handleNativeChat(w http.ResponseWriter, r *http.Request) {
	s.serveNative(w, r, false)
}

func (s *Server) handleNativeGenerate(w http.ResponseWriter, r *http.Request) {
	s.serveNative(w, r, true)
}

func (s *Server) serveNative(w http.ResponseWriter, r *http.Request, generate bool) {
	s.serveInference(w, r, func(c *call, body []byte) {
		s.bodies.keep(r.URL.Path, body)
		var req nativeRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeOllamaError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !s.checkNativeModel(w, req.Model) {
			return
		}
		start := time.Now()
		a := answer{tokens: s.cfg.Tokens, finishReason: "stop"}
		if n := req.Options.NumPredict; n != nil && *n >= 0 && *n < a.tokens {
			a.tokens, a.finishReason = *n, "length"
		}
		words := len(strings.Fields(req.Prompt))
		lastRole := ""
		for _, m := range req.Messages {
			words += len(strings.Fields(m.Content))
			lastRole = m.Role
		}
		a.promptTokens = max(words, 1)
		stream := req.Stream == nil || *req.Stream
		obj := func(text string) nativeObject {
			o := nativeObject{Model: req.Model, CreatedAt: time.Now().UTC()}
			if generate {
				o.Response = &text
			} else {
				o.Message = &nativeMessage{Role: "assistant", Content: text}
			}
			return o
		}
		if (generate && req.Prompt == "") || (!generate && len(req.Messages) == 0) {
			// As Ollama: nothing to answer only loads the model.
			o := obj("")
			o.Done, o.DoneReason = true, "load"
			writeJSON(w, http.StatusOK, o)
			return
		}
		var calls []nativeToolCall
		if !generate {
			if tool := pickTool(req.Tools, nil, lastRole); tool != "" {
				var tc nativeToolCall
				tc.Function.Name = tool
				tc.Function.Arguments = json.RawMessage(ToolArguments)
				calls = []nativeToolCall{tc}
				a.tokens = 2
			}
		}
		final := func(text string, firstToken time.Time) nativeObject {
			o := obj(text)
			if o.Message != nil && !stream {
				o.Message.ToolCalls = calls
			}
			end := time.Now()
			o.Done, o.DoneReason = true, a.finishReason
			o.TotalDuration = int64(end.Sub(start))
			o.LoadDuration = 1
			o.PromptEvalCount, o.PromptEvalDuration = a.promptTokens, int64(firstToken.Sub(start))
			o.EvalCount, o.EvalDuration = a.tokens, int64(end.Sub(firstToken))
			return o
		}
		if !stream {
			if c.sleep(s.generationTime(a.tokens)) != nil {
				return
			}
			if c.faults.FailAfterTokens > 0 {
				abortConn(w)
				return
			}
			text := Content(a.tokens)
			if calls != nil {
				text = ""
			}
			writeJSON(w, http.StatusOK, final(text, start))
			return
		}
		rc := http.NewResponseController(w)
		line := func(o nativeObject) error {
			b, _ := json.Marshal(o)
			if _, err := w.Write(append(b, '\n')); err != nil {
				return c.gone()
			}
			if err := rc.Flush(); err != nil {
				return c.gone()
			}
			return nil
		}
		var first time.Time
		if calls != nil {
			if c.sleep(s.cfg.FirstTokenDelay) != nil {
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			first = time.Now()
			o := obj("")
			o.Message.ToolCalls = calls
			if line(o) != nil {
				return
			}
			_ = line(final("", first))
			return
		}
		for i := range a.tokens {
			if f := c.faults.FailAfterTokens; f > 0 && i == f {
				abortConn(w)
				return
			}
			delay := s.cfg.TokenDelay
			if i == 0 {
				delay = s.cfg.FirstTokenDelay
			}
			if c.sleep(delay) != nil {
				return
			}
			if i == 0 {
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
				first = time.Now()
			}
			if line(obj(token(i))) != nil {
				return
			}
		}
		if c.faults.FailAfterTokens > 0 {
			abortConn(w)
			return
		}
		if first.IsZero() {
			w.Header().Set("Content-Type", "application/x-ndjson")
			first = time.Now()
		}
		_ = line(final("", first))
	})
}

func (s *Server) handleNativeEmbed(w http.ResponseWriter, r *http.Request) {
	legacy := r.URL.Path == "/api/embeddings"
	s.serveInference(w, r, func(c *call, body []byte) {
		s.bodies.keep(r.URL.Path, body)
		var req struct {
			Model  string          `json:"model"`
			Input  json.RawMessage `json:"input"`
			Prompt string          `json:"prompt"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeOllamaError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !s.checkNativeModel(w, req.Model) {
			return
		}
		start := time.Now()
		if c.sleep(s.cfg.FirstTokenDelay) != nil {
			return
		}
		if legacy {
			writeJSON(w, http.StatusOK, map[string]any{"embedding": Embedding(req.Model, req.Prompt, s.cfg.EmbeddingDims)})
			return
		}
		inputs, err := parseInput(req.Input)
		if err != nil {
			writeOllamaError(w, http.StatusBadRequest, err.Error())
			return
		}
		vecs := make([][]float32, len(inputs))
		tokens := 0
		for i, in := range inputs {
			vecs[i] = Embedding(req.Model, in.text, s.cfg.EmbeddingDims)
			tokens += in.tokens
		}
		writeJSON(w, http.StatusOK, map[string]any{"model": req.Model, "embeddings": vecs,
			"total_duration": int64(time.Since(start)), "load_duration": 1, "prompt_eval_count": tokens})
	})
}

func (s *Server) handleNativeShow(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		writeOllamaError(w, http.StatusBadRequest, err.Error())
		return
	}
	model := req.Model
	if model == "" {
		model = req.Name
	}
	if !s.checkNativeModel(w, model) {
		return
	}
	caps := []string{"completion", "tools"}
	if slices.Contains(s.cfg.EmbeddingModels, model) {
		caps = []string{"embedding"}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"modelfile":    "# simnode " + model,
		"parameters":   "",
		"template":     "{{ .Prompt }}",
		"details":      details(),
		"model_info":   map[string]any{"general.architecture": "llama", "simnode.node": s.cfg.Name},
		"capabilities": caps,
		"modified_at":  modifiedAt(),
	})
}
