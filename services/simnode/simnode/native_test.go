package simnode

import (
	"encoding/json"
	"net/http"
	"testing"
)

// As Ollama: a chat without messages, or a generate without a prompt,
// only loads the model — the ollama CLI sends one before a session.
func TestNativeNothingToAnswerIsALoad(t *testing.T) {
	_, ts := startNode(t, Config{})
	for path, body := range map[string]string{
		"/api/chat":     `{"model":"` + testModel + `","messages":[]}`,
		"/api/generate": `{"model":"` + testModel + `"}`,
	} {
		resp, out := do(t, t.Context(), http.MethodPost, ts.URL+path, body, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, out)
		}
		var o struct {
			Done       bool   `json:"done"`
			DoneReason string `json:"done_reason"`
			EvalCount  int    `json:"eval_count"`
		}
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("%s: %v: %s", path, err, out)
		}
		if !o.Done || o.DoneReason != "load" || o.EvalCount != 0 {
			t.Errorf("%s: %s, want one done object with done_reason load", path, out)
		}
	}
}
