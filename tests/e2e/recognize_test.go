package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// debugNodes is GET /debug/nodes on the router's admin address, by id.
func debugNodes(t *testing.T, m *meshtest.Mesh) map[string]map[string]any {
	t.Helper()
	var v struct {
		Nodes []map[string]any `json:"nodes"`
	}
	getJSON(t, m.RouterAdminURL+"/debug/nodes", &v)
	out := map[string]map[string]any{}
	for _, n := range v.Nodes {
		id, _ := n["id"].(string)
		out[id] = n
	}
	return out
}

// TestOpenAIBaseURLAtOllama is the set-up most people start with:
// OPENAI_BASE_URL pointing at Ollama's OpenAI API. The node is recognised
// as Ollama, so a model named without its tag works on both edges, the
// Ollama edge passes requests through natively, and /api/tags shows the
// node's sizes and details.
func TestOpenAIBaseURLAtOllama(t *testing.T) {
	ol := meshtest.StartNode(t, "ollama-box", simnode.Config{Models: []string{"tiny:latest"}, Tokens: 3})
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Env: []string{"OPENAI_BASE_URL=" + ol.URL + "/v1", "OPENAI_API_KEY="},
		NoModelWait: true})
	m.WaitModels(t, 1)
	client := sdk(m)

	t.Run("recognised as ollama", func(t *testing.T) {
		n := debugNodes(t, m)["openai"]
		require.NotNil(t, n, "the OPENAI_BASE_URL node has id openai")
		assert.Equal(t, "ollama", n["kind"])
		assert.Equal(t, "recognized", n["kind_source"])
		assert.Positive(t, ol.Stats().Requests["GET /api/version"], "recognised by its /api/version")
		logs := strings.Join(m.Logs("healthmon"), "")
		assert.Equal(t, 1, strings.Count(logs, "node kind recognised"), "logged once:\n%s", logs)
		assert.Contains(t, logs, "kind=ollama")
	})

	t.Run("openai edge: the model without its tag", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "tiny", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		require.NoError(t, err)
		assert.Equal(t, simnode.Content(3), resp.Choices[0].Message.Content)

		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "tiny", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var got strings.Builder
		for stream.Next() {
			if ch := stream.Current().Choices; len(ch) > 0 {
				got.WriteString(ch[0].Delta.Content)
			}
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, simnode.Content(3), got.String())
	})

	t.Run("ollama edge: /api/chat passes through with the model without its tag", func(t *testing.T) {
		before := ol.Stats().Requests["POST /api/chat"]
		resp, objs := ndjson(t, m, "/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":false}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%v", objs)
		require.Len(t, objs, 1)
		assert.Equal(t, simnode.Content(3), content(objs, "message"))
		assert.Equal(t, before+1, ol.Stats().Requests["POST /api/chat"], "Ollama's native API, not a translation")
	})

	t.Run("ollama edge: /api/tags has the node's sizes and details", func(t *testing.T) {
		var tags struct {
			Models []struct {
				Name    string `json:"name"`
				Size    int64  `json:"size"`
				Details struct {
					Format string `json:"format"`
					Family string `json:"family"`
				} `json:"details"`
			} `json:"models"`
		}
		getJSON(t, m.RESTURL+"/api/tags", &tags)
		require.Len(t, tags.Models, 1)
		assert.Equal(t, "tiny:latest", tags.Models[0].Name)
		assert.Positive(t, tags.Models[0].Size)
		assert.Equal(t, "gguf", tags.Models[0].Details.Format)
		assert.NotEmpty(t, tags.Models[0].Details.Family)
	})
}

// TestKindAuto: nodes-file entries of kind auto, given as OpenAI-style
// API bases, are recognised as what they are — vLLM, llama-server, LM
// Studio — and probed as such; an explicit kind is left as it is.
func TestKindAuto(t *testing.T) {
	vllm := meshtest.StartNode(t, "vllm-1", simnode.Config{Flavor: "vllm", Models: []string{"Qwen/Qwen3-8B"}, Tokens: 3})
	llama := meshtest.StartNode(t, "llama-1", simnode.Config{Flavor: "llamacpp", Models: []string{"qwen2.5-0.5b.gguf"}, Tokens: 3, Slots: 2})
	lms := meshtest.StartNode(t, "lms-1", simnode.Config{Flavor: "lmstudio", Models: []string{"lm-chat"}, Loaded: []string{"lm-chat"}, Tokens: 3})
	explicit := meshtest.StartNode(t, "explicit", simnode.Config{Models: []string{"ex:latest"}, Tokens: 3})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{
		{ID: vllm.ID, URL: vllm.URL + "/v1", Models: vllm.ModelIDs, Kind: "auto"},
		{ID: llama.ID, URL: llama.URL + "/v1", Models: llama.ModelIDs, Kind: "auto"},
		{ID: lms.ID, URL: lms.URL + "/v1", Models: lms.ModelIDs, Kind: "auto"},
		{ID: explicit.ID, URL: explicit.URL + "/v1", Models: explicit.ModelIDs, Kind: "openai"},
	}, meshtest.Options{})

	nodes := debugNodes(t, m)
	for id, want := range map[string]string{"vllm-1": "vllm recognized", "llama-1": "llamacpp recognized", "lms-1": "lmstudio recognized",
		"explicit": "openai configured"} {
		assert.Equal(t, want, nodes[id]["kind"].(string)+" "+nodes[id]["kind_source"].(string), id)
	}
	assert.Positive(t, vllm.Stats().Requests["GET /metrics"], "probed as vLLM")
	assert.Positive(t, llama.Stats().Requests["GET /slots"], "probed as llama-server")
	assert.Zero(t, explicit.Stats().Requests["GET /api/version"], "an explicit kind is never second-guessed")

	client := sdk(m)
	_, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), openai.ChatCompletionNewParams{
		Model: "ex", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	require.Error(t, err, "an explicit openai node has no Ollama name rule")
}
