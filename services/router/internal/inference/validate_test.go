package inference

import (
	"context"
	"strings"
	"testing"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

func text(s string) *openaiv1.MessageContent {
	return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: s}}
}

func parts(ps ...*openaiv1.ContentPart) *openaiv1.MessageContent {
	return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{Parts: &openaiv1.ContentParts{Parts: ps}}}
}

func call(id, typ, name string) *openaiv1.ToolCall {
	return &openaiv1.ToolCall{Id: id, Type: typ, Function: &openaiv1.FunctionCall{Name: name, Arguments: "{}"}}
}

func weatherTool() []*openaiv1.Tool {
	return []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "weather"}}}
}

// assertInvalid checks that err is INVALID_ARGUMENT invalid_request_error
// naming param.
func assertInvalid(t *testing.T, err error, param string) {
	t.Helper()
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.InvalidArgument, e.Code, e.Message)
	assert.Equal(t, param, e.Param, e.Message)
	assert.Equal(t, "invalid_request_error", e.Type)
	assert.Less(t, len(e.Message), 300, "the message quotes at most a prefix of the client's value")
}

// What OpenAI refuses in a chat never reaches a node: messages without
// the content their role needs, malformed tool calls and tools, and
// options out of OpenAI's ranges — on both chat RPCs (REST and gRPC come
// through them).
func TestChatRequestSchema(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	cases := []struct {
		name      string
		mutate    func(r *openaiv1.ChatCompletionRequest)
		wantParam string
	}{
		{"user content null", func(r *openaiv1.ChatCompletionRequest) { r.Messages[0].Content = nil }, "messages[0].content"},
		{"user content oneof unset (gRPC)", func(r *openaiv1.ChatCompletionRequest) { r.Messages[0].Content = &openaiv1.MessageContent{} }, "messages[0].content"},
		{"system content null", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append([]*openaiv1.ChatMessage{{Role: "system"}}, r.Messages...)
		}, "messages[0].content"},
		{"empty parts array", func(r *openaiv1.ChatCompletionRequest) { r.Messages[0].Content = parts() }, "messages[0].content"},
		{"image part without url", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages[0].Content = parts(&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{}})
		}, "messages[0].content[0].image_url.url"},
		{"image detail unknown", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages[0].Content = parts(&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "https://x", Detail: huge}})
		}, "messages[0].content[0].image_url.detail"},
		{"audio format unknown", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages[0].Content = parts(&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Data: "UklG", Format: "ogg"}})
		}, "messages[0].content[0].input_audio.format"},
		{"audio without data", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages[0].Content = parts(&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Format: "wav"}})
		}, "messages[0].content[0].input_audio.data"},
		{"image in a system message", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append([]*openaiv1.ChatMessage{{Role: "system", Content: parts(&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "https://x"}})}}, r.Messages...)
		}, "messages[0].content[0].type"},
		{"assistant with nothing", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "assistant"})
		}, "messages[1].content"},
		{"tool call without id", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{call("", "function", "f")}})
		}, "messages[1].tool_calls[0].id"},
		{"tool call of another type", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{call("c", huge, "f")}})
		}, "messages[1].tool_calls[0].type"},
		{"tool call without a name", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Id: "c", Type: "function"}}})
		}, "messages[1].tool_calls[0].function.name"},
		{"tool calls on a user message", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages[0].ToolCalls = []*openaiv1.ToolCall{call("c", "function", "f")}
		}, "messages[0].tool_calls"},
		{"tool message without tool_call_id", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "tool", Content: text("42")})
		}, "messages[1].tool_call_id"},
		{"tool message without content", func(r *openaiv1.ChatCompletionRequest) {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "tool", ToolCallId: "c"})
		}, "messages[1].content"},
		{"top_logprobs negative", func(r *openaiv1.ChatCompletionRequest) {
			r.Logprobs, r.TopLogprobs = new(true), i32(-1)
		}, "top_logprobs"},
		{"top_logprobs above 20", func(r *openaiv1.ChatCompletionRequest) {
			r.Logprobs, r.TopLogprobs = new(true), i32(21)
		}, "top_logprobs"},
		{"top_logprobs without logprobs", func(r *openaiv1.ChatCompletionRequest) { r.TopLogprobs = i32(2) }, "top_logprobs"},
		{"five stop sequences", func(r *openaiv1.ChatCompletionRequest) { r.Stop = []string{"a", "b", "c", "d", "e"} }, "stop"},
		{"logit_bias key not a token id", func(r *openaiv1.ChatCompletionRequest) { r.LogitBias = map[string]float64{huge: 1} }, "logit_bias"},
		{"logit_bias value above 100", func(r *openaiv1.ChatCompletionRequest) { r.LogitBias = map[string]float64{"50256": 101} }, "logit_bias"},
		{"tool of another type", func(r *openaiv1.ChatCompletionRequest) {
			r.Tools = []*openaiv1.Tool{{Type: "retrieval", Function: &openaiv1.FunctionDefinition{Name: "f"}}}
		}, "tools[0].type"},
		{"tool without a name", func(r *openaiv1.ChatCompletionRequest) {
			r.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{}}}
		}, "tools[0].function.name"},
		{"tool name with spaces", func(r *openaiv1.ChatCompletionRequest) {
			r.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "get weather"}}}
		}, "tools[0].function.name"},
		{"parallel_tool_calls without tools", func(r *openaiv1.ChatCompletionRequest) { r.ParallelToolCalls = new(false) }, "parallel_tool_calls"},
		{"response_format of another type", func(r *openaiv1.ChatCompletionRequest) {
			r.ResponseFormat = &openaiv1.ResponseFormat{Type: huge}
		}, "response_format.type"},
		{"json_schema without a name", func(r *openaiv1.ChatCompletionRequest) {
			r.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{SchemaJson: `{}`}}
		}, "response_format.json_schema.name"},
		{"json_schema missing", func(r *openaiv1.ChatCompletionRequest) {
			r.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema"}
		}, "response_format.json_schema"},
		{"a huge role is clipped", func(r *openaiv1.ChatCompletionRequest) { r.Messages[0].Role = huge }, "messages[0].role"},
		{"a huge tool_choice is clipped", func(r *openaiv1.ChatCompletionRequest) {
			r.Tools = weatherTool()
			r.ToolChoice = &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: huge}}
		}, "tool_choice"},
	}
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := validChat()
			tc.mutate(req)
			_, err := c.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
			assertInvalid(t, err, tc.wantParam)
			assertInvalid(t, streamErr(ctx, c, req), tc.wantParam)
		})
	}
	assert.Zero(t, fake.calls(), "an invalid request never reaches a node")

	t.Run("what OpenAI accepts passes", func(t *testing.T) {
		req := validChat()
		req.Messages = []*openaiv1.ChatMessage{
			{Role: "developer", Content: parts(&openaiv1.ContentPart{Type: "text", Text: "be brief"})},
			{Role: "user", Content: parts(&openaiv1.ContentPart{Type: "text", Text: "what is this?"},
				&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "data:image/png;base64,iVBO", Detail: "low"}},
				&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Data: "UklG", Format: "wav"}})},
			{Role: "assistant", Content: nil, ToolCalls: []*openaiv1.ToolCall{call("c1", "function", "weather")}},
			{Role: "tool", ToolCallId: "c1", Content: text("")},
			{Role: "assistant", Refusal: "no"},
		}
		req.Tools = weatherTool()
		req.ParallelToolCalls = new(true)
		req.Logprobs, req.TopLogprobs = new(true), i32(20)
		req.Stop = []string{"a", "b", "c", "d"}
		req.LogitBias = map[string]float64{"0": -100, "50256": 100}
		req.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "answer-1_x", SchemaJson: `{}`}}
		_, err := c.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
		require.NoError(t, err)
		req.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_object"}
		require.NoError(t, ignoreEOF(streamErr(ctx, c, req)))
	})
}

