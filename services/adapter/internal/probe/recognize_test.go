package probe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// Each kind's answers to the URLs recognition asks, as the servers give
// them (Ollama 0.17, vLLM 0.11, llama-server, LM Studio 0.3).
const (
	ollamaV1Models   = `{"object":"list","data":[{"id":"tiny:latest","object":"model","created":1767323045,"owned_by":"library"}]}`
	ollamaTinyTags   = `{"models":[{"name":"tiny:latest","model":"tiny:latest","modified_at":"2026-01-02T03:04:05Z","size":532000,"digest":"abc","details":{"format":"gguf","family":"llama","families":["llama"],"parameter_size":"127K","quantization_level":"F32"}}]}`
	llamaProps       = `{"default_generation_settings":{"n_ctx":4096,"params":{"temperature":0.8}},"total_slots":3,"model_path":"/models/qwen2.5-0.5b-instruct-q4_k_m.gguf","chat_template":"...","build_info":"b6000-abcdef"}`
	lmStudioV0Models = `{"object":"list","data":[{"id":"meta-llama-3.1-8b-instruct","object":"model","type":"llm","publisher":"lmstudio-community","arch":"llama","compatibility_type":"gguf","quantization":"Q4_K_M","state":"loaded","max_context_length":131072}]}`
	lmStudioV1Models = `{"object":"list","data":[{"id":"meta-llama-3.1-8b-instruct","object":"model","owned_by":"organization_owner"}]}`
	genericV1Models  = `{"object":"list","data":[{"id":"gpt-x","object":"model","created":1700000000,"owned_by":"openai"}]}`
)

// logged is routes that also records every request it gets.
type logged struct {
	routes routes
	mu     sync.Mutex
	seen   []string
}

func (l *logged) serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		l.mu.Lock()
		l.seen = append(l.seen, key)
		l.mu.Unlock()
		a, found := l.routes[key]
		if !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (l *logged) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

