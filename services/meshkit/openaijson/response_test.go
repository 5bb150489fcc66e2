package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

func chunk(choices ...*openaiv1.ChunkChoice) *openaiv1.ChatCompletionChunk {
	return &openaiv1.ChatCompletionChunk{
		Id: "chatcmpl-123", Created: 1694268190, Model: "llama3", SystemFingerprint: "fp_44709d6fcb", Choices: choices,
	}
}

const chunkHead = `{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"llama3","system_fingerprint":"fp_44709d6fcb",`

func TestMarshalChatCompletion(t *testing.T) {
	tests := []struct {
		name string
		in   *openaiv1.ChatCompletion
		want string
	}{
		{
			name: "text answer",
			in: &openaiv1.ChatCompletion{
				Id: "chatcmpl-1", Created: 1700000000, Model: "llama3",
				Choices: []*openaiv1.ChatCompletionChoice{{
					Message:      &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String("Hello \"world\"\n<b>&</b> ✓")},
					FinishReason: "stop",
				}},
				Usage: &openaiv1.Usage{PromptTokens: 9, CompletionTokens: 12, TotalTokens: 21},
			},
			want: `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"llama3","choices":[` +
				`{"index":0,"message":{"role":"assistant","content":"Hello \"world\"\n<b>&</b> ✓","refusal":null},"logprobs":null,"finish_reason":"stop"}],` +
				`"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`,
		},
		{
			name: "tool calls, logprobs, two choices, every optional member",
			in: &openaiv1.ChatCompletion{
				Id: "chatcmpl-2", Object: "chat.completion", Created: 1, Model: "m", SystemFingerprint: "fp", ServiceTier: "default",
				Choices: []*openaiv1.ChatCompletionChoice{
					{
						Message: &openaiv1.ResponseMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{
							Index: 7, Id: "call_1", Type: "function",
							Function: &openaiv1.FunctionCall{Name: "get_weather", Arguments: `{"city":"Oslo"}`},
						}}},
						FinishReason: "tool_calls",
					},
					{
						Index:   1,
						Message: &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String("Hi"), Refusal: proto.String("")},
						Logprobs: &openaiv1.Logprobs{Content: []*openaiv1.TokenLogprob{{
							Token: "Hi", Logprob: -0.0123, Bytes: []int32{72, 105},
							TopLogprobs: []*openaiv1.TopLogprob{{Token: "Hi", Logprob: -0.0123, Bytes: []int32{72, 105}}, {Token: "", Logprob: -5e-7}},
						}}},
					},
				},
			},
			want: `{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"m","system_fingerprint":"fp","choices":[` +
				`{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"},` +
				`{"index":1,"message":{"role":"assistant","content":"Hi","refusal":""},"logprobs":{"content":[{"token":"Hi","logprob":-0.0123,"bytes":[72,105],"top_logprobs":[` +
				`{"token":"Hi","logprob":-0.0123,"bytes":[72,105]},{"token":"","logprob":-5e-7,"bytes":null}]}],"refusal":null},"finish_reason":null}],` +
				`"service_tier":"default"}`,
		},
		{
			name: "no choices, no usage, defaults",
			in:   &openaiv1.ChatCompletion{Choices: []*openaiv1.ChatCompletionChoice{{}}},
			want: `{"id":"","object":"chat.completion","created":0,"model":"","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "empty choices",
			in:   &openaiv1.ChatCompletion{Id: "x"},
			want: `{"id":"x","object":"chat.completion","created":0,"model":"","choices":[]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertMarshal(t, tt.in, tt.want) })
	}
}

