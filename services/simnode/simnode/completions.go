package simnode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// completionRequest is the part of a legacy /v1/completions request
// simnode reads.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"` // a string or an array of strings
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens *int            `json:"max_tokens"`
	Stop      json.RawMessage `json:"stop"`
}

type textChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type textCompletion struct {
	completionMeta
	Choices []textChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

// handleCompletions answers POST /v1/completions: choice i answers
// prompt i with the same deterministic tokens as a chat.
func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	s.serveInference(w, r, func(c *call, body []byte) {
		var req completionRequest
		if err := json.Unmarshal(body, &req); err != nil {
			badRequest(w, err.Error())
			return
		}
		if !s.checkModel(w, req.Model) {
			return
		}
		var prompts []string
		var one string
		if json.Unmarshal(req.Prompt, &one) == nil {
			prompts = []string{one}
		} else if err := json.Unmarshal(req.Prompt, &prompts); err != nil || len(prompts) == 0 {
			badRequest(w, "invalid 'prompt': must be a string or a non-empty array of strings")
			return
		}
		if err := checkStop(req.Stop); err != nil {
			badRequest(w, err.Error())
			return
		}
		a := answer{tokens: s.cfg.Tokens, finishReason: "stop"}
		if req.MaxTokens != nil {
			if *req.MaxTokens < 1 {
				badRequest(w, fmt.Sprintf("invalid 'max_tokens': must be at least 1, got %d", *req.MaxTokens))
				return
			}
			if *req.MaxTokens < a.tokens {
				a.tokens, a.finishReason = *req.MaxTokens, "length"
			}
		}
		words := 0
		for _, p := range prompts {
			words += max(len(strings.Fields(p)), 1)
		}
		a.promptTokens = words
		meta := completionMeta{ID: "cmpl-" + strconv.FormatInt(s.nextID.Add(1), 10), Object: "text_completion",
			Created: time.Now().Unix(), Model: req.Model, SystemFingerprint: "simnode-" + s.cfg.Name}
		n := len(prompts)
		total := usage{PromptTokens: a.promptTokens, CompletionTokens: a.tokens * n, TotalTokens: a.promptTokens + a.tokens*n}
		if !req.Stream {
			if c.sleep(s.generationTime(a.tokens)) != nil {
				return
			}
			if c.faults.FailAfterTokens > 0 {
				abortConn(w)
				return
			}
			choices := make([]textChoice, n)
			for i := range choices {
				choices[i] = textChoice{Text: Content(a.tokens), Index: i, FinishReason: &a.finishReason}
			}
			c.release()
			writeJSON(w, http.StatusOK, textCompletion{meta, choices, &total})
			return
		}
		sse := &sseWriter{c: c, w: w, rc: http.NewResponseController(w)}
		send := func(tc textCompletion) error {
			payload, _ := json.Marshal(tc)
			return sse.send(payload)
		}
		for t := range a.tokens {
			if f := c.faults.FailAfterTokens; f > 0 && t == f {
				abortConn(w)
				return
			}
			delay := s.cfg.TokenDelay
			if t == 0 {
				delay = s.cfg.FirstTokenDelay
			}
			if c.sleep(delay) != nil {
				return
			}
			if t == 0 {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
			}
			for i := range n {
				if send(textCompletion{meta, []textChoice{{Text: token(t), Index: i}}, nil}) != nil {
					return
				}
			}
		}
		for i := range n {
			if send(textCompletion{meta, []textChoice{{Index: i, FinishReason: &a.finishReason}}, nil}) != nil {
				return
			}
		}
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			if send(textCompletion{meta, []textChoice{}, &total}) != nil {
				return
			}
		}
		c.release()
		_ = sse.send([]byte("[DONE]"))
	})
}