func TestEmbeddingsRequestSchema(t *testing.T) {
	tokens := func(ids ...int64) *openaiv1.EmbeddingInput {
		return &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Tokens{Tokens: &openaiv1.TokenList{Values: ids}}}
	}
	many := make([]string, maxInputs+1)
	for i := range many {
		many[i] = "x"
	}
	cases := []struct {
		name      string
		req       *openaiv1.EmbeddingRequest
		wantParam string
	}{
		{"dimensions 0", &openaiv1.EmbeddingRequest{Model: model, Input: textInput("x"), Dimensions: i32(0)}, "dimensions"},
		{"dimensions -1", &openaiv1.EmbeddingRequest{Model: model, Input: textInput("x"), Dimensions: i32(-1)}, "dimensions"},
		{"negative token id", &openaiv1.EmbeddingRequest{Model: model, Input: tokens(1, -2)}, "input"},
		{"too many inputs", &openaiv1.EmbeddingRequest{Model: model, Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: many}}}}, "input"},
		{"a huge encoding_format is clipped", &openaiv1.EmbeddingRequest{Model: model, Input: textInput("x"), EncodingFormat: strings.Repeat("f", 1<<20)}, "encoding_format"},
	}
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateEmbeddings(context.Background(), &routerv1.CreateEmbeddingsRequest{Request: tc.req})
			assertInvalid(t, err, tc.wantParam)
		})
	}
	assert.Zero(t, fake.calls(), "an invalid request never reaches a node")
	_, err := c.CreateEmbeddings(context.Background(), &routerv1.CreateEmbeddingsRequest{Request: &openaiv1.EmbeddingRequest{Model: model, Input: tokens(0, 1), Dimensions: i32(1)}})
	require.NoError(t, err)
}

func TestCompletionRequestSchema(t *testing.T) {
	valid := func() *openaiv1.CompletionRequest {
		return &openaiv1.CompletionRequest{Model: model, Prompt: []string{"once"}}
	}
	cases := []struct {
		name      string
		mutate    func(r *openaiv1.CompletionRequest)
		stream    bool
		wantParam string
	}{
		{"logprobs above 5", func(r *openaiv1.CompletionRequest) { r.Logprobs = i32(6) }, false, "logprobs"},
		{"logprobs negative", func(r *openaiv1.CompletionRequest) { r.Logprobs = i32(-1) }, false, "logprobs"},
		{"best_of 0", func(r *openaiv1.CompletionRequest) { r.BestOf = i32(0) }, false, "best_of"},
		{"best_of below n", func(r *openaiv1.CompletionRequest) { r.BestOf, r.N = i32(2), i32(3) }, false, "best_of"},
		{"best_of streamed", func(r *openaiv1.CompletionRequest) { r.BestOf = i32(2) }, true, "best_of"},
		{"five stop sequences", func(r *openaiv1.CompletionRequest) { r.Stop = []string{"a", "b", "c", "d", "e"} }, false, "stop"},
		{"logit_bias key", func(r *openaiv1.CompletionRequest) { r.LogitBias = map[string]float64{"-1": 1} }, false, "logit_bias"},
	}
	c, _ := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := valid()
			tc.mutate(req)
			if tc.stream {
				s, err := c.StreamCompletion(ctx, &routerv1.StreamCompletionRequest{Request: req})
				require.NoError(t, err)
				_, err = s.Recv()
				assertInvalid(t, err, tc.wantParam)
				return
			}
			_, err := c.CreateCompletion(ctx, &routerv1.CreateCompletionRequest{Request: req})
			assertInvalid(t, err, tc.wantParam)
		})
	}
}
