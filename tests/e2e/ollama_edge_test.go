package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/repo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ollamaMesh fronts two Ollama nodes and one OpenAI-only node ("cloud",
// kind openai), so the Ollama edge is tried on both adapter paths.
func ollamaMesh(t *testing.T) (*meshtest.Mesh, *meshtest.Node, *meshtest.Node, *meshtest.Node) {
	alpha := meshtest.StartNode(t, "alpha", simnode.Config{Models: []string{"shared", "alpha-only", "embedder"},
		Loaded: []string{"shared"}, Tokens: 5})
	beta := meshtest.StartNode(t, "beta", simnode.Config{Models: []string{"shared"}, Loaded: []string{}, Tokens: 5})
	cloud := meshtest.StartNode(t, "cloud", simnode.Config{Models: []string{"cloud-only"}, Tokens: 4})
	refs := []meshtest.NodeRef{alpha.Ref(), beta.Ref(),
		{ID: "cloud", URL: cloud.URL + "/v1", Models: cloud.ModelIDs, Kind: "openai"}}
	return meshtest.StartRefs(t, bins, refs, meshtest.Options{}), alpha, beta, cloud
}

// ndjson posts body to path and returns the response and its objects.
func ndjson(t *testing.T, m *meshtest.Mesh, path, body string) (*http.Response, []map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(meshtest.Context(t, 10*time.Second), http.MethodPost, m.RESTURL+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var objs []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &o), sc.Text())
		objs = append(objs, o)
	}
	require.NoError(t, sc.Err())
	return resp, objs
}

func content(objs []map[string]any, field string) string {
	var b strings.Builder
	for _, o := range objs {
		if field == "response" {
			s, _ := o["response"].(string)
			b.WriteString(s)
			continue
		}
		if msg, ok := o["message"].(map[string]any); ok {
			s, _ := msg["content"].(string)
			b.WriteString(s)
		}
	}
	return b.String()
}

