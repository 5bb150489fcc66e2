package probe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// vLLM's answers, as recorded from a v0.11 server.
const (
	vllmModels  = `{"object":"list","data":[{"id":"Qwen/Qwen3-8B","object":"model","created":1764000000,"owned_by":"vllm","root":"Qwen/Qwen3-8B","parent":null,"max_model_len":40960,"permission":[]}]}`
	vllmMetrics = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Qwen/Qwen3-8B"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 5.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.42
`
)

func load(running, waiting int32, kv float64) *nodev1.NodeLoad {
	return &nodev1.NodeLoad{RequestsRunning: &running, RequestsWaiting: &waiting, KvCacheUsage: &kv}
}

func TestVLLM(t *testing.T) {
	base := routes{"GET /health": ok(""), "GET /version": ok(`{"version":"0.11.0"}`), "GET /v1/models": ok(vllmModels),
		"GET /metrics": ok(vllmMetrics)}
	with := func(k string, a answer) routes {
		r := routes{}
		for kk, v := range base {
			r[kk] = v
		}
		r[k] = a
		return r
	}
	cases := []struct {
		name   string
		routes routes
		up     bool
		reason string
		load   *nodev1.NodeLoad
	}{
		{"up", base, true, "vllm 0.11.0: 1 model", load(3, 5, 0.42)},
		{"older gauge name", with("GET /metrics", ok(strings.ReplaceAll(vllmMetrics, "kv_cache_usage_perc", "gpu_cache_usage_perc"))),
			true, "vllm 0.11.0: 1 model", load(3, 5, 0.42)},
		{"metrics fail: still up", with("GET /metrics", fail(500, "boom")), true,
			"vllm 0.11.0: 1 model (load unknown: GET /metrics: HTTP 500)", nil},
		{"metrics without vllm gauges", with("GET /metrics", ok("process_open_fds 3\n")), true,
			"vllm 0.11.0: 1 model (load unknown: GET /metrics: no vllm gauges)", nil},
		{"no version", with("GET /version", fail(404, "")), true, "vllm: 1 model", load(3, 5, 0.42)},
		{"engine dead", with("GET /health", fail(503, "")), false, "GET /health: HTTP 503", nil},
		{"models fail", with("GET /v1/models", fail(500, `{"error":{"message":"x"}}`)), false, "GET /v1/models: HTTP 500: x", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.routes.serve(t)
			res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "v", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: url})
			require.NoError(t, err)
			assert.Equal(t, tc.up, res.GetUp())
			assert.Equal(t, tc.reason, res.GetReason())
			assert.True(t, proto.Equal(tc.load, res.GetLoad()), "load %v", res.GetLoad())
			assert.Equal(t, nodev1.Status_STATUS_UNSPECIFIED, res.GetStatus())
			if tc.up {
				require.Len(t, res.GetModels(), 1)
				assert.True(t, res.GetModels()[0].GetLoaded())
				assert.Equal(t, nodev1.ModelType_MODEL_TYPE_UNSPECIFIED, res.GetModels()[0].GetType())
			}
		})
	}
}

// llama-server's answers, as its README documents them.
const (
	llamaLoading   = `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`
	llamaModels    = `{"object":"list","data":[{"id":"qwen2.5-0.5b-instruct-q4_k_m.gguf","object":"model","created":1764000000,"owned_by":"llamacpp","meta":{"n_params":494032768}}]}`
	llamaSlotsBody = `[{"id":0,"n_ctx":4096,"is_processing":true},{"id":1,"n_ctx":4096,"is_processing":false},{"id":2,"n_ctx":4096,"is_processing":true}]`
)

func TestLlamaCpp(t *testing.T) {
	busy, total := int32(2), int32(3)
	cases := []struct {
		name   string
		routes routes
		up     bool
		status nodev1.Status
		reason string
		load   *nodev1.NodeLoad
	}{
		{"ready with slots", routes{"GET /health": ok(`{"status":"ok"}`), "GET /v1/models": ok(llamaModels), "GET /slots": ok(llamaSlotsBody)},
			true, 0, "llamacpp: 1 model", &nodev1.NodeLoad{SlotsBusy: &busy, SlotsTotal: &total, RequestsRunning: &busy}},
		{"slots disabled (501)", routes{"GET /health": ok(`{"status":"ok"}`), "GET /v1/models": ok(llamaModels),
			"GET /slots": fail(501, `{"error":{"code":501,"message":"This server does not support slots endpoint.","type":"not_supported_error"}}`)},
			true, 0, "llamacpp: 1 model", nil},
		{"slots missing (404)", routes{"GET /health": ok(`{"status":"ok"}`), "GET /v1/models": ok(llamaModels)},
			true, 0, "llamacpp: 1 model", nil},
		{"loading", routes{"GET /health": fail(503, llamaLoading), "GET /v1/models": fail(503, llamaLoading)},
			false, nodev1.Status_STATUS_LOADING, "llamacpp: loading the model (GET /health: HTTP 503 Loading model)", nil},
		{"other 503 is down", routes{"GET /health": fail(503, `{"error":{"code":503,"message":"engine crashed"}}`)},
			false, 0, "GET /health: HTTP 503: engine crashed", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.routes.serve(t)
			res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "l", Kind: nodev1.Kind_KIND_LLAMACPP, BaseUrl: url})
			require.NoError(t, err)
			assert.Equal(t, tc.up, res.GetUp())
			assert.Equal(t, tc.status, res.GetStatus())
			assert.Equal(t, tc.reason, res.GetReason())
			assert.True(t, proto.Equal(tc.load, res.GetLoad()), "load %v", res.GetLoad())
		})
	}
}

func TestLMStudio(t *testing.T) {
	url := routes{"GET /api/v0/models": ok(`{"object":"list","data":[
		{"id":"qwen2-vl-7b-instruct","object":"model","type":"vlm","publisher":"mlx-community","arch":"qwen2_vl","state":"not-loaded","max_context_length":32768},
		{"id":"meta-llama-3.1-8b-instruct","object":"model","type":"llm","publisher":"lmstudio-community","state":"loaded","max_context_length":131072},
		{"id":"text-embedding-nomic-embed-text-v1.5","object":"model","type":"embeddings","publisher":"nomic-ai","state":"not-loaded","max_context_length":2048}]}`)}.serve(t)
	res, err := newProber(t, 0, nil).Probe(t.Context(), &nodev1.Node{Id: "s", Kind: nodev1.Kind_KIND_LMSTUDIO, BaseUrl: url})
	require.NoError(t, err)
	assert.True(t, res.GetUp())
	assert.Equal(t, "lmstudio: 3 models, 1 loaded", res.GetReason())
	type row struct {
		id     string
		loaded bool
		typ    nodev1.ModelType
		owner  string
	}
	var got []row
	for _, m := range res.GetModels() {
		got = append(got, row{m.GetId(), m.GetLoaded(), m.GetType(), m.GetOwnedBy()})
	}
	assert.Equal(t, []row{
		{"qwen2-vl-7b-instruct", false, nodev1.ModelType_MODEL_TYPE_CHAT, "mlx-community"},
		{"meta-llama-3.1-8b-instruct", true, nodev1.ModelType_MODEL_TYPE_CHAT, "lmstudio-community"},
		{"text-embedding-nomic-embed-text-v1.5", false, nodev1.ModelType_MODEL_TYPE_EMBEDDING, "nomic-ai"},
	}, got)
}

func TestMisconfigured(t *testing.T) {
	const key = "sk-planted-secret-0123456789"
	cases := []struct {
		name   string
		kind   nodev1.Kind
		path   string // base path
		status int
		body   string
		keyEnv string
		want   string // reason after the URL
	}{
		{"openai 401", nodev1.Kind_KIND_OPENAI, "/v1", 401,
			`{"error":{"message":"Incorrect API key provided: ` + key + `.","type":"invalid_request_error","code":"invalid_api_key"}}`, "OPENAI_API_KEY",
			"/models: invalid API key (Incorrect API key provided: [redacted].) — check OPENAI_API_KEY"},
		{"openai 403", nodev1.Kind_KIND_OPENAI, "/v1", 403, "", "OPENAI_API_KEY",
			"/models: forbidden — check that the key in OPENAI_API_KEY may use this API"},
		{"no key configured", nodev1.Kind_KIND_VLLM, "", 401, `{"error":"Unauthorized"}`, "",
			"/health: invalid API key (Unauthorized) — the node wants an API key: name the variable holding it in api_key_env"},
		{"ollama behind an authenticating proxy", nodev1.Kind_KIND_OLLAMA, "", 401, `{"error":"unauthorized"}`, "OLLAMA_KEY",
			"/api/tags: invalid API key (unauthorized) — check OLLAMA_KEY"},
		{"anthropic 401", nodev1.Kind_KIND_ANTHROPIC, "", 401,
			`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, "ANTHROPIC_API_KEY",
			"/v1/models: invalid API key (invalid x-api-key) — check ANTHROPIC_API_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			env := map[string]string{}
			if tc.keyEnv != "" {
				env[tc.keyEnv] = key
			}
			res, err := newProber(t, 0, env).Probe(t.Context(),
				&nodev1.Node{Id: "c", Kind: tc.kind, BaseUrl: srv.URL + tc.path, ApiKeyEnv: tc.keyEnv})
			require.NoError(t, err)
			assert.False(t, res.GetUp())
			assert.Equal(t, nodev1.Status_STATUS_MISCONFIGURED, res.GetStatus())
			assert.Equal(t, strconv.Itoa(tc.status)+" from "+srv.URL+tc.path+tc.want, res.GetReason())
			assert.NotContains(t, res.GetReason(), key)
		})
	}
}