func TestRecognizeKind(t *testing.T) {
	ollamaNode := routes{"GET /api/version": ok(version), "GET /api/tags": ok(ollamaTinyTags), "GET /api/ps": ok(`{"models":[]}`),
		"POST /api/show": ok(`{"capabilities":["completion"]}`), "GET /v1/models": ok(ollamaV1Models)}
	vllmNode := routes{"GET /health": ok(""), "GET /version": ok(`{"version":"0.11.0"}`), "GET /v1/models": ok(vllmModels),
		"GET /metrics": ok(vllmMetrics)}
	llamaNode := routes{"GET /health": ok(`{"status":"ok"}`), "GET /props": ok(llamaProps), "GET /v1/models": ok(llamaModels),
		"GET /slots": ok(llamaSlotsBody)}
	lmsNode := routes{"GET /api/v0/models": ok(lmStudioV0Models), "GET /v1/models": ok(lmStudioV1Models)}
	genericNode := routes{"GET /v1/models": ok(genericV1Models)}

	cases := []struct {
		name   string
		routes routes
		path   string      // the configured URL's path, as in OPENAI_BASE_URL
		want   nodev1.Kind // recognised as
		root   bool        // the recognised base URL is the server root
		reason string
		never  []string // requests recognition must not need
	}{
		{"ollama", ollamaNode, "/v1", nodev1.Kind_KIND_OLLAMA, true, "ollama 0.17.4: 1 model, 0 loaded", nil},
		{"ollama, no /v1 given", ollamaNode, "", nodev1.Kind_KIND_OLLAMA, true, "ollama 0.17.4: 1 model, 0 loaded", nil},
		{"vllm", vllmNode, "/v1", nodev1.Kind_KIND_VLLM, true, "vllm 0.11.0: 1 model", []string{"GET /api/version"}},
		{"llama.cpp", llamaNode, "/v1", nodev1.Kind_KIND_LLAMACPP, true, "llamacpp: 1 model", []string{"GET /api/version", "GET /version"}},
		{"lm studio", lmsNode, "/v1", nodev1.Kind_KIND_LMSTUDIO, true, "lmstudio: 1 model, 1 loaded", []string{"GET /api/version"}},
		{"a generic openai-compatible server", genericNode, "/v1", nodev1.Kind_KIND_OPENAI, false, "openai: 1 model", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := &logged{routes: tc.routes}
			url := srv.serve(t)
			res, err := newProber(t, 0, nil).Probe(t.Context(),
				&nodev1.Node{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + tc.path, RecognizeKind: true})
			require.NoError(t, err)
			assert.True(t, res.GetUp(), res.GetReason())
			assert.Equal(t, tc.want, res.GetRecognizedKind())
			wantBase := url + "/v1"
			if tc.root {
				wantBase = url
			}
			assert.Equal(t, wantBase, res.GetRecognizedBaseUrl())
			assert.Equal(t, tc.reason, res.GetReason())
			for _, r := range tc.never {
				assert.NotContains(t, srv.requests(), r, "the models' owned_by says which kind to ask first")
			}
		})
	}

	t.Run("ollama gets its own probe: sizes, details, the name without its tag", func(t *testing.T) {
		url := ollamaNode.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(),
			&nodev1.Node{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + "/v1", RecognizeKind: true})
		require.NoError(t, err)
		require.Len(t, res.GetModels(), 1)
		m := res.GetModels()[0]
		assert.Equal(t, "tiny:latest", m.GetId())
		assert.Equal(t, []string{"tiny"}, m.GetAliases())
		assert.EqualValues(t, 532000, m.GetSizeBytes())
		assert.Equal(t, "127K", m.GetParameterSize())
		assert.Equal(t, nodev1.ModelType_MODEL_TYPE_CHAT, m.GetType())
		assert.False(t, m.GetLoaded())
	})

	t.Run("an explicit kind is not second-guessed", func(t *testing.T) {
		srv := &logged{routes: ollamaNode}
		url := srv.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + "/v1"})
		require.NoError(t, err)
		assert.True(t, res.GetUp())
		assert.Equal(t, nodev1.Kind_KIND_UNSPECIFIED, res.GetRecognizedKind())
		assert.Equal(t, "openai: 1 model", res.GetReason())
		assert.Equal(t, []string{"GET /v1/models"}, srv.requests())
	})

	t.Run("a node that does not answer is not recognised", func(t *testing.T) {
		res, err := newProber(t, 0, nil).Probe(t.Context(),
			&nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: refusedURL(t) + "/v1", RecognizeKind: true})
		require.NoError(t, err)
		assert.False(t, res.GetUp())
		assert.Equal(t, "connect: connection refused", res.GetReason())
		assert.Equal(t, nodev1.Kind_KIND_UNSPECIFIED, res.GetRecognizedKind())
	})

	t.Run("a node recognised before is asked its own kind's URL first", func(t *testing.T) {
		srv := &logged{routes: vllmNode}
		url := srv.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: url, RecognizeKind: true})
		require.NoError(t, err)
		assert.True(t, res.GetUp())
		assert.Equal(t, nodev1.Kind_KIND_VLLM, res.GetRecognizedKind())
		assert.Equal(t, "GET /version", srv.requests()[0])
	})

	t.Run("a node recognised before that is now another kind", func(t *testing.T) {
		url := ollamaNode.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: url, RecognizeKind: true})
		require.NoError(t, err)
		assert.True(t, res.GetUp())
		assert.Equal(t, nodev1.Kind_KIND_OLLAMA, res.GetRecognizedKind())
		assert.Equal(t, url, res.GetRecognizedBaseUrl())
	})

	t.Run("a llama-server loading its model stays llamacpp", func(t *testing.T) {
		url := routes{"GET /health": fail(503, llamaLoading), "GET /props": fail(503, llamaLoading), "GET /v1/models": fail(503, llamaLoading)}.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_LLAMACPP, BaseUrl: url, RecognizeKind: true})
		require.NoError(t, err)
		assert.Equal(t, nodev1.Status_STATUS_LOADING, res.GetStatus())
		assert.Equal(t, nodev1.Kind_KIND_UNSPECIFIED, res.GetRecognizedKind(), "could not tell")
	})

	t.Run("a node recognised before that is now a generic server", func(t *testing.T) {
		url := genericNode.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: url, RecognizeKind: true})
		require.NoError(t, err)
		assert.True(t, res.GetUp(), res.GetReason())
		assert.Equal(t, nodev1.Kind_KIND_OPENAI, res.GetRecognizedKind())
		assert.Equal(t, url+"/v1", res.GetRecognizedBaseUrl())
	})

	t.Run("answers that only look alike are not a signature", func(t *testing.T) {
		url := routes{"GET /v1/models": ok(genericV1Models), "GET /api/version": ok(`{"status":"ok"}`), "GET /version": ok(`<html>`),
			"GET /props": ok(`{"name":"gateway"}`), "GET /api/v0/models": ok(`{"data":[{"id":"x"}]}`)}.serve(t)
		res, err := newProber(t, 0, nil).Probe(t.Context(),
			&nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url + "/v1", RecognizeKind: true})
		require.NoError(t, err)
		assert.Equal(t, nodev1.Kind_KIND_OPENAI, res.GetRecognizedKind())
	})
}
