package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

// Thinking models' reasoning arrives as "reasoning_content" (vLLM,
// llama.cpp, LM Studio, DeepSeek) or "reasoning" (Ollama's /v1).
func TestUnmarshalReasoning(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *string
	}{
		{"vLLM and llama.cpp", `{"reasoning_content":"think"}`, proto.String("think")},
		{"Ollama", `{"reasoning":"think"}`, proto.String("think")},
		{"both, reasoning first", `{"reasoning":"x","reasoning_content":"think"}`, proto.String("think")},
		{"both, reasoning_content first", `{"reasoning_content":"think","reasoning":"x"}`, proto.String("think")},
		{"null reasoning_content leaves reasoning", `{"reasoning":"think","reasoning_content":null}`, proto.String("think")},
		{"null", `{"reasoning_content":null,"reasoning":null}`, nil},
		{"absent", `{"content":"a"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cc openaiv1.ChatCompletion
			if err := Unmarshal([]byte(`{"choices":[{"message":`+tt.in+`}]}`), &cc); err != nil {
				t.Fatal(err)
			}
			if got := cc.GetChoices()[0].GetMessage().ReasoningContent; !equalPtr(got, tt.want) {
				t.Errorf("message reasoning = %v, want %v", deref(got), deref(tt.want))
			}
			var ch openaiv1.ChatCompletionChunk
			if err := Unmarshal([]byte(`{"choices":[{"delta":`+tt.in+`}]}`), &ch); err != nil {
				t.Fatal(err)
			}
			if got := ch.GetChoices()[0].GetDelta().ReasoningContent; !equalPtr(got, tt.want) {
				t.Errorf("delta reasoning = %v, want %v", deref(got), deref(tt.want))
			}
		})
	}
	var cc openaiv1.ChatCompletion
	assertDecodeError(t, Unmarshal([]byte(`{"choices":[{"message":{"reasoning":1}}]}`), &cc), "choices[0].message.reasoning", "expected a string")
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func TestMarshalReasoning(t *testing.T) {
	assertMarshal(t, &openaiv1.ChatCompletion{Id: "c", Choices: []*openaiv1.ChatCompletionChoice{{
		Message:      &openaiv1.ResponseMessage{Content: proto.String("4"), ReasoningContent: proto.String("2+2 \"is\" 4")},
		FinishReason: "stop",
	}}}, `{"id":"c","object":"chat.completion","created":0,"model":"","choices":[{"index":0,"message":{"role":"assistant","content":"4","refusal":null,`+
		`"reasoning_content":"2+2 \"is\" 4","reasoning":"2+2 \"is\" 4"},"logprobs":null,"finish_reason":"stop"}]}`)
	assertMarshal(t, chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{ReasoningContent: proto.String("hm")}}),
		chunkHead+`"choices":[{"index":0,"delta":{"reasoning_content":"hm","reasoning":"hm"},"logprobs":null,"finish_reason":null}]}`)
	assertMarshal(t, chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Content: proto.String("a"), ReasoningContent: proto.String("")}}),
		chunkHead+`"choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}]}`)
}

func TestUsageDetails(t *testing.T) {
	in := `{"id":"c","object":"chat.completion","created":0,"model":"","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,` +
		`"prompt_tokens_details":{"cached_tokens":8,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":15,"audio_tokens":0}}}`
	var cc openaiv1.ChatCompletion
	if err := Unmarshal([]byte(in), &cc); err != nil {
		t.Fatal(err)
	}
	assertProtoEqual(t, cc.GetUsage(), &openaiv1.Usage{PromptTokens: 10, CompletionTokens: 20, TotalTokens: 30,
		PromptTokensDetails:     &openaiv1.PromptTokensDetails{CachedTokens: 8},
		CompletionTokensDetails: &openaiv1.CompletionTokensDetails{ReasoningTokens: 15}})
	assertMarshal(t, &cc, `{"id":"c","object":"chat.completion","created":0,"model":"","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,`+
		`"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":15}}}`)
	// A node that sends no details gets none back.
	assertMarshal(t, &openaiv1.ChatCompletionChunk{Usage: &openaiv1.Usage{TotalTokens: 1}},
		`{"id":"","object":"chat.completion.chunk","created":0,"model":"","choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":1}}`)
}

// The deprecated function-calling fields are refused, naming the field,
// rather than skipped: a prompt must not lose the functions it offered.
func TestDeprecatedFunctionsRefused(t *testing.T) {
	for _, tt := range []struct{ body, param string }{
		{`{"model":"m","functions":[{"name":"f","parameters":{}}]}`, "functions"},
		{`{"model":"m","function_call":"auto"}`, "function_call"},
		{`{"model":"m","function_call":{"name":"f"}}`, "function_call"},
		{`{"messages":[{"role":"user","content":"x"},{"role":"assistant","function_call":{"name":"f","arguments":"{}"}}]}`, "messages[1].function_call"},
	} {
		var m openaiv1.ChatCompletionRequest
		assertDecodeError(t, Unmarshal([]byte(tt.body), &m), tt.param, "use tools")
	}
	var m openaiv1.ChatCompletionRequest
	if err := Unmarshal([]byte(`{"model":"m","functions":null,"function_call":null,"messages":[{"role":"assistant","function_call":null}]}`), &m); err != nil {
		t.Errorf("null is absent: %v", err)
	}
	// Malformed JSON is still reported as such.
	assertDecodeError(t, Unmarshal([]byte(`{"functions":[}`), &m), "", "")
}
