package simnode

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestFlavorVLLM(t *testing.T) {
	_, ts := startNode(t, Config{Flavor: "vllm"})
	if resp, _ := get(t, ts.URL+"/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("/health: %d", resp.StatusCode)
	}
	_, body := get(t, ts.URL+"/metrics")
	for _, want := range []string{`vllm:num_requests_running{engine="0",model_name="llama3.2:3b"} 0.0`, "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if resp, _ := get(t, ts.URL+"/api/tags"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a vLLM has no /api/tags; got %d", resp.StatusCode)
	}
}

func TestFlavorLlamaCppLoading(t *testing.T) {
	node, ts := startNode(t, Config{Flavor: "llamacpp", Slots: 3})
	_, body := get(t, ts.URL+"/slots")
	if strings.Count(body, `"is_processing":false`) != 3 {
		t.Errorf("/slots = %s, want 3 idle slots", body)
	}
	node.SetFaults(Faults{Loading: true})
	for _, path := range []string{"/health", "/v1/models"} {
		resp, body := get(t, ts.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"message":"Loading model"`) {
			t.Errorf("%s while loading: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, _ := do(t, context.Background(), http.MethodPost, ts.URL+"/v1/chat/completions", `{"model":"llama3.2:3b","messages":[]}`, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("chat while loading: %d", resp.StatusCode)
	}
}

func TestFlavorLMStudio(t *testing.T) {
	_, ts := startNode(t, Config{Flavor: "lmstudio", Models: []string{"chat", "emb"}, EmbeddingModels: []string{"emb"}, Loaded: []string{"chat"}})
	_, body := get(t, ts.URL+"/api/v0/models")
	for _, want := range []string{`"id":"chat","object":"model","type":"llm","publisher":"simnode","state":"loaded"`, `"id":"emb","object":"model","type":"embeddings","publisher":"simnode","state":"not-loaded"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/v0/models lacks %s:\n%s", want, body)
		}
	}
}

func TestEmbeddingModels(t *testing.T) {
	_, ts := startNode(t, Config{Models: []string{"chat", "emb"}, EmbeddingModels: []string{"emb"}})
	resp, body := do(t, context.Background(), http.MethodPost, ts.URL+"/v1/chat/completions", `{"model":"emb","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not support chat") {
		t.Errorf("chat with an embedding model: %d %s", resp.StatusCode, body)
	}
	_, body = do(t, context.Background(), http.MethodPost, ts.URL+"/api/show", `{"model":"emb"}`, nil)
	if !strings.Contains(body, `"capabilities":["embedding"]`) {
		t.Errorf("/api/show emb = %s", body)
	}
	_, body = do(t, context.Background(), http.MethodPost, ts.URL+"/api/show", `{"model":"chat"}`, nil)
	if !strings.Contains(body, `"capabilities":["completion","tools"]`) {
		t.Errorf("/api/show chat = %s", body)
	}
	if _, err := New(Config{Models: []string{"a"}, EmbeddingModels: []string{"b"}, Flavor: "tgi"}); err == nil ||
		!strings.Contains(err.Error(), `embedding model "b"`) || !strings.Contains(err.Error(), `flavor "tgi"`) {
		t.Errorf("New with a bad flavour and embedding model: %v", err)
	}
}
