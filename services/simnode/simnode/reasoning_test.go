package simnode

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestReasoning(t *testing.T) {
	for _, tt := range []struct{ flavor, field string }{
		{"ollama", "reasoning"},
		{"vllm", "reasoning_content"},
		{"llamacpp", "reasoning_content"},
	} {
		t.Run(tt.flavor, func(t *testing.T) {
			_, ts := startNode(t, Config{Flavor: tt.flavor, Tokens: 2, ReasoningTokens: 3})
			resp, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"hi"}]}`)
			checkStatus(t, resp, body, http.StatusOK)
			var cc struct {
				Choices []struct{ Message map[string]any }
				Usage   struct {
					CompletionTokens        int `json:"completion_tokens"`
					CompletionTokensDetails struct {
						ReasoningTokens int `json:"reasoning_tokens"`
					} `json:"completion_tokens_details"`
				}
			}
			if err := json.Unmarshal([]byte(body), &cc); err != nil {
				t.Fatal(err)
			}
			m := cc.Choices[0].Message
			if m[tt.field] != Reasoning(3) || m["content"] != Content(2) || len(m) != 3 {
				t.Errorf("message = %v, want content %q and only %s %q", m, Content(2), tt.field, Reasoning(3))
			}
			if cc.Usage.CompletionTokens != 5 || cc.Usage.CompletionTokensDetails.ReasoningTokens != 3 {
				t.Errorf("usage = %+v, want 5 completion tokens of which 3 reasoning", cc.Usage)
			}

			resp, body = post(t, ts.URL+"/v1/chat/completions", `{"model":"`+testModel+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			checkStatus(t, resp, body, http.StatusOK)
			var reasoning, content strings.Builder
			for ev := range strings.SplitSeq(strings.TrimSpace(body), "\n\n") {
				data := strings.TrimPrefix(ev, "data: ")
				if data == "[DONE]" {
					break
				}
				var ch struct {
					Choices []struct{ Delta map[string]any }
				}
				if err := json.Unmarshal([]byte(data), &ch); err != nil {
					t.Fatalf("%s: %v", data, err)
				}
				d := ch.Choices[0].Delta
				if r, ok := d[tt.field].(string); ok {
					if content.Len() > 0 {
						t.Errorf("reasoning %q after content", r)
					}
					reasoning.WriteString(r)
				}
				content.WriteString(d["content"].(string))
			}
			if reasoning.String() != Reasoning(3) || content.String() != Content(2) {
				t.Errorf("streamed reasoning %q content %q", reasoning.String(), content.String())
			}
		})
	}
}
