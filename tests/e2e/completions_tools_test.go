package e2e

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLegacyCompletions(t *testing.T) {
	m, _, _ := twoNodes(t)
	client := sdk(m)

	t.Run("plain, one prompt", func(t *testing.T) {
		resp, err := client.Completions.New(meshtest.Context(t, 10*time.Second), openai.CompletionNewParams{
			Model:  "alpha-only",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon a time")},
		})
		require.NoError(t, err)
		assert.Equal(t, "text_completion", string(resp.Object))
		require.Len(t, resp.Choices, 1)
		assert.Equal(t, simnode.Content(5), resp.Choices[0].Text)
		assert.Equal(t, "stop", string(resp.Choices[0].FinishReason))
		assert.Equal(t, "simnode-alpha", resp.SystemFingerprint)
		assert.Equal(t, int64(4), resp.Usage.PromptTokens)
		assert.Equal(t, int64(5), resp.Usage.CompletionTokens)
	})

	t.Run("plain, array of prompts and max_tokens", func(t *testing.T) {
		resp, err := client.Completions.New(meshtest.Context(t, 10*time.Second), openai.CompletionNewParams{
			Model:     "shared",
			Prompt:    openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"a", "b c"}},
			MaxTokens: openai.Int(2),
		})
		require.NoError(t, err)
		require.Len(t, resp.Choices, 2)
		for i, c := range resp.Choices {
			assert.Equal(t, int64(i), c.Index)
			assert.Equal(t, simnode.Content(2), c.Text)
			assert.Equal(t, "length", string(c.FinishReason))
		}
		assert.Equal(t, int64(4), resp.Usage.CompletionTokens)
	})

	t.Run("streamed with usage", func(t *testing.T) {
		stream := client.Completions.NewStreaming(meshtest.Context(t, 10*time.Second), openai.CompletionNewParams{
			Model:         "beta-only",
			Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("go")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var text strings.Builder
		var finish string
		var usage openai.CompletionUsage
		chunks := 0
		for stream.Next() {
			c := stream.Current()
			chunks++
			for _, ch := range c.Choices {
				text.WriteString(ch.Text)
				if ch.FinishReason != "" {
					finish = string(ch.FinishReason)
				}
			}
			if c.Usage.TotalTokens > 0 {
				usage = c.Usage
			}
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, simnode.Content(5), text.String())
		assert.Equal(t, "stop", finish)
		assert.GreaterOrEqual(t, chunks, 6, "one chunk per token, then the finish chunk")
		assert.Equal(t, int64(5), usage.CompletionTokens)
	})

	t.Run("raw stream framing ends with DONE", func(t *testing.T) {
		resp, err := http.Post(m.RESTURL+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"shared","prompt":"x","stream":true,"max_tokens":1}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		assert.True(t, strings.HasSuffix(string(body), "data: [DONE]\n\n"), string(body))
		assert.Contains(t, string(body), `"object":"text_completion"`)
	})

	t.Run("errors", func(t *testing.T) {
		_, err := client.Completions.New(meshtest.Context(t, 10*time.Second), openai.CompletionNewParams{
			Model: "nope", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")},
		})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		assert.Equal(t, "model_not_found", apiErr.Code)

		for body, want := range map[string]string{
			`{"model":"shared"}`:                  "prompt",
			`{"model":"shared","prompt":[1,2,3]}`: "token ids",
			`{"model":"shared","prompt":7}`:       "prompt",
		} {
			resp, err := http.Post(m.RESTURL+"/v1/completions", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
			assert.Contains(t, string(b), want, body)
			assert.Contains(t, string(b), `"type":"invalid_request_error"`, body)
		}
	})
}

func TestGetModel(t *testing.T) {
	m, _, _ := twoNodes(t)
	client := sdk(m)
	ctx := meshtest.Context(t, 10*time.Second)

	got, err := client.Models.Get(ctx, "alpha-only")
	require.NoError(t, err)
	assert.Equal(t, "alpha-only", got.ID)
	assert.Equal(t, "model", string(got.Object))
	assert.Equal(t, "library", got.OwnedBy)

	_, err = client.Models.Get(ctx, "missing")
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
	assert.Equal(t, "model_not_found", apiErr.Code)
	assert.Contains(t, apiErr.Message, "missing")
}

// toolParams asks for a chat with one tool.
func toolParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what is the weather?")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:        "get_weather",
			Description: openai.String("weather by city"),
			Parameters: openai.FunctionParameters{"type": "object",
				"properties": map[string]any{"query": map[string]any{"type": "string"}}},
		})},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")},
	}
}

func TestToolCalls(t *testing.T) {
	m, _, _ := twoNodes(t)
	client := sdk(m)

	t.Run("plain", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), toolParams("alpha-only"))
		require.NoError(t, err)
		require.Len(t, resp.Choices, 1)
		assert.Equal(t, "tool_calls", resp.Choices[0].FinishReason)
		calls := resp.Choices[0].Message.ToolCalls
		require.Len(t, calls, 1)
		assert.NotEmpty(t, calls[0].ID)
		assert.Equal(t, "get_weather", calls[0].Function.Name)
		assert.JSONEq(t, simnode.ToolArguments, calls[0].Function.Arguments)
	})

	t.Run("streamed deltas", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(meshtest.Context(t, 10*time.Second), toolParams("shared"))
		var acc openai.ChatCompletionAccumulator
		fragments := 0
		for stream.Next() {
			c := stream.Current()
			acc.AddChunk(c)
			for _, ch := range c.Choices {
				for _, tc := range ch.Delta.ToolCalls {
					fragments++
					assert.Equal(t, int64(0), tc.Index)
				}
			}
		}
		require.NoError(t, stream.Err())
		assert.Equal(t, 3, fragments, "the head and two argument fragments arrive as the node sent them")
		require.Len(t, acc.Choices, 1)
		assert.Equal(t, "tool_calls", acc.Choices[0].FinishReason)
		require.Len(t, acc.Choices[0].Message.ToolCalls, 1)
		assert.Equal(t, "get_weather", acc.Choices[0].Message.ToolCalls[0].Function.Name)
		assert.JSONEq(t, simnode.ToolArguments, acc.Choices[0].Message.ToolCalls[0].Function.Arguments)
	})

	t.Run("the tool's result goes back and the model answers", func(t *testing.T) {
		p := toolParams("beta-only")
		p.Messages = append(p.Messages,
			openai.ChatCompletionMessageParamUnion{OfAssistant: &openai.ChatCompletionAssistantMessageParam{
				ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID: "call_1", Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "get_weather", Arguments: simnode.ToolArguments},
				}}},
			}},
			openai.ToolMessage("sunny", "call_1"))
		resp, err := client.Chat.Completions.New(meshtest.Context(t, 10*time.Second), p)
		require.NoError(t, err)
		assert.Equal(t, "stop", resp.Choices[0].FinishReason)
		assert.Equal(t, simnode.Content(5), resp.Choices[0].Message.Content)
	})
}
