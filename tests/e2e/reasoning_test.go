package e2e

import (
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"testing"
	"time"

	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Thinking models behind the mesh: an Ollama node sends its reasoning as
// "reasoning", a vLLM node as "reasoning_content"; the official SDK reads
// reasoning_content (an extra field to it) from both, whole or streamed.
func TestReasoningThroughTheSDK(t *testing.T) {
	ollama := meshtest.StartNode(t, "ollama-thinker", simnode.Config{Models: []string{"qwen3"}, Tokens: 2, ReasoningTokens: 3})
	vllm := meshtest.StartNode(t, "vllm-thinker", simnode.Config{Flavor: "vllm", Models: []string{"deepseek-r1"}, Tokens: 2, ReasoningTokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{ollama, vllm}, meshtest.Options{})
	client := sdk(m)
	want := strconv.Quote(simnode.Reasoning(3))

	for _, model := range []string{"qwen3", "deepseek-r1"} {
		t.Run(model+" plain", func(t *testing.T) {
			ctx := meshtest.Context(t, 10*time.Second)
			resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("2+2?")},
			})
			require.NoError(t, err)
			msg := resp.Choices[0].Message
			assert.Equal(t, simnode.Content(2), msg.Content)
			assert.Equal(t, want, msg.JSON.ExtraFields["reasoning_content"].Raw())
			assert.Equal(t, want, msg.JSON.ExtraFields["reasoning"].Raw(), "also under Ollama's name")
			assert.Equal(t, int64(5), resp.Usage.CompletionTokens)
			assert.Equal(t, int64(3), resp.Usage.CompletionTokensDetails.ReasoningTokens)
		})
		t.Run(model+" streamed", func(t *testing.T) {
			ctx := meshtest.Context(t, 10*time.Second)
			stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("2+2?")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var reasoning, content string
			var usage openai.CompletionUsage
			for stream.Next() {
				c := stream.Current()
				if c.JSON.Usage.Valid() {
					usage = c.Usage
				}
				for _, ch := range c.Choices {
					if f, ok := ch.Delta.JSON.ExtraFields["reasoning_content"]; ok {
						s, err := strconv.Unquote(f.Raw())
						require.NoError(t, err)
						assert.Empty(t, content, "reasoning comes before the answer")
						reasoning += s
					}
					content += ch.Delta.Content
				}
			}
			require.NoError(t, stream.Err())
			assert.Equal(t, simnode.Reasoning(3), reasoning)
			assert.Equal(t, simnode.Content(2), content)
			assert.Equal(t, int64(3), usage.CompletionTokensDetails.ReasoningTokens)
		})
	}

	t.Run("native gRPC", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		grpcClient := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr))
		resp, err := grpcClient.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: userChat("qwen3")})
		require.NoError(t, err)
		assert.Equal(t, simnode.Reasoning(3), resp.GetCompletion().GetChoices()[0].GetMessage().GetReasoningContent())
		assert.EqualValues(t, 3, resp.GetCompletion().GetUsage().GetCompletionTokensDetails().GetReasoningTokens())
		stream, err := grpcClient.StreamChatCompletion(ctx, &routerv1.StreamChatCompletionRequest{Request: userChat("deepseek-r1")})
		require.NoError(t, err)
		var reasoning string
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			for _, ch := range r.GetChunk().GetChoices() {
				reasoning += ch.GetDelta().GetReasoningContent()
			}
		}
		assert.Equal(t, simnode.Reasoning(3), reasoning)
	})

	// Ollama ignores n: the adapter fans the request out.
	t.Run("n on an ollama node", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "qwen3", N: openai.Int(3), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 3)
		for i, ch := range resp.Choices {
			assert.Equal(t, int64(i), ch.Index)
			assert.Equal(t, simnode.Content(2), ch.Message.Content)
		}
		assert.Equal(t, int64(15), resp.Usage.CompletionTokens, "usage of the three answers")

		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "qwen3", N: openai.Int(2), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		texts := map[int64]string{}
		for stream.Next() {
			for _, ch := range stream.Current().Choices {
				texts[ch.Index] += ch.Delta.Content
			}
		}
		require.NoError(t, stream.Err())
		var idx []int
		for i, text := range texts {
			idx = append(idx, int(i))
			assert.Equal(t, simnode.Content(2), text)
		}
		sort.Ints(idx)
		assert.Equal(t, []int{0, 1}, idx)
	})

	t.Run("deprecated functions are refused", func(t *testing.T) {
		ctx := meshtest.Context(t, 10*time.Second)
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "qwen3", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			Functions: []openai.ChatCompletionNewParamsFunction{{Name: "f"}},
		})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		assert.Equal(t, "functions", apiErr.Param)
		assert.Contains(t, apiErr.Message, "use tools")
	})
}