func TestOllamaEdge(t *testing.T) {
	m, alpha, beta, cloud := ollamaMesh(t)

	t.Run("root and version", func(t *testing.T) {
		resp, err := http.Get(m.RESTURL + "/")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "Ollama is running", string(b))
		resp, err = http.Head(m.RESTURL + "/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("chat streams NDJSON by default through the native API", func(t *testing.T) {
		resp, objs := ndjson(t, m, "/api/chat", `{"model":"alpha-only","messages":[{"role":"user","content":"hi you"}],
			"keep_alive":"7m","options":{"num_ctx":1024,"seed":7},"think":false,"format":"json"}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		require.Len(t, objs, 6, "five tokens and the done object")
		assert.Equal(t, simnode.Content(5), content(objs, "message"))
		last := objs[len(objs)-1]
		assert.Equal(t, true, last["done"])
		assert.Equal(t, "stop", last["done_reason"])
		assert.EqualValues(t, 5, last["eval_count"])
		assert.EqualValues(t, 2, last["prompt_eval_count"])
		assert.Positive(t, last["total_duration"])

		var got map[string]any
		require.NoError(t, json.Unmarshal(alpha.LastRequest("/api/chat"), &got))
		assert.Equal(t, "7m", got["keep_alive"], "keep_alive reaches the node")
		assert.Equal(t, map[string]any{"num_ctx": 1024.0, "seed": 7.0}, got["options"])
		assert.Equal(t, false, got["think"])
		assert.Equal(t, "json", got["format"])
	})

	t.Run("chat with stream false is one object", func(t *testing.T) {
		resp, objs := ndjson(t, m, "/api/chat", `{"model":"alpha-only","stream":false,"options":{"num_predict":2},"messages":[{"role":"user","content":"x"}]}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(2), content(objs, "message"))
		assert.Equal(t, "length", objs[0]["done_reason"])
		assert.EqualValues(t, 2, objs[0]["eval_count"])
	})

	t.Run("generate", func(t *testing.T) {
		_, objs := ndjson(t, m, "/api/generate", `{"model":"shared","prompt":"tell me"}`)
		assert.Equal(t, simnode.Content(5), content(objs, "response"))
		assert.Equal(t, true, objs[len(objs)-1]["done"])
		_, objs = ndjson(t, m, "/api/generate", `{"model":"shared","prompt":"tell me","stream":false}`)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(5), objs[0]["response"])
	})

	t.Run("tool call through the native API", func(t *testing.T) {
		_, objs := ndjson(t, m, "/api/chat", `{"model":"alpha-only","stream":false,"messages":[{"role":"user","content":"w?"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`)
		require.Len(t, objs, 1)
		calls := objs[0]["message"].(map[string]any)["tool_calls"].([]any)
		require.Len(t, calls, 1)
		fn := calls[0].(map[string]any)["function"].(map[string]any)
		assert.Equal(t, "get_weather", fn["name"])
		assert.Equal(t, map[string]any{"query": "simnode"}, fn["arguments"])
	})

	t.Run("a node that is not Ollama is bridged", func(t *testing.T) {
		resp, objs := ndjson(t, m, "/api/chat", `{"model":"cloud-only","messages":[{"role":"user","content":"a b c"}],"options":{"num_predict":3}}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, simnode.Content(3), content(objs, "message"))
		last := objs[len(objs)-1]
		assert.Equal(t, true, last["done"])
		assert.Equal(t, "length", last["done_reason"])
		assert.EqualValues(t, 3, last["eval_count"], "usage from the OpenAI stream")
		assert.EqualValues(t, 3, last["prompt_eval_count"])
		assert.Zero(t, cloud.Stats().Requests["POST /api/chat"], "the OpenAI node got no native request")
		assert.Positive(t, cloud.Stats().Requests["POST /v1/chat/completions"])

		_, objs = ndjson(t, m, "/api/generate", `{"model":"cloud-only","prompt":"p","stream":false}`)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(4), objs[0]["response"])
		assert.EqualValues(t, 4, objs[0]["eval_count"])

		_, objs = ndjson(t, m, "/api/chat", `{"model":"cloud-only","messages":[{"role":"user","content":"w?"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`)
		var calls []any
		for _, o := range objs {
			if tc, ok := o["message"].(map[string]any)["tool_calls"].([]any); ok {
				calls = append(calls, tc...)
			}
		}
		require.Len(t, calls, 1, "the streamed fragments arrive as one whole Ollama call")
		fn := calls[0].(map[string]any)["function"].(map[string]any)
		assert.Equal(t, "get_weather", fn["name"])
		assert.Equal(t, map[string]any{"query": "simnode"}, fn["arguments"])

		_, objs = ndjson(t, m, "/api/embed", `{"model":"cloud-only","input":["x","y"]}`)
		require.Len(t, objs, 1)
		assert.Len(t, objs[0]["embeddings"], 2)
		_, objs = ndjson(t, m, "/api/show", `{"model":"cloud-only"}`)
		require.Len(t, objs, 1)
		assert.Contains(t, objs[0], "capabilities")
	})

	t.Run("embed, embeddings and show on Ollama", func(t *testing.T) {
		_, objs := ndjson(t, m, "/api/embed", `{"model":"embedder","input":"hello"}`)
		require.Len(t, objs, 1)
		vecs := objs[0]["embeddings"].([]any)
		require.Len(t, vecs, 1)
		want := simnode.Embedding("embedder", "hello", simnode.DefaultEmbeddingDims)
		assert.InDelta(t, want[0], vecs[0].([]any)[0], 1e-6)
		_, objs = ndjson(t, m, "/api/embeddings", `{"model":"embedder","prompt":"hello"}`)
		require.Len(t, objs, 1)
		assert.Len(t, objs[0]["embedding"], simnode.DefaultEmbeddingDims)
		_, objs = ndjson(t, m, "/api/show", `{"model":"alpha-only"}`)
		require.Len(t, objs, 1)
		assert.Equal(t, "# simnode alpha-only", objs[0]["modelfile"])
	})

	t.Run("tags and ps", func(t *testing.T) {
		var tags struct {
			Models []struct {
				Name, Model, Digest string
				Details             map[string]any
			} `json:"models"`
		}
		getJSON(t, m.RESTURL+"/api/tags", &tags)
		var names []string
		for _, mo := range tags.Models {
			names = append(names, mo.Name)
			if mo.Name == "shared" {
				assert.NotEmpty(t, mo.Digest, "the node's digest")
				assert.Equal(t, map[string]any{"parent_model": "", "format": "gguf", "family": "llama", "families": []any{"llama"},
					"parameter_size": "1B", "quantization_level": "Q4_0"}, mo.Details, "the node's details")
			}
		}
		assert.Equal(t, []string{"alpha-only", "cloud-only", "embedder", "shared"}, names)
		var ps struct {
			Models []struct {
				Name          string
				Size          int64
				Details       map[string]any
				SizeVRAM      int64     `json:"size_vram"`
				ExpiresAt     time.Time `json:"expires_at"`
				ContextLength int32     `json:"context_length"`
			} `json:"models"`
		}
		getJSON(t, m.RESTURL+"/api/ps", &ps)
		require.Len(t, ps.Models, 2, "shared (alpha) and cloud-only (the OpenAI node's models count as loaded)")
		assert.Equal(t, "cloud-only", ps.Models[0].Name)
		assert.Equal(t, "shared", ps.Models[1].Name)
		assert.Positive(t, ps.Models[1].SizeVRAM, "from the node's /api/ps")
		var own struct {
			Models []struct{ Size int64 } `json:"models"`
		}
		getJSON(t, alpha.URL+"/api/ps", &own)
		require.Len(t, own.Models, 1)
		assert.Equal(t, own.Models[0].Size, ps.Models[1].Size, "the loaded size, from the node's /api/ps")
		assert.Equal(t, "Q4_0", ps.Models[1].Details["quantization_level"])
		assert.Positive(t, ps.Models[1].ContextLength, "from the node's /api/ps")
		assert.True(t, ps.Models[1].ExpiresAt.After(time.Now()), "from the node's /api/ps: %s", ps.Models[1].ExpiresAt)
	})

	t.Run("errors in Ollama's shape", func(t *testing.T) {
		cases := []struct {
			path, body string
			status     int
			msg        string
		}{
			{"/api/chat", `{"model":"nope","messages":[]}`, 404, "model 'nope' not found"},
			{"/api/chat", `{"messages":[]}`, 400, "model is required"},
			{"/api/generate", `{"model":`, 400, "invalid JSON body"},
			{"/api/embed", ``, 400, "missing request body"},
			{"/api/pull", `{"model":"x"}`, 501, "does not manage models"},
			{"/api/nothing", `{}`, 404, "404 page not found"},
		}
		for _, tc := range cases {
			resp, err := http.Post(m.RESTURL+tc.path, "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			var e struct{ Error string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode, tc.path+" "+tc.body)
			assert.Contains(t, e.Error, tc.msg, tc.path+" "+tc.body)
		}
	})

	t.Run("a failing node is passed over before the first object", func(t *testing.T) {
		beta.SetFaults(simnode.Faults{Status: http.StatusServiceUnavailable})
		alpha.SetFaults(simnode.Faults{})
		t.Cleanup(func() { beta.SetFaults(simnode.Faults{}) })
		for range 4 {
			resp, objs := ndjson(t, m, "/api/chat", `{"model":"shared","messages":[{"role":"user","content":"x"}]}`)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, simnode.Content(5), content(objs, "message"))
		}
	})

	t.Run("a node dying mid-stream ends the stream with an error object", func(t *testing.T) {
		alpha.SetFaults(simnode.Faults{FailAfterTokens: 2})
		t.Cleanup(func() { alpha.SetFaults(simnode.Faults{}) })
		resp, objs := ndjson(t, m, "/api/chat", `{"model":"alpha-only","messages":[{"role":"user","content":"x"}]}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		require.Len(t, objs, 3)
		assert.Equal(t, simnode.Content(2), content(objs[:2], "message"))
		assert.Contains(t, objs[2]["error"], "alpha")
	})
}

// TestOllamaEdgeBridgedKinds: what the Ollama edge says and does for
// nodes that are not Ollama — /api/show from what the probe knows,
// /api/generate's raw and suffix through the node's completions API (or
// refused), and the configured aliases in /api/tags.
func TestOllamaEdgeBridgedKinds(t *testing.T) {
	lms := meshtest.StartNode(t, "lms-1", simnode.Config{Flavor: "lmstudio", Models: []string{"lm-chat", "lm-embed"},
		EmbeddingModels: []string{"lm-embed"}, Loaded: []string{"lm-chat"}, Tokens: 3})
	llama := meshtest.StartNode(t, "llama-1", simnode.Config{Flavor: "llamacpp", Models: []string{"raw.gguf"}, Tokens: 3})
	fim := meshtest.StartNode(t, "fim", simnode.Config{Models: []string{"coder"}, Tokens: 3})
	refs := []meshtest.NodeRef{lms.Ref(), llama.Ref(), {ID: "fim", URL: fim.URL + "/v1", Models: fim.ModelIDs, Kind: "openai"}}
	m := meshtest.StartRefs(t, bins, refs, meshtest.Options{RouterArgs: []string{"-model-alias", "default=lm-chat"}, NoModelWait: true})
	m.WaitModels(t, 5) // the four models and the alias

	t.Run("show says what the probe knows", func(t *testing.T) {
		for model, want := range map[string][]any{"lm-embed": {"embedding"}, "lm-chat": {"completion"}, "raw.gguf": {"completion"}} {
			resp, objs := ndjson(t, m, "/api/show", `{"model":"`+model+`"}`)
			require.Equal(t, http.StatusOK, resp.StatusCode, model)
			require.Len(t, objs, 1)
			assert.Equal(t, want, objs[0]["capabilities"], model)
		}
	})

	t.Run("raw goes untemplated to /v1/completions", func(t *testing.T) {
		resp, objs := ndjson(t, m, "/api/generate", `{"model":"raw.gguf","prompt":"<|im_start|>user\nhi","raw":true}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
		assert.Equal(t, simnode.Content(3), content(objs, "response"))
		assert.Equal(t, true, objs[len(objs)-1]["done"])
		assert.EqualValues(t, 3, objs[len(objs)-1]["eval_count"])

		_, objs = ndjson(t, m, "/api/generate", `{"model":"raw.gguf","prompt":"once","raw":true,"stream":false}`)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(3), objs[0]["response"])
		assert.EqualValues(t, 2, llama.Stats().Requests["POST /v1/completions"])
		assert.Zero(t, llama.Stats().Requests["POST /v1/chat/completions"], "never a templated chat")
	})

	t.Run("suffix where the kind takes it", func(t *testing.T) {
		resp, objs := ndjson(t, m, "/api/generate", `{"model":"coder","prompt":"def f():","suffix":"\nf()","stream":false}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(3), objs[0]["response"])
		assert.EqualValues(t, 1, fim.Stats().Requests["POST /v1/completions"])
	})

	t.Run("what a kind cannot honour is refused in Ollama's shape", func(t *testing.T) {
		for body, want := range map[string]string{
			`{"model":"raw.gguf","prompt":"a","suffix":"b"}`:                  "suffix is not supported on llamacpp nodes",
			`{"model":"lm-chat","prompt":"a","template":"{{ .Prompt }}"}`:     "template is not supported on lmstudio nodes",
			`{"model":"lm-chat","prompt":"a","context":[1,2],"stream":false}`: "context is not supported on lmstudio nodes",
		} {
			resp, objs := ndjson(t, m, "/api/generate", body)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
			require.Len(t, objs, 1, body)
			assert.Contains(t, objs[0]["error"], want, body)
		}
	})

	t.Run("aliases are in tags", func(t *testing.T) {
		var tags struct {
			Models []struct {
				Name, Digest string
				Size         int64
			} `json:"models"`
		}
		getJSON(t, m.RESTURL+"/api/tags", &tags)
		byName := map[string]int{}
		for i, mo := range tags.Models {
			byName[mo.Name] = i
		}
		require.Contains(t, byName, "default")
		assert.Equal(t, tags.Models[byName["lm-chat"]].Digest, tags.Models[byName["default"]].Digest, "the alias has its model's digest")
		_, objs := ndjson(t, m, "/api/chat", `{"model":"default","messages":[{"role":"user","content":"hi"}],"stream":false}`)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(3), objs[0]["message"].(map[string]any)["content"], "and it answers")
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// TestOllamaJSClient drives the Ollama edge with the official ollama npm
// client (tests/ollamajs; `make ollamajs` installs it from its lock file).
func TestOllamaJSClient(t *testing.T) {
	root, err := repo.Root()
	require.NoError(t, err)
	dir := filepath.Join(root, "tests", "ollamajs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ollama")); err != nil {
		t.Fatalf("the ollama npm client is not installed: run `make ollamajs` (npm ci in tests/ollamajs): %v", err)
	}
	nodeBin, err := exec.LookPath("node")
	require.NoError(t, err, "node is needed to run the ollama npm client")

	m, _, _, _ := ollamaMesh(t)
	ctx := meshtest.Context(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, nodeBin, "client.mjs", m.RESTURL, "shared", "embedder")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "client.mjs: %s", stderr.String())

	var got struct {
		Version string
		Chat    struct {
			Content, Role, DoneReason string `json:"-"`
			Done                      bool
			EvalCount                 int `json:"eval_count"`
			PromptEvalCount           int `json:"prompt_eval_count"`
		}
		ChatStream struct {
			Content       string
			Parts         int
			Done          bool
			EvalCount     int   `json:"eval_count"`
			TotalDuration int64 `json:"total_duration"`
		} `json:"chatStream"`
		Generate struct {
			Response  string
			Done      bool
			EvalCount int `json:"eval_count"`
		}
		GenerateStream string `json:"generateStream"`
		Tools          []struct {
			Name      string
			Arguments map[string]any
		}
		Embed struct{ Count, Dims int }
		List  []string
		PS    []string
		Show  struct {
			Capabilities []string
			Modelfile    string
		}
		Unknown struct {
			Status int
			Error  string
		}
	}
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	var raw map[string]map[string]any
	_ = json.Unmarshal(out, &raw)

	assert.NotEmpty(t, got.Version)
	assert.Equal(t, simnode.Content(3), raw["chat"]["content"], "num_predict reaches the node")
	assert.Equal(t, "length", raw["chat"]["done_reason"])
	assert.True(t, got.Chat.Done)
	assert.Equal(t, 3, got.Chat.EvalCount)
	assert.Equal(t, 2, got.Chat.PromptEvalCount)
	assert.Equal(t, simnode.Content(5), got.ChatStream.Content)
	assert.Equal(t, 6, got.ChatStream.Parts)
	assert.True(t, got.ChatStream.Done)
	assert.Equal(t, 5, got.ChatStream.EvalCount)
	assert.Positive(t, got.ChatStream.TotalDuration)
	assert.Equal(t, simnode.Content(5), got.Generate.Response)
	assert.Equal(t, 5, got.Generate.EvalCount)
	assert.Equal(t, simnode.Content(5), got.GenerateStream)
	require.Len(t, got.Tools, 1)
	assert.Equal(t, "get_weather", got.Tools[0].Name)
	assert.Equal(t, map[string]any{"query": "simnode"}, got.Tools[0].Arguments)
	assert.Equal(t, 2, got.Embed.Count)
	assert.Equal(t, simnode.DefaultEmbeddingDims, got.Embed.Dims)
	assert.Equal(t, []string{"alpha-only", "cloud-only", "embedder", "shared"}, got.List)
	assert.Equal(t, []string{"cloud-only", "shared"}, got.PS)
	assert.Contains(t, got.Show.Capabilities, "completion")
	assert.Contains(t, got.Show.Modelfile, "simnode shared")
	assert.Equal(t, 404, got.Unknown.Status)
	assert.Equal(t, "model 'no-such-model' not found", got.Unknown.Error)
}
