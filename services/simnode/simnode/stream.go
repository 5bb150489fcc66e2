package simnode

import (
	"encoding/json"
	"net/http"
)

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        message `json:"delta"`
	FinishReason *string `json:"finish_reason"` // null until the finish chunk
}

type chunk struct {
	completionMeta
	Choices []chunkChoice `json:"choices"` // [] (not null) in the usage chunk
	Usage   *usage        `json:"usage,omitempty"`
}

// sseWriter writes server-sent events, flushing each one so that clients
// (and the gateway under test) see tokens as they are produced.
type sseWriter struct {
	c  *call
	w  http.ResponseWriter
	rc *http.ResponseController
}

// send writes one "data: <payload>\n\n" event. A failed write or flush
// means the client went away.
func (e *sseWriter) send(payload []byte) error {
	event := make([]byte, 0, len(payload)+8)
	event = append(event, "data: "...)
	event = append(event, payload...)
	event = append(event, "\n\n"...)
	if _, err := e.w.Write(event); err != nil {
		return e.c.gone()
	}
	if err := e.rc.Flush(); err != nil {
		return e.c.gone()
	}
	return nil
}

func (e *sseWriter) sendChunk(ch chunk) error {
	payload, err := json.Marshal(ch)
	if err != nil {
		panic(err) // chunk always marshals; this is a programming error
	}
	return e.send(payload)
}

// streamChat streams the answer as OpenAI chat.completion.chunk events:
// one content chunk per token, a finish chunk, an optional usage chunk,
// then [DONE]. Headers go out with the first token, as with Ollama.
func (s *Server) streamChat(c *call, w http.ResponseWriter, meta completionMeta, a answer, includeUsage bool) {
	meta.Object = "chat.completion.chunk"
	sse := &sseWriter{c: c, w: w, rc: http.NewResponseController(w)}
	failAfter := c.faults.FailAfterTokens

	for i := range a.reasoning + a.tokens {
		if failAfter > 0 && i == failAfter {
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
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
		}
		delta := message{Role: "assistant", Content: token(i - a.reasoning)}
		if i < a.reasoning {
			delta = s.withReasoning(message{Role: "assistant"}, reasoningToken(i))
		}
		err := sse.sendChunk(chunk{completionMeta: meta, Choices: []chunkChoice{{Delta: delta}}})
		if err != nil {
			return
		}
	}
	if failAfter > 0 {
		// The answer had no more than failAfter tokens: crash before the
		// finish chunk, so the client still never sees a clean end.
		abortConn(w)
		return
	}

	finish := a.finishReason
	err := sse.sendChunk(chunk{
		completionMeta: meta,
		Choices:        []chunkChoice{{Delta: message{Role: "assistant"}, FinishReason: &finish}},
	})
	if err != nil {
		return
	}
	if includeUsage {
		u := a.usage()
		if sse.sendChunk(chunk{completionMeta: meta, Choices: []chunkChoice{}, Usage: &u}) != nil {
			return
		}
	}
	sse.c.release()
	_ = sse.send([]byte("[DONE]"))
}
