//go:build ollama

package ollama

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/llmesh/llmesh/tests/ollamatest"
)

// OPENAI_BASE_URL at a real Ollama's OpenAI API — how most people point a
// gateway at Ollama. The mesh recognises the server as Ollama, so the
// model named without its tag works through both edges, the Ollama edge
// passes /api/chat through, and /api/tags shows Ollama's sizes.
func TestOpenAIBaseURLAtRealOllama(t *testing.T) {
	o := ollamatest.Start(t, "ollama-a", ollamatest.Options{Models: []ollamatest.Model{{Name: "tiny"}}})
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{
		Env: []string{"OPENAI_BASE_URL=" + o.URL + "/v1", "OPENAI_API_KEY="}, NoModelWait: true})
	m.WaitModels(t, 1)
	client := sdk(m)

	t.Run("recognised as ollama", func(t *testing.T) {
		var v struct {
			Nodes []struct {
				ID         string `json:"id"`
				Kind       string `json:"kind"`
				KindSource string `json:"kind_source"`
				Reason     string `json:"reason"`
			} `json:"nodes"`
		}
		resp, err := http.Get(m.RouterAdminURL + "/debug/nodes")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		require.Len(t, v.Nodes, 1)
		assert.Equal(t, "openai", v.Nodes[0].ID)
		assert.Equal(t, "ollama", v.Nodes[0].Kind)
		assert.Equal(t, "recognized", v.Nodes[0].KindSource)
		assert.Contains(t, v.Nodes[0].Reason, "ollama 0.17.4")
	})

	t.Run("openai edge, model without its tag", func(t *testing.T) {
		ctx := meshtest.Context(t, time.Minute)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "tiny", Messages: user("hello"), MaxTokens: openai.Int(3), Seed: openai.Int(7),
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 1)
		assert.Equal(t, int64(3), resp.Usage.CompletionTokens)

		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "tiny", Messages: user("stream"), MaxTokens: openai.Int(3),
		})
		chunks := 0
		for stream.Next() {
			chunks++
		}
		require.NoError(t, stream.Err())
		assert.Positive(t, chunks)
	})

	t.Run("ollama edge, model without its tag", func(t *testing.T) {
		req, err := http.NewRequestWithContext(meshtest.Context(t, time.Minute), http.MethodPost, m.RESTURL+"/api/chat",
			strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":3,"seed":7}}`))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var last struct {
			Done      bool   `json:"done"`
			EvalCount int    `json:"eval_count"`
			Error     string `json:"error"`
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			require.NoError(t, json.Unmarshal(sc.Bytes(), &last), sc.Text())
			require.Empty(t, last.Error)
		}
		assert.True(t, last.Done)
		assert.Equal(t, 3, last.EvalCount, "Ollama's own count: the request reached /api/chat natively")
	})

	t.Run("/api/tags has Ollama's sizes and details", func(t *testing.T) {
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
		resp, err := http.Get(m.RESTURL + "/api/tags")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&tags))
		require.Len(t, tags.Models, 1)
		assert.Equal(t, "tiny:latest", tags.Models[0].Name)
		assert.Positive(t, tags.Models[0].Size)
		assert.Equal(t, "gguf", tags.Models[0].Details.Format)
		assert.Equal(t, "llama", tags.Models[0].Details.Family)
	})
}