func TestMarshalChatCompletionChunk(t *testing.T) {
	tests := []struct {
		name string
		in   *openaiv1.ChatCompletionChunk
		want string
	}{
		{
			name: "first chunk with role",
			in:   chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: proto.String("")}}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "content chunk",
			in:   chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Content: proto.String("Hello\tthere \u2028\x01")}}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"content":"Hello\tthere ` + "\u2028" + `\u0001"},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "refusal chunk",
			in:   chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Refusal: proto.String("I can't")}}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"refusal":"I can't"},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "first tool call chunk",
			in: chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{
				Id: "call_1", Type: "function", Function: &openaiv1.FunctionCall{Name: "get_weather"},
			}}}}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "tool call arguments chunk",
			in: chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{
				Index: 1, Function: &openaiv1.FunctionCall{Arguments: `{"city":`},
			}}}}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}]}`,
		},
		{
			name: "finish chunk",
			in:   chunk(&openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{}, FinishReason: "stop"}),
			want: chunkHead + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`,
		},
		{
			name: "finish chunk without delta",
			in:   chunk(&openaiv1.ChunkChoice{Index: 2, FinishReason: "length"}),
			want: chunkHead + `"choices":[{"index":2,"delta":{},"logprobs":null,"finish_reason":"length"}]}`,
		},
		{
			name: "usage chunk",
			in: &openaiv1.ChatCompletionChunk{
				Id: "chatcmpl-123", Created: 1694268190, Model: "llama3", SystemFingerprint: "fp_44709d6fcb",
				Usage: &openaiv1.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
			},
			want: chunkHead + `"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`,
		},
		{
			name: "logprobs chunk",
			in: chunk(&openaiv1.ChunkChoice{
				Delta:    &openaiv1.ChunkDelta{Content: proto.String("a")},
				Logprobs: &openaiv1.Logprobs{Content: []*openaiv1.TokenLogprob{{Token: "a", Logprob: -1, Bytes: []int32{97}}}},
			}),
			want: chunkHead + `"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-1,"bytes":[97],"top_logprobs":[]}],"refusal":null},"finish_reason":null}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertMarshal(t, tt.in, tt.want) })
	}
}

func TestUnmarshalChatCompletion(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *openaiv1.ChatCompletion
	}{
		{
			name: "OpenAI answer with members llmesh does not model",
			in: `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06",
				"choices":[{"index":0,"message":{"role":"assistant","content":"The image shows a wooden boardwalk.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
				"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
				"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`,
			want: &openaiv1.ChatCompletion{
				Id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", Object: "chat.completion", Created: 1741570283, Model: "gpt-4o-2024-08-06",
				SystemFingerprint: "fp_fc9f1d7035", ServiceTier: "default",
				Choices: []*openaiv1.ChatCompletionChoice{{
					Message:      &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String("The image shows a wooden boardwalk.")},
					FinishReason: "stop",
				}},
				Usage: &openaiv1.Usage{PromptTokens: 1117, CompletionTokens: 46, TotalTokens: 1163,
					PromptTokensDetails: &openaiv1.PromptTokensDetails{}, CompletionTokensDetails: &openaiv1.CompletionTokensDetails{}},
			},
		},
		{
			name: "nulls everywhere",
			in: `{"id":"x","object":null,"created":null,"model":null,"system_fingerprint":null,"service_tier":null,"usage":null,
				"choices":[{"index":null,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":null},"logprobs":null,"finish_reason":null}]}`,
			want: &openaiv1.ChatCompletion{Id: "x", Choices: []*openaiv1.ChatCompletionChoice{{Message: &openaiv1.ResponseMessage{Role: "assistant"}}}},
		},
		{
			name: "llama.cpp style with tool call and timings",
			in: `{"choices":[{"finish_reason":"tool_calls","index":0,"message":{"role":"assistant","content":"","tool_calls":[
				{"type":"function","function":{"name":"w","arguments":"{\"c\":1}"},"id":"abc"}]}}],
				"created":1730000000,"model":"qwen","object":"chat.completion","usage":{"completion_tokens":3,"prompt_tokens":2,"total_tokens":5},
				"id":"chatcmpl-q","timings":{"prompt_n":2,"predicted_per_second":41.2}}`,
			want: &openaiv1.ChatCompletion{
				Id: "chatcmpl-q", Object: "chat.completion", Created: 1730000000, Model: "qwen",
				Choices: []*openaiv1.ChatCompletionChoice{{
					FinishReason: "tool_calls",
					Message: &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String(""), ToolCalls: []*openaiv1.ToolCall{{
						Id: "abc", Type: "function", Function: &openaiv1.FunctionCall{Name: "w", Arguments: `{"c":1}`},
					}}},
				}},
				Usage: &openaiv1.Usage{PromptTokens: 2, CompletionTokens: 3, TotalTokens: 5},
			},
		},
		{
			name: "logprobs",
			in: `{"choices":[{"index":0,"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"bytes":[72,105],
				"top_logprobs":[{"token":"Hi","logprob":-0.5,"bytes":null},{"token":"Yo","logprob":-1.25,"bytes":[89,111]}]}],"refusal":null}}]}`,
			want: &openaiv1.ChatCompletion{Choices: []*openaiv1.ChatCompletionChoice{{Logprobs: &openaiv1.Logprobs{
				Content: []*openaiv1.TokenLogprob{{Token: "Hi", Logprob: -0.5, Bytes: []int32{72, 105}, TopLogprobs: []*openaiv1.TopLogprob{
					{Token: "Hi", Logprob: -0.5}, {Token: "Yo", Logprob: -1.25, Bytes: []int32{89, 111}},
				}}},
			}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &openaiv1.ChatCompletion{Id: "stale"}
			if err := Unmarshal([]byte(tt.in), got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			assertProtoEqual(t, got, tt.want)
		})
	}
}

func TestUnmarshalChatCompletionChunk(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *openaiv1.ChatCompletionChunk
	}{
		{
			name: "Ollama first chunk",
			in:   `{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1730000000,"model":"llama3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`,
			want: &openaiv1.ChatCompletionChunk{
				Id: "chatcmpl-9", Object: "chat.completion.chunk", Created: 1730000000, Model: "llama3", SystemFingerprint: "fp_ollama",
				Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: proto.String("Hel")}}},
			},
		},
		{
			name: "role repeated, content null, usage null",
			in:   `{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":null,"tool_calls":null},"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
			want: &openaiv1.ChatCompletionChunk{
				Id:      "c",
				Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Role: "assistant"}, FinishReason: "stop"}},
			},
		},
		{
			name: "tool call delta keeps index",
			in:   `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"function":{"arguments":"{\"a\""}}]}}]}`,
			want: &openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{
				Index: 2, Function: &openaiv1.FunctionCall{Arguments: `{"a"`},
			}}}}}},
		},
		{
			name: "usage chunk",
			in:   `{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			want: &openaiv1.ChatCompletionChunk{Id: "c", Usage: &openaiv1.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &openaiv1.ChatCompletionChunk{}
			if err := Unmarshal([]byte(tt.in), got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			assertProtoEqual(t, got, tt.want)
		})
	}
}

func TestUnmarshalResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		m       proto.Message
		param   string
		msgPart string
	}{
		{"created string", `{"created":"now"}`, &openaiv1.ChatCompletion{}, "created", "expected a number"},
		{"choice index fraction", `{"choices":[{"index":0.5}]}`, &openaiv1.ChatCompletionChunk{}, "choices[0].index", "expected an integer"},
		{"delta content number", `{"choices":[{"delta":{"content":1}}]}`, &openaiv1.ChatCompletionChunk{}, "choices[0].delta.content", "expected a string"},
		{"usage array", `{"usage":[]}`, &openaiv1.ChatCompletion{}, "usage", "expected an object"},
		{"logprob bytes strings", `{"choices":[{"logprobs":{"content":[{"bytes":["a"]}]}}]}`, &openaiv1.ChatCompletion{}, "choices[0].logprobs.content[0].bytes[0]", "expected a number"},
		{"malformed chunk", `{"choices":[`, &openaiv1.ChatCompletionChunk{}, "", "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertDecodeError(t, Unmarshal([]byte(tt.in), tt.m), tt.param, tt.msgPart)
		})
	}
}

func TestMarshalModels(t *testing.T) {
	list := &openaiv1.ModelList{Data: []*openaiv1.Model{
		{Id: "llama3.1:8b", Created: 1721000000, OwnedBy: "library"},
		{Id: "qwen2.5", Object: "model", Created: 0, OwnedBy: "llmesh"},
	}}
	assertMarshal(t, list, `{"object":"list","data":[{"id":"llama3.1:8b","object":"model","created":1721000000,"owned_by":"library"},`+
		`{"id":"qwen2.5","object":"model","created":0,"owned_by":"llmesh"}]}`)
	assertMarshal(t, &openaiv1.ModelList{}, `{"object":"list","data":[]}`)
	assertMarshal(t, list.Data[0], `{"id":"llama3.1:8b","object":"model","created":1721000000,"owned_by":"library"}`)

	var got openaiv1.ModelList
	in := `{"object":"list","data":[{"id":"llama3.1:8b","object":"model","created":1721000000,"owned_by":"library","permission":[]},{"id":"x","created":null}]}`
	if err := Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	assertProtoEqual(t, &got, &openaiv1.ModelList{Object: "list", Data: []*openaiv1.Model{
		{Id: "llama3.1:8b", Object: "model", Created: 1721000000, OwnedBy: "library"}, {Id: "x"},
	}})
	var one openaiv1.Model
	if err := Unmarshal([]byte(`{"id":"m","owned_by":"o"}`), &one); err != nil {
		t.Fatal(err)
	}
	assertProtoEqual(t, &one, &openaiv1.Model{Id: "m", OwnedBy: "o"})
}
