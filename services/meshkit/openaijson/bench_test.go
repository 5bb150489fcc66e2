package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

// benchRequest is a typical ~1 KB agent request: system prompt, a short
// conversation with a tool round trip, one tool, sampling options.
const benchRequest = `{"model":"llama3.1:8b-instruct-q4_K_M","messages":[` +
	`{"role":"system","content":"You are a helpful assistant. Answer concisely and use tools when the user asks about live data."},` +
	`{"role":"user","content":"What's the weather like in Oslo right now, and should I bring an umbrella?"},` +
	`{"role":"assistant","content":null,"tool_calls":[{"id":"call_8f3a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\",\"unit\":\"celsius\"}"}}]},` +
	`{"role":"tool","tool_call_id":"call_8f3a","content":"{\"temp\":4,\"conditions\":\"light rain\",\"precip_probability\":0.8}"},` +
	`{"role":"user","content":"Thanks! And tomorrow?"}],` +
	`"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city",` +
	`"parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},` +
	`"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}],` +
	`"tool_choice":"auto","temperature":0.7,"top_p":0.9,"max_tokens":512,"stream":true,"stream_options":{"include_usage":true},"user":"user-42"}`

func BenchmarkUnmarshalChatRequest(b *testing.B) {
	data := []byte(benchRequest)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m openaiv1.ChatCompletionRequest
		if err := Unmarshal(data, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalChatRequest(b *testing.B) {
	var m openaiv1.ChatCompletionRequest
	if err := Unmarshal([]byte(benchRequest), &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(&m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalChunk(b *testing.B) {
	c := &openaiv1.ChatCompletionChunk{
		Id: "chatcmpl-7d2f9c1e4b", Object: "chat.completion.chunk", Created: 1730000000, Model: "llama3.1:8b-instruct-q4_K_M",
		SystemFingerprint: "fp_ollama",
		Choices:           []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: proto.String(" umbrella")}}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalChunk(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-7d2f9c1e4b","object":"chat.completion.chunk","created":1730000000,"model":"llama3.1:8b-instruct-q4_K_M",` +
		`"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" umbrella"},"finish_reason":null}]}`)
	b.ReportAllocs()
	for b.Loop() {
		var c openaiv1.ChatCompletionChunk
		if err := Unmarshal(data, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalChatCompletion(b *testing.B) {
	c := &openaiv1.ChatCompletion{
		Id: "chatcmpl-7d2f9c1e4b", Object: "chat.completion", Created: 1730000000, Model: "llama3.1:8b-instruct-q4_K_M",
		SystemFingerprint: "fp_ollama",
		Choices: []*openaiv1.ChatCompletionChoice{{
			Message: &openaiv1.ResponseMessage{Role: "assistant", Content: proto.String(
				"Tomorrow in Oslo expect 3–6 °C with showers in the afternoon (around 80% chance of rain).\n\n" +
					"Yes, bring an umbrella — and a warm jacket, since the wind will make it feel closer to freezing. " +
					"Mornings look drier if you want to avoid the rain: \"before noon\" is your best window.")},
			FinishReason: "stop",
		}},
		Usage: &openaiv1.Usage{PromptTokens: 212, CompletionTokens: 71, TotalTokens: 283},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(c); err != nil {
			b.Fatal(err)
		}
	}
}
