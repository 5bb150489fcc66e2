package simnode

import (
	"encoding/json"
	"net/http"
)

// apiError is the body of an OpenAI-style error: {"error":{...}}.
// Param and Code are any so that unset values encode as null, as OpenAI does.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
}

// ollamaError is the body of a native Ollama API error.
type ollamaError struct {
	Error string `json:"error"`
}

// writeJSON writes v without a trailing newline, like Ollama's gin c.JSON,
// so bodies match byte for byte.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only reachable through a programming error in this package.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body) // a failed write means the client left; nothing to do
}

func writeOpenAIError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, struct {
		Error apiError `json:"error"`
	}{e})
}

// errorType maps a status to the OpenAI error type used by fault injection.
func errorType(status int) string {
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// badRequest answers 400 the way Ollama's OpenAI layer does.
func badRequest(w http.ResponseWriter, msg string) {
	writeOpenAIError(w, http.StatusBadRequest, apiError{Message: msg, Type: "invalid_request_error"})
}

// abortConn drops the connection without finishing the response, so the
// client sees an unexpected EOF instead of a clean end, as when a real node
// crashes mid-answer. Hijacking gives a plain FIN; a RST could make the
// client discard chunks it already received, which tests rely on seeing.
//
// There is deliberately no Flush here: on a response that has written
// nothing it would send a 200 status line. Streams flush every event, and
// Hijack delivers what was flushed, so nothing sent before the crash is lost.
func abortConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a recorder cannot be hijacked; this is net/http's
		// sanctioned way to abort a response without logging a stack.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