func TestAnthropicModels(t *testing.T) {
	var pages atomic.Int32
	var headers http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" {
			http.NotFound(w, r)
			return
		}
		headers = r.Header.Clone()
		pages.Add(1)
		if r.URL.Query().Get("after_id") == "" {
			_, _ = io.WriteString(w, `{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":true,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":[{"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-haiku-4-5","last_id":"claude-haiku-4-5"}`)
	}))
	t.Cleanup(srv.Close)
	res, err := newProber(t, 0, map[string]string{"ANTHROPIC_API_KEY": "sk-ant-1"}).Probe(t.Context(),
		&nodev1.Node{Id: "claude", Kind: nodev1.Kind_KIND_ANTHROPIC, BaseUrl: srv.URL, ApiKeyEnv: "ANTHROPIC_API_KEY"})
	require.NoError(t, err)
	assert.True(t, res.GetUp(), res.GetReason())
	assert.Equal(t, "anthropic: 2 models", res.GetReason())
	assert.EqualValues(t, 2, pages.Load())
	assert.Equal(t, "sk-ant-1", headers.Get("x-api-key"))
	assert.Empty(t, headers.Get("Authorization"))
	assert.Equal(t, "2023-06-01", headers.Get("anthropic-version"))
	require.Len(t, res.GetModels(), 2)
	assert.Equal(t, "claude-sonnet-4-5", res.GetModels()[0].GetId())
	assert.Equal(t, nodev1.ModelType_MODEL_TYPE_CHAT, res.GetModels()[0].GetType())
	assert.EqualValues(t, 1759104000, res.GetModels()[0].GetCreated())
}

