package simnode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// completionBody is the exact non-streamed body expected, built apart from
// the code under test; created is taken from the response since it follows
// the clock.
func completionBody(id string, created int64, model, name, content, finish string, prompt, completion int) string {
	c, _ := json.Marshal(content)
	return fmt.Sprintf(`{"id":%q,"object":"chat.completion","created":%d,"model":%q,"system_fingerprint":"simnode-%s",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":%q}],`+
		`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		id, created, model, name, c, finish, prompt, completion, prompt+completion)
}

func TestChatCompletion(t *testing.T) {
	tests := []struct {
		name       string
		body       string // request, with %s for the model
		content    string
		finish     string
		prompt     int
		completion int
	}{
		{"defaults", `{"model":%q,"messages":[{"role":"user","content":"hello there world"}]}`,
			"t0 t1 t2 t3 t4 ", "stop", 3, 5},
		{"max_tokens cuts short", `{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`,
			"t0 t1 ", "length", 1, 2},
		{"max_completion_tokens cuts short", `{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":3}`,
			"t0 t1 t2 ", "length", 1, 3},
		{"smaller of both limits wins", `{"model":%q,"messages":[],"max_tokens":4,"max_completion_tokens":1}`,
			"t0 ", "length", 1, 1},
		{"limit equal to tokens is a natural stop", `{"model":%q,"messages":[],"max_tokens":5}`,
			"t0 t1 t2 t3 t4 ", "stop", 1, 5},
		{"larger limit is a natural stop", `{"model":%q,"messages":[],"max_tokens":50}`,
			"t0 t1 t2 t3 t4 ", "stop", 1, 5},
		{"content parts, null content, several messages",
			`{"model":%q,"messages":[{"role":"system","content":"be  brief"},` +
				`{"role":"user","content":[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"three"}]},` +
				`{"role":"assistant","content":null,"tool_calls":[]}]}`,
			"t0 t1 t2 t3 t4 ", "stop", 5, 5},
		{"stop as string and unknown fields", `{"model":%q,"messages":[],"stop":"t2","temperature":0.2,"seed":7,"tools":[],"frobnicate":{"x":1}}`,
			"t0 t1 t2 t3 t4 ", "stop", 1, 5},
		{"stop as array", `{"model":%q,"messages":[],"stop":["a","b"]}`,
			"t0 t1 t2 t3 t4 ", "stop", 1, 5},
		{"stream false explicitly", `{"model":%q,"messages":[],"stream":false,"stream_options":{"include_usage":true}}`,
			"t0 t1 t2 t3 t4 ", "stop", 1, 5},
	}
	_, ts := startNode(t, Config{Name: "n1", Tokens: 5})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/v1/chat/completions", fmt.Sprintf(tt.body, testModel))
			checkStatus(t, resp, body, http.StatusOK)
			var got struct{ Created int64 }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if d := time.Since(time.Unix(got.Created, 0)); d < 0 || d > time.Minute {
				t.Errorf("created %d is not now", got.Created)
			}
			// Subtests run in order on one server, so ids are predictable.
			id := fmt.Sprintf("chatcmpl-%d", i+1)
			want := completionBody(id, got.Created, testModel, "n1", tt.content, tt.finish, tt.prompt, tt.completion)
			if body != want {
				t.Errorf("body\n got %s\nwant %s", body, want)
			}
			if resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || resp.Header.Get("X-Simnode-Name") != "n1" {
				t.Errorf("headers = %v", resp.Header)
			}
		})
	}
}

func TestChatErrors(t *testing.T) {
	_, ts := startNode(t, Config{})
	tests := []struct {
		name, body string
		status     int
		want       string // exact body, or "" to check only status and type
		typ        string
	}{
		{"bad JSON", `{"model":`, 400, "", "invalid_request_error"},
		{"not an object", `[1]`, 400, "", "invalid_request_error"},
		{"missing model", `{"messages":[]}`, 400, openAIErr("model is required", "invalid_request_error"), ""},
		{"unknown model", `{"model":"nope:1b","messages":[]}`, 404,
			`{"error":{"message":"model \"nope:1b\" not found, try pulling it first","type":"api_error","param":null,"code":null}}`, ""},
		{"content of wrong type", `{"model":"` + testModel + `","messages":[{"role":"user","content":42}]}`, 400, "", "invalid_request_error"},
		{"stop of wrong type", `{"model":"` + testModel + `","messages":[],"stop":3}`, 400, "", "invalid_request_error"},
		{"max_tokens zero", `{"model":"` + testModel + `","messages":[],"max_tokens":0}`, 400, "", "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/v1/chat/completions", tt.body)
			checkStatus(t, resp, body, tt.status)
			if tt.want != "" {
				if body != tt.want {
					t.Errorf("body = %s, want %s", body, tt.want)
				}
				return
			}
			var e struct {
				Error struct{ Message, Type string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Type != tt.typ || e.Error.Message == "" {
				t.Errorf("body = %s, want an OpenAI error of type %s (decode err %v)", body, tt.typ, err)
			}
		})
	}
	// Rejected requests are neither counted as canceled nor left in flight.
	if st := mustStats(t, ts.URL); st.Canceled != 0 || st.InFlight != 0 {
		t.Errorf("stats = %+v, want nothing canceled or in flight", st)
	}
}

func TestChatWaitsForTokenDelays(t *testing.T) {
	_, ts := startNode(t, Config{Tokens: 4, FirstTokenDelay: 40 * time.Millisecond, TokenDelay: 20 * time.Millisecond})
	start := time.Now()
	resp, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"`+testModel+`","messages":[]}`)
	checkStatus(t, resp, body, http.StatusOK)
	if took, want := time.Since(start), 100*time.Millisecond; took < want {
		t.Errorf("answer took %v, want at least %v (40ms + 3*20ms)", took, want)
	}
}

// mustStats reads the stats through the admin endpoint.
func mustStats(t *testing.T, base string) Stats {
	t.Helper()
	resp, body := get(t, base+"/simnode/stats")
	checkStatus(t, resp, body, http.StatusOK)
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	return st
}

func TestLastChatRequestIsKeptAsSent(t *testing.T) {
	node, ts := startNode(t, Config{Tokens: 1})
	if got := node.LastRequest("/v1/chat/completions"); got != nil {
		t.Fatalf("LastRequest before any chat = %q, want nil", got)
	}
	body := `{"model":"` + testModel + `","messages":[],"response_format":{"type":"json_schema","json_schema":{"schema":{"zeta":1,"alpha":2}}}}`
	resp, out := post(t, ts.URL+"/v1/chat/completions", body)
	checkStatus(t, resp, out, http.StatusOK)
	if got := string(node.LastRequest("/v1/chat/completions")); got != body {
		t.Errorf("LastRequest = %s, want %s", got, body)
	}
}
