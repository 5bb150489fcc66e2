package e2e

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/services/simnode/anthropicsim"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
)

// TestNodeKinds runs the mesh in front of one simulated node of each
// local kind — vLLM, llama-server, LM Studio, Ollama — each probed its
// own way, and chats with each through the OpenAI SDK.
func TestNodeKinds(t *testing.T) {
	vllm := meshtest.StartNode(t, "vllm-1", simnode.Config{Flavor: "vllm", Models: []string{"Qwen/Qwen3-8B"}, Tokens: 3})
	llama := meshtest.StartNode(t, "llama-1", simnode.Config{Flavor: "llamacpp", Models: []string{"qwen2.5-0.5b.gguf"}, Tokens: 3, Slots: 2})
	lms := meshtest.StartNode(t, "lms-1", simnode.Config{Flavor: "lmstudio", Models: []string{"lm-chat", "lm-embed"},
		EmbeddingModels: []string{"lm-embed"}, Loaded: []string{"lm-chat"}, Tokens: 3})
	ol := meshtest.StartNode(t, "ollama-1", simnode.Config{Models: []string{"ol-chat", "nomic-embed-text"},
		EmbeddingModels: []string{"nomic-embed-text"}, Tokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{vllm, llama, lms, ol}, meshtest.Options{})
	client := sdk(m)

	for model, node := range map[string]string{"Qwen/Qwen3-8B": "vllm-1", "qwen2.5-0.5b.gguf": "llama-1", "lm-chat": "lms-1", "ol-chat": "ollama-1"} {
		t.Run("chat "+node, func(t *testing.T) {
			ctx := meshtest.Context(t, 10*time.Second)
			resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			require.NoError(t, err)
			assert.Equal(t, simnode.Content(3), resp.Choices[0].Message.Content)
			assert.Equal(t, "simnode-"+node, resp.SystemFingerprint)
		})
	}

	t.Run("the probes ask each kind its own way", func(t *testing.T) {
		assert.Positive(t, vllm.Stats().Requests["GET /health"])
		assert.Positive(t, vllm.Stats().Requests["GET /metrics"])
		assert.Positive(t, llama.Stats().Requests["GET /slots"])
		assert.Positive(t, lms.Stats().Requests["GET /api/v0/models"])
		assert.Positive(t, ol.Stats().Requests["POST /api/show"])
		for _, n := range []*meshtest.Node{vllm, llama, lms, ol} {
			assert.Zero(t, n.Stats().Requests["POST /v1/chat/completions"]-1, "%s: the one chat above, never a probe", n.ID)
		}
	})

	t.Run("embedding-only models refuse chat and embed", func(t *testing.T) {
		for _, model := range []string{"lm-embed", "nomic-embed-text"} {
			ctx := meshtest.Context(t, 10*time.Second)
			_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			var apiErr *openai.Error
			require.True(t, errors.As(err, &apiErr), "got %v", err)
			assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
			assert.Contains(t, apiErr.Message, "embedding model")
			emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
			})
			require.NoError(t, err)
			assert.Len(t, emb.Data, 1)
		}
	})

	t.Run("a llama-server loading its model is out, not dead", func(t *testing.T) {
		llama.SetFaults(simnode.Faults{Loading: true})
		var apiErr *openai.Error
		require.Eventually(t, func() bool {
			_, err := client.Chat.Completions.New(meshtest.Context(t, 5*time.Second), openai.ChatCompletionNewParams{
				Model: "qwen2.5-0.5b.gguf", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			return errors.As(err, &apiErr) && strings.Contains(apiErr.Message, "llama-1: loading")
		}, 10*time.Second, 50*time.Millisecond)
		assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)

		llama.SetFaults(simnode.Faults{})
		require.Eventually(t, func() bool {
			_, err := client.Chat.Completions.New(meshtest.Context(t, 5*time.Second), openai.ChatCompletionNewParams{
				Model: "qwen2.5-0.5b.gguf", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			return err == nil
		}, 10*time.Second, 50*time.Millisecond)
	})
}

const (
	anthropicKey    = "sk-ant-e2e-planted-key-0451"
	anthropicBadKey = "sk-ant-e2e-revoked-key-0452"
)

// TestAnthropicKind puts a (simulated) Anthropic API behind the mesh and
// uses a Claude model through the OpenAI SDK: chat, stream with usage,
// tool calls, an overloaded API, and a node whose key is refused.
func TestAnthropicKind(t *testing.T) {
	serve := func(cfg anthropicsim.Config) (*anthropicsim.Server, string) {
		sim, err := anthropicsim.New(cfg)
		require.NoError(t, err)
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		return sim, srv.URL
	}
	sim, simURL := serve(anthropicsim.Config{Models: []string{"claude-sonnet-4-5", "claude-haiku-4-5"}, APIKey: anthropicKey, Tokens: 4, PageSize: 1})
	_, badURL := serve(anthropicsim.Config{Models: []string{"claude-opus-4-1"}, APIKey: "some-other-key"})
	m := meshtest.StartRefs(t, bins, []meshtest.NodeRef{
		{ID: "claude", URL: simURL, Kind: "anthropic", APIKeyEnv: "E2E_ANTHROPIC_KEY", Models: []string{"claude-sonnet-4-5", "claude-haiku-4-5"}},
		{ID: "claude-bad", URL: badURL, Kind: "anthropic", APIKeyEnv: "E2E_ANTHROPIC_BAD_KEY"},
	}, meshtest.Options{Env: []string{"E2E_ANTHROPIC_KEY=" + anthropicKey, "E2E_ANTHROPIC_BAD_KEY=" + anthropicBadKey}})
	client := sdk(m)
	user := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there")}

	t.Run("chat", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), openai.ChatCompletionNewParams{
			Model: "claude-sonnet-4-5", Messages: user, Temperature: openai.Float(0.2),
		})
		require.NoError(t, err)
		assert.Equal(t, "t0 t1 t2 t3 ", resp.Choices[0].Message.Content)
		assert.Equal(t, "stop", resp.Choices[0].FinishReason)
		assert.Equal(t, "claude-sonnet-4-5", resp.Model)
		assert.Equal(t, int64(4), resp.Usage.CompletionTokens)
		assert.Equal(t, int64(4), resp.Usage.PromptTokens, "be brief hello there")
		body := sim.LastRequest().Body
		assert.Equal(t, "be brief", body["system"])
		assert.EqualValues(t, 4096, body["max_tokens"], "the Messages API needs max_tokens; the mesh defaults it")
	})

	t.Run("stream with usage", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(meshtest.Context(t, 10*time.Second), openai.ChatCompletionNewParams{
			Model: "claude-haiku-4-5", Messages: user, MaxTokens: openai.Int(3),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, "t0 t1 t2 ", acc.Choices[0].Message.Content)
		assert.Equal(t, "length", acc.Choices[0].FinishReason)
		assert.Equal(t, int64(3), acc.Usage.CompletionTokens)
		assert.Equal(t, int64(7), acc.Usage.TotalTokens)
	})

	t.Run("tool calls", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model:    "claude-sonnet-4-5",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("search for it")},
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name: "search", Description: openai.String("search the web"),
				Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}},
			})},
		}
		resp, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), params)
		require.NoError(t, err)
		require.Len(t, resp.Choices[0].Message.ToolCalls, 1)
		call := resp.Choices[0].Message.ToolCalls[0]
		assert.Equal(t, "tool_calls", resp.Choices[0].FinishReason)
		assert.Equal(t, "search", call.Function.Name)
		assert.JSONEq(t, `{"query":"t0"}`, call.Function.Arguments)

		stream := client.Chat.Completions.NewStreaming(meshtest.Context(t, 10*time.Second), params)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		require.NoError(t, stream.Err())
		require.Len(t, acc.Choices[0].Message.ToolCalls, 1)
		assert.JSONEq(t, `{"query":"t0"}`, acc.Choices[0].Message.ToolCalls[0].Function.Arguments)

		params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage("sunny", call.ID))
		resp, err = client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), params)
		require.NoError(t, err)
		assert.Equal(t, "t0 t1 t2 t3 ", resp.Choices[0].Message.Content)
	})

	t.Run("overloaded is 503", func(t *testing.T) {
		sim.SetFaults(anthropicsim.Faults{Status: 529})
		defer sim.SetFaults(anthropicsim.Faults{})
		_, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), openai.ChatCompletionNewParams{Model: "claude-sonnet-4-5", Messages: user})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "got %v", err)
		assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
		assert.Contains(t, apiErr.Message, "Overloaded")
	})

	t.Run("a refused key is misconfigured, and the 503 says so", func(t *testing.T) {
		var apiErr *openai.Error
		require.Eventually(t, func() bool { // until healthmon has probed claude-bad
			_, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), openai.ChatCompletionNewParams{Model: "claude-opus-4-1", Messages: user})
			return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusServiceUnavailable
		}, 10*time.Second, 20*time.Millisecond)
		assert.Contains(t, apiErr.Message, "claude-bad: misconfigured: 401 from "+badURL+"/v1/models: invalid API key (invalid x-api-key) — check E2E_ANTHROPIC_BAD_KEY")
		assert.NotContains(t, apiErr.Message, anthropicBadKey)
	})

	t.Run("keys never reach a log", func(t *testing.T) {
		for _, svc := range []string{"router", "adapter", "healthmon"} {
			logs := strings.Join(m.Logs(svc), "\n")
			assert.NotContains(t, logs, anthropicKey, svc)
			assert.NotContains(t, logs, anthropicBadKey, svc)
		}
	})
}