func TestOllamaModelTypes(t *testing.T) {
	var shows atomic.Int32
	tagsBody := `{"models":[
		{"name":"llama3:8b","model":"llama3:8b","digest":"d1","details":{"family":"llama","families":["llama"]}},
		{"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","digest":"d2","details":{"family":"nomic-bert","families":["nomic-bert"]}},
		{"name":"qwen3-embedding:0.6b","model":"qwen3-embedding:0.6b","digest":"d3","details":{"family":"qwen3","families":["qwen3"]}}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /api/version":
			_, _ = io.WriteString(w, version)
		case "GET /api/tags":
			_, _ = io.WriteString(w, tagsBody)
		case "GET /api/ps":
			_, _ = io.WriteString(w, `{"models":[]}`)
		case "POST /api/show":
			shows.Add(1)
			body, _ := io.ReadAll(r.Body)
			switch {
			case strings.Contains(string(body), "llama3"):
				_, _ = io.WriteString(w, `{"modelfile":"...","capabilities":["completion","tools"]}`)
			default:
				_, _ = io.WriteString(w, `{"capabilities":["embedding"]}`)
			}
		default:
			t.Errorf("unexpected probe request %s %s (never a chat or embedding call)", r.Method, r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p := newProber(t, 0, nil)
	types := func() map[string]nodev1.ModelType {
		res, err := p.Probe(t.Context(), &nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: srv.URL})
		require.NoError(t, err)
		require.True(t, res.GetUp(), res.GetReason())
		out := map[string]nodev1.ModelType{}
		for _, m := range res.GetModels() {
			out[m.GetId()] = m.GetType()
		}
		return out
	}
	want := map[string]nodev1.ModelType{
		"llama3:8b":               nodev1.ModelType_MODEL_TYPE_CHAT,
		"nomic-embed-text:latest": nodev1.ModelType_MODEL_TYPE_EMBEDDING,
		"qwen3-embedding:0.6b":    nodev1.ModelType_MODEL_TYPE_EMBEDDING,
	}
	assert.Equal(t, want, types())
	assert.EqualValues(t, 3, shows.Load())
	assert.Equal(t, want, types())
	assert.EqualValues(t, 3, shows.Load(), "types are remembered by digest")
}
