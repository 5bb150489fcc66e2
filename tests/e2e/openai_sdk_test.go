package e2e

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoNodes is the common topology: alpha and beta both serve "shared";
// each also serves a model of its own.
func twoNodes(t *testing.T) (*meshtest.Mesh, *meshtest.Node, *meshtest.Node) {
	alpha := meshtest.StartNode(t, "alpha", simnode.Config{Models: []string{"shared", "alpha-only"}, Tokens: 5})
	beta := meshtest.StartNode(t, "beta", simnode.Config{Models: []string{"shared", "beta-only"}, Tokens: 5})
	return meshtest.Start(t, bins, []*meshtest.Node{alpha, beta}, meshtest.Options{}), alpha, beta
}

func sdk(m *meshtest.Mesh) openai.Client {
	return openai.NewClient(option.WithBaseURL(m.RESTURL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func TestOpenAISDK(t *testing.T) {
	m, _, _ := twoNodes(t)
	client := sdk(m)

	t.Run("chat", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "alpha-only",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there")},
			Stop:     openai.ChatCompletionNewParamsStopUnion{OfString: openai.String("never")},
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 1)
		assert.Equal(t, "chat.completion", string(resp.Object))
		assert.Equal(t, simnode.Content(5), resp.Choices[0].Message.Content)
		assert.Equal(t, "assistant", string(resp.Choices[0].Message.Role))
		assert.Equal(t, "stop", resp.Choices[0].FinishReason)
		assert.Equal(t, "simnode-alpha", resp.SystemFingerprint, "alpha is the only node with alpha-only")
		assert.Equal(t, int64(5), resp.Usage.CompletionTokens)
		assert.Equal(t, int64(4), resp.Usage.PromptTokens, "four words")
		assert.Equal(t, int64(9), resp.Usage.TotalTokens)
	})

	t.Run("chat with array content and max_tokens", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "beta-only",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
				openai.TextContentPart("one two"), openai.TextContentPart("three"),
			})},
			MaxTokens: openai.Int(2),
			Stop:      openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"x", "y"}},
		})
		require.NoError(t, err)
		assert.Equal(t, simnode.Content(2), resp.Choices[0].Message.Content)
		assert.Equal(t, "length", resp.Choices[0].FinishReason)
		assert.Equal(t, "simnode-beta", resp.SystemFingerprint)
	})

	t.Run("chat streamed", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "shared",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream please")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		var chunks int
		var firstRole string
		for stream.Next() {
			c := stream.Current()
			if chunks == 0 && len(c.Choices) > 0 {
				firstRole = c.Choices[0].Delta.Role
			}
			chunks++
			acc.AddChunk(c)
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, "assistant", firstRole)
		require.Len(t, acc.Choices, 1)
		assert.Equal(t, simnode.Content(5), acc.Choices[0].Message.Content)
		assert.Equal(t, "stop", acc.Choices[0].FinishReason)
		assert.Equal(t, int64(5), acc.Usage.CompletionTokens)
		assert.Greater(t, acc.Usage.PromptTokens, int64(0))
		assert.Equal(t, 7, chunks, "5 content chunks, the finish chunk and the usage chunk")
	})

	t.Run("models", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		page, err := client.Models.List(ctx)
		require.NoError(t, err)
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
			assert.Equal(t, "model", string(m.Object))
		}
		assert.Equal(t, []string{"alpha-only", "beta-only", "shared"}, ids)
	})

	t.Run("embeddings", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		one, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "shared", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
		})
		require.NoError(t, err)
		require.Len(t, one.Data, 1)
		assert.Equal(t, simnode.Embedding("shared", "hello", simnode.DefaultEmbeddingDims), toFloat32(one.Data[0].Embedding))

		many, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "shared", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b", "c"}},
		})
		require.NoError(t, err)
		require.Len(t, many.Data, 3)
		for i, d := range many.Data {
			assert.Equal(t, int64(i), d.Index)
		}
		assert.Equal(t, simnode.Embedding("shared", "c", simnode.DefaultEmbeddingDims), toFloat32(many.Data[2].Embedding))

		b64, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "shared", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
			EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
		})
		require.NoError(t, err)
		require.Len(t, b64.Data, 1)
		assert.Equal(t, simnode.Embedding("shared", "hello", simnode.DefaultEmbeddingDims), toFloat32(b64.Data[0].Embedding))
	})

	t.Run("unknown model is 404", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "no-such-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "got %v", err)
		assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		assert.Contains(t, apiErr.Message, "no-such-model")
		assert.Equal(t, "invalid_request_error", apiErr.Type)
		assert.Equal(t, "model", apiErr.Param)
		assert.Equal(t, "model_not_found", apiErr.Code)
	})
}

func toFloat32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = float32(f)
	}
	return out
}

func TestNodeDownIs503NamingTheNode(t *testing.T) {
	solo := meshtest.StartNode(t, "solo", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{solo}, meshtest.Options{})
	solo.Kill()

	ctx := meshtest.Context(t, 10*time.Second)
	client := sdk(m)
	_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "solo")
	assert.Contains(t, apiErr.Message, "connection refused")
	assert.False(t, strings.Contains(apiErr.Message, "http://"), "no URLs in client-facing errors: %s", apiErr.Message)
}
