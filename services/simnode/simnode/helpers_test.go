package simnode

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testModel is the model every test node serves unless stated otherwise.
const testModel = "llama3.2:3b"

// startNode runs a node on a loopback httptest server for the test's life.
func startNode(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Models == nil {
		cfg.Models = []string{testModel}
	}
	node, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(node)
	t.Cleanup(ts.Close)
	return node, ts
}

// do sends a request and returns the response with its body fully read.
func do(t *testing.T, ctx context.Context, method, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	return do(t, t.Context(), http.MethodGet, url, "", nil)
}

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	return do(t, t.Context(), http.MethodPost, url, body, nil)
}

// openAIErr builds, independently of the code under test, the exact
// OpenAI error body simnode must send.
func openAIErr(message, typ string) string {
	msg, err := json.Marshal(message)
	if err != nil {
		panic(err)
	}
	return `{"error":{"message":` + string(msg) + `,"type":"` + typ + `","param":null,"code":null}}`
}

// waitFor polls cond until it holds, failing the test after 2 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func checkStatus(t *testing.T, resp *http.Response, body string, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, want, body)
	}
}
