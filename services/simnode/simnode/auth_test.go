package simnode

import "testing"

func TestAPIKey(t *testing.T) {
	const unauthorized = `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	// The Status fault proves auth is checked before faults are applied.
	_, ts := startNode(t, Config{APIKey: "sekret", Faults: Faults{Status: 503}})
	tests := []struct {
		name, method, path, body, auth string
		status                         int
	}{
		{"chat without key", "POST", "/v1/chat/completions", chatReq, "", 401},
		{"chat with wrong key", "POST", "/v1/chat/completions", chatReq, "Bearer nope", 401},
		{"chat with key as basic", "POST", "/v1/chat/completions", chatReq, "Basic sekret", 401},
		{"chat with key prefix", "POST", "/v1/chat/completions", chatReq, "Bearer sekre", 401},
		{"embeddings without key", "POST", "/v1/embeddings", embedReq, "", 401},
		{"models without key", "GET", "/v1/models", "", "", 401},
		{"unknown v1 path without key", "GET", "/v1/nope", "", "", 401},
		{"chat with key reaches the fault", "POST", "/v1/chat/completions", chatReq, "Bearer sekret", 503},
		{"models with key", "GET", "/v1/models", "", "Bearer sekret", 200},
		{"native API needs no key", "GET", "/api/tags", "", "", 200},
		{"admin needs no key", "GET", "/simnode/stats", "", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			resp, body := do(t, t.Context(), tt.method, ts.URL+tt.path, tt.body, hdr)
			checkStatus(t, resp, body, tt.status)
			if tt.status == 401 && body != unauthorized {
				t.Errorf("body = %s, want %s", body, unauthorized)
			}
		})
	}
}
