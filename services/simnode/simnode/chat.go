package simnode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// chatRequest holds the fields of an OpenAI chat request that simnode
// looks at; unknown fields are ignored, as Ollama does.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"` // string, array of parts, or null
	} `json:"messages"`
	Tools         []toolSpec      `json:"tools"`
	ToolChoice    json.RawMessage `json:"tool_choice"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"` // validated, not applied
}

// answer is what the simulated model will say to one chat request.
type answer struct {
	reasoning    int    // reasoning tokens to produce before the content
	tokens       int    // completion tokens to produce
	finishReason string // "length" if cut short by the request, else "stop"
	promptTokens int
}

// token returns the text of completion token i; see the package doc.
func token(i int) string { return "t" + strconv.Itoa(i) + " " }

// Reasoning returns the reasoning of an n-token thinking answer,
// "r0 r1 ... r<n-1> " (see Config.ReasoningTokens).
func Reasoning(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(reasoningToken(i))
	}
	return b.String()
}

func reasoningToken(i int) string { return "r" + strconv.Itoa(i) + " " }

// Content returns the assistant content of an n-token answer,
// "t0 t1 ... t<n-1> ", so tests elsewhere can state what they expect.
func Content(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(token(i))
	}
	return b.String()
}

// plan validates req and decides the answer. The error text is sent to the
// client as a 400 message.
func (s *Server) plan(req *chatRequest) (answer, error) {
	a := answer{tokens: s.cfg.Tokens, finishReason: "stop"}
	for _, lim := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if lim.v == nil {
			continue
		}
		if *lim.v < 1 {
			return a, fmt.Errorf("invalid '%s': must be at least 1, got %d", lim.name, *lim.v)
		}
		if *lim.v < a.tokens {
			a.tokens, a.finishReason = *lim.v, "length"
		}
	}
	if err := checkStop(req.Stop); err != nil {
		return a, err
	}
	words := 0
	for i, m := range req.Messages {
		text, err := messageText(m.Content)
		if err != nil {
			return a, fmt.Errorf("messages[%d]: %w", i, err)
		}
		words += len(strings.Fields(text))
	}
	a.promptTokens = max(words, 1)
	return a, nil
}

// messageText extracts the text of a message's content: a string, or the
// "text" of every part in an array (images and other parts carry no words).
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil // e.g. an assistant message carrying only tool_calls
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("invalid message content: must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
			b.WriteByte(' ')
		}
	}
	return b.String(), nil
}

// checkStop accepts what OpenAI accepts for "stop": null, a string, or an
// array of strings.
func checkStop(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return nil
	}
	return fmt.Errorf("invalid type for 'stop' field: must be a string or an array of strings")
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	s.serveInference(w, r, func(c *call, body []byte) {
		s.bodies.keep(r.URL.Path, body)
		var req chatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			badRequest(w, err.Error())
			return
		}
		if !s.checkModel(w, req.Model) || s.refuseChat(w, req.Model) {
			return
		}
		a, err := s.plan(&req)
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		meta := completionMeta{
			ID:                "chatcmpl-" + strconv.FormatInt(s.nextID.Add(1), 10),
			Created:           time.Now().Unix(),
			Model:             req.Model,
			SystemFingerprint: "simnode-" + s.cfg.Name,
		}
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		lastRole := ""
		if n := len(req.Messages); n > 0 {
			lastRole = req.Messages[n-1].Role
		}
		if tool := pickTool(req.Tools, req.ToolChoice, lastRole); tool != "" {
			s.answerToolCall(c, w, meta, a, tool, req.Stream, includeUsage)
			return
		}
		a.reasoning = s.cfg.ReasoningTokens
		if req.Stream {
			s.streamChat(c, w, meta, a, includeUsage)
		} else {
			s.completeChat(c, w, meta, a)
		}
	})
}

// checkModel answers 400 for a missing model and Ollama's 404 for an
// unknown one, reporting whether the request may proceed.
func (s *Server) checkModel(w http.ResponseWriter, model string) bool {
	switch {
	case model == "":
		badRequest(w, "model is required")
		return false
	case !s.serves(model):
		writeOpenAIError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("model %q not found, try pulling it first", model),
			Type:    "api_error",
		})
		return false
	}
	return true
}

// completionMeta are the fields shared by a completion and all its chunks.
type completionMeta struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
}

type message struct {
	Role             string `json:"role"`
	Content          string `json:"content"`
	Reasoning        string `json:"reasoning,omitempty"`         // Ollama's name
	ReasoningContent string `json:"reasoning_content,omitempty"` // vLLM's, llama.cpp's, LM Studio's
}

// withReasoning is m carrying text as reasoning, under the name the
// flavour's server uses.
func (s *Server) withReasoning(m message, text string) message {
	if s.cfg.Flavor == "" || s.cfg.Flavor == "ollama" {
		m.Reasoning = text
	} else {
		m.ReasoningContent = text
	}
	return m
}

type usage struct {
	PromptTokens            int `json:"prompt_tokens"`
	CompletionTokens        int `json:"completion_tokens"`
	TotalTokens             int `json:"total_tokens"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details,omitempty"`
}

// usage counts reasoning tokens in completion_tokens, and apart in
// completion_tokens_details when there are any.
func (a answer) usage() usage {
	generated := a.reasoning + a.tokens
	u := usage{PromptTokens: a.promptTokens, CompletionTokens: generated, TotalTokens: a.promptTokens + generated}
	if a.reasoning > 0 {
		u.CompletionTokensDetails = &struct {
			ReasoningTokens int `json:"reasoning_tokens"`
		}{a.reasoning}
	}
	return u
}

// completeChat produces a non-streamed chat.completion after the same total
// delay a stream would take.
func (s *Server) completeChat(c *call, w http.ResponseWriter, meta completionMeta, a answer) {
	if n := c.faults.FailAfterTokens; n > 0 {
		// Crash after generating n tokens; a buffered answer is never sent.
		if c.sleep(s.generationTime(min(n, a.reasoning+a.tokens))) == nil {
			abortConn(w)
		}
		return
	}
	if c.sleep(s.generationTime(a.reasoning+a.tokens)) != nil {
		return
	}
	type choice struct {
		Index        int     `json:"index"`
		Message      message `json:"message"`
		FinishReason string  `json:"finish_reason"`
	}
	meta.Object = "chat.completion"
	c.release()
	writeJSON(w, http.StatusOK, struct {
		completionMeta
		Choices []choice `json:"choices"`
		Usage   usage    `json:"usage"`
	}{
		completionMeta: meta,
		Choices: []choice{{
			Message:      s.withReasoning(message{Role: "assistant", Content: Content(a.tokens)}, Reasoning(a.reasoning)),
			FinishReason: a.finishReason,
		}},
		Usage: a.usage(),
	})
}
