package simnode

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

const details1B = `"details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"1B","quantization_level":"Q4_0"}`

// Golden bodies: a change here breaks clients that parse Ollama's shapes.
func TestProbeEndpoints(t *testing.T) {
	_, ts := startNode(t, Config{Name: "n1", Models: []string{"llama3.2:3b", "qwen3:0.6b"}, Loaded: []string{"qwen3:0.6b"}})
	tests := []struct {
		method, path, ctype, body string
	}{
		{"GET", "/", "text/plain; charset=utf-8", "Ollama is running"},
		{"HEAD", "/", "text/plain; charset=utf-8", ""},
		{"GET", "/api/version", "application/json; charset=utf-8", `{"version":"0.17.4"}`},
		{"GET", "/api/tags", "application/json; charset=utf-8", `{"models":[` +
			`{"name":"llama3.2:3b","model":"llama3.2:3b","modified_at":"2026-01-02T03:04:05Z","size":1929818606,"digest":"925b2caf983238a56eb239f3a68a67647b4fd908f282c92d3fe4d211878d24ac",` + details1B + `},` +
			`{"name":"qwen3:0.6b","model":"qwen3:0.6b","modified_at":"2026-01-02T03:04:05Z","size":1643555901,"digest":"514cf42a1ceb1dee40909507b7b0f29ef9e471786ec0d58304e75ae68cf34c10",` + details1B + `}]}`},
		{"GET", "/v1/models", "application/json; charset=utf-8", `{"object":"list","data":[` +
			`{"id":"llama3.2:3b","object":"model","created":1767323045,"owned_by":"library"},` +
			`{"id":"qwen3:0.6b","object":"model","created":1767323045,"owned_by":"library"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, t.Context(), tt.method, ts.URL+tt.path, "", nil)
			checkStatus(t, resp, body, http.StatusOK)
			if body != tt.body {
				t.Errorf("body\n got %s\nwant %s", body, tt.body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := resp.Header.Get("X-Simnode-Name"); got != "n1" {
				t.Errorf("X-Simnode-Name = %q, want n1", got)
			}
		})
	}
}

func TestPSReportsLoadedModels(t *testing.T) {
	// expires_at follows the clock, so it is checked apart from the rest.
	expiresRE := regexp.MustCompile(`"expires_at":"([^"]+)",`)
	tests := []struct {
		name   string
		loaded []string
		want   string
	}{
		{"one loaded", []string{"qwen3:0.6b"}, `{"models":[{"name":"qwen3:0.6b","model":"qwen3:0.6b","size":1677110333,` +
			`"digest":"514cf42a1ceb1dee40909507b7b0f29ef9e471786ec0d58304e75ae68cf34c10",` + details1B +
			`,"size_vram":1677110333,"context_length":4096}]}`},
		{"nil means all", nil, ""},
		{"empty means none", []string{}, `{"models":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := startNode(t, Config{Models: []string{"llama3.2:3b", "qwen3:0.6b"}, Loaded: tt.loaded})
			resp, body := get(t, ts.URL+"/api/ps")
			checkStatus(t, resp, body, http.StatusOK)
			if tt.loaded == nil {
				var ps struct{ Models []struct{ Name string } }
				if err := json.Unmarshal([]byte(body), &ps); err != nil || len(ps.Models) != 2 {
					t.Fatalf("body %s: want both models (err %v)", body, err)
				}
				return
			}
			for _, m := range expiresRE.FindAllStringSubmatch(body, -1) {
				exp, err := time.Parse(time.RFC3339Nano, m[1])
				if err != nil {
					t.Fatalf("expires_at %q: %v", m[1], err)
				}
				if d := time.Until(exp); d < 4*time.Minute || d > 5*time.Minute {
					t.Errorf("expires_at %v is %v away, want about 5m", exp, d)
				}
			}
			if got := expiresRE.ReplaceAllString(body, ""); got != tt.want {
				t.Errorf("body without expires_at\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	_, ts := startNode(t, Config{})
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/nope", 404, `{"error":"not found"}`},
		{"POST", "/api/version", 404, `{"error":"not found"}`},
		{"DELETE", "/", 404, `{"error":"not found"}`},
		{"GET", "/v1/chat/completions", 404, openAIErr("Invalid URL (GET /v1/chat/completions)", "invalid_request_error")},
		{"POST", "/v1/responses", 404, openAIErr("Invalid URL (POST /v1/responses)", "invalid_request_error")},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, t.Context(), tt.method, ts.URL+tt.path, "", nil)
			checkStatus(t, resp, body, tt.status)
			if body != tt.body {
				t.Errorf("body = %s, want %s", body, tt.body)
			}
		})
	}
}

func TestProbeStatusFault(t *testing.T) {
	node, ts := startNode(t, Config{Faults: Faults{ProbeStatus: http.StatusInternalServerError}})
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/api/version", 500, `{"error":"Internal Server Error"}`},
		{"/api/tags", 500, `{"error":"Internal Server Error"}`},
		{"/api/ps", 500, `{"error":"Internal Server Error"}`},
		{"/v1/models", 500, openAIErr("Internal Server Error", "api_error")},
		{"/", 200, "Ollama is running"}, // the root is never faulted
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, ts.URL+tt.path)
			checkStatus(t, resp, body, tt.status)
			if body != tt.body {
				t.Errorf("body = %s, want %s", body, tt.body)
			}
		})
	}
	// Inference keeps working while probes fail.
	resp, body := post(t, ts.URL+"/v1/chat/completions", `{"model":"`+testModel+`","messages":[]}`)
	checkStatus(t, resp, body, http.StatusOK)

	node.SetFaults(Faults{ProbeStatus: http.StatusTooManyRequests})
	resp, body = get(t, ts.URL+"/v1/models")
	checkStatus(t, resp, body, http.StatusTooManyRequests)
	if want := openAIErr("Too Many Requests", "invalid_request_error"); body != want {
		t.Errorf("body = %s, want %s", body, want)
	}
}

// Ollama's name rule: a model named without its tag is its ":latest",
// on the native API and on /v1 alike; other flavours have no such rule.
func TestModelWithoutItsTag(t *testing.T) {
	for flavor, want := range map[string]int{"": http.StatusOK, "vllm": http.StatusNotFound} {
		s, err := New(Config{Flavor: flavor, Models: []string{"tiny:latest", "org/m:latest"}, Tokens: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ path, body string }{
			{"/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`},
			{"/v1/chat/completions", `{"model":"org/m","messages":[{"role":"user","content":"hi"}]}`},
			{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":false}`},
		} {
			if flavor != "" && tc.path == "/api/chat" {
				continue
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
			if rec.Code != want {
				t.Errorf("flavor %q: POST %s %s: %d, want %d: %s", flavor, tc.path, tc.body, rec.Code, want, rec.Body)
			}
		}
	}
	s, _ := New(Config{Models: []string{"tiny:q4"}, Tokens: 1})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/chat", strings.NewReader(`{"model":"tiny","stream":false}`)))
	if rec.Code != http.StatusNotFound {
		t.Errorf("tiny is tiny:latest, not tiny:q4: %d", rec.Code)
	}
}
