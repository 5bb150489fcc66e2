package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

// richRequest sets every field of a chat request, in every union form.
func richRequest(t testing.TB) *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{
		Model: "llama3.1:70b",
		Messages: []*openaiv1.ChatMessage{
			{Role: "system", Content: textContent("You are terse.\nAnswer in \"JSON\".")},
			{Role: "user", Name: "ann", Content: partsContent(
				&openaiv1.ContentPart{Type: "text", Text: "What is in this image? ✓"},
				&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "data:image/png;base64,iVBORw0KGgo=", Detail: "low"}},
				&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Data: "UklGRg==", Format: "wav"}},
			)},
			{Role: "assistant", Refusal: "r", ToolCalls: []*openaiv1.ToolCall{
				{Id: "call_1", Type: "function", Function: &openaiv1.FunctionCall{Name: "get_weather", Arguments: `{"city":"Oslo"}`}},
				{Id: "call_2", Type: "function", Function: &openaiv1.FunctionCall{Name: "noop"}},
			}},
			{Role: "tool", ToolCallId: "call_1", Content: textContent("")},
		},
		Stream:              true,
		StreamOptions:       &openaiv1.StreamOptions{IncludeUsage: true},
		MaxTokens:           proto.Int32(0),
		MaxCompletionTokens: proto.Int32(4096),
		Temperature:         proto.Float64(0.7),
		TopP:                proto.Float64(1),
		N:                   proto.Int32(1),
		Stop:                []string{"\n\n", "END"},
		Seed:                proto.Int64(-9007199254740993),
		PresencePenalty:     proto.Float64(-1.5e-7),
		FrequencyPenalty:    proto.Float64(0.1),
		ResponseFormat: &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{
			Name: "weather", Description: "d", Strict: proto.Bool(true),
			SchemaJson: `{"type":"object","properties":{"t":{"type":"number","minimum":-273.15}},"required":["t"],"nullable":null}`,
		}},
		Tools: []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{
			Name: "get_weather", Description: "Current weather", Strict: proto.Bool(false),
			ParametersJson: `{"type":"object","properties":{}}`,
		}}},
		ToolChoice:        &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "get_weather"}},
		User:              "user-1",
		Logprobs:          proto.Bool(false),
		TopLogprobs:       proto.Int32(0),
		LogitBias:         map[string]float64{"50256": -100, "1": 0.5},
		ParallelToolCalls: proto.Bool(true),
		ReasoningEffort:   "high",
	}
}

// roundTrip encodes in, decodes the bytes into out and checks out equals in.
func roundTrip(t *testing.T, in, out proto.Message) {
	t.Helper()
	b, err := Marshal(in)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if err := Unmarshal(b, out); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	assertProtoEqual(t, out, in)
}

func TestRoundTrip(t *testing.T) {
	t.Run("rich request", func(t *testing.T) {
		roundTrip(t, richRequest(t), &openaiv1.ChatCompletionRequest{})
	})
	t.Run("tool choice mode", func(t *testing.T) {
		roundTrip(t, &openaiv1.ChatCompletionRequest{ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "none"}}},
			&openaiv1.ChatCompletionRequest{})
	})
	t.Run("chunk", func(t *testing.T) {
		c := &openaiv1.ChatCompletionChunk{
			Id: "chatcmpl-1", Object: "chat.completion.chunk", Created: 1730000000, Model: "m", SystemFingerprint: "fp", ServiceTier: "default",
			Choices: []*openaiv1.ChunkChoice{
				{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: proto.String("")}},
				{Index: 1, Delta: &openaiv1.ChunkDelta{Refusal: proto.String("no"), ToolCalls: []*openaiv1.ToolCall{
					{Index: 0, Id: "call_1", Type: "function", Function: &openaiv1.FunctionCall{Name: "f", Arguments: `{"a":`}},
					{Index: 1, Function: &openaiv1.FunctionCall{Arguments: "1}"}},
				}}, FinishReason: "tool_calls", Logprobs: &openaiv1.Logprobs{
					Content: []*openaiv1.TokenLogprob{{Token: "x", Logprob: -0.25, Bytes: []int32{120}, TopLogprobs: []*openaiv1.TopLogprob{{Token: "y", Logprob: -3}}}},
					Refusal: []*openaiv1.TokenLogprob{{Token: "no", Logprob: -1e-9}},
				}},
			},
			Usage: &openaiv1.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3},
		}
		roundTrip(t, c, &openaiv1.ChatCompletionChunk{})
	})
	t.Run("completion", func(t *testing.T) {
		c := &openaiv1.ChatCompletion{
			Id: "chatcmpl-1", Object: "chat.completion", Created: 1, Model: "m",
			Choices: []*openaiv1.ChatCompletionChoice{{
				Message: &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String("hi"), ToolCalls: []*openaiv1.ToolCall{
					{Id: "c", Type: "function", Function: &openaiv1.FunctionCall{Name: "f", Arguments: "{}"}},
				}},
				FinishReason: "stop",
			}},
			Usage: &openaiv1.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3},
		}
		roundTrip(t, c, &openaiv1.ChatCompletion{})
	})
	t.Run("embedding list", func(t *testing.T) {
		l := &openaiv1.EmbeddingList{Object: "list", Model: "m",
			Data:  []*openaiv1.Embedding{{Object: "embedding", Index: 0, Embedding: []float32{0.1, 0.2, 0.30000001, -1e-20, 3.4028235e38}}},
			Usage: &openaiv1.EmbeddingUsage{PromptTokens: 3, TotalTokens: 3},
		}
		roundTrip(t, l, &openaiv1.EmbeddingList{})
	})
}
