package openaijson

import (
	"encoding/json"
	"errors"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzUnmarshalChatRequest checks that no body panics the decoder, that
// failures are DecodeErrors, that only valid JSON is accepted, and that what
// is accepted is a valid proto that survives encode → decode unchanged.
func FuzzUnmarshalChatRequest(f *testing.F) {
	for _, seed := range []string{
		benchRequest,
		`{"model":"llama3","messages":[{"role":"user","content":"Hello!"}],"stream":true}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What's in this image?"},` +
			`{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"auto"}},{"type":"image_url","image_url":"https://x"},` +
			`{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}],"max_tokens":300}`,
		`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",` +
			`"function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"call_1","content":"42"}],` +
			`"tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false}`,
		`{"model":"m","messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,` +
			`"schema":{"type":"object","properties":{"n":{"type":["number","null"],"minimum":-1.5e-7}},"required":["n"]}}},` +
			`"stop":["\n","\u00e9\ud83d\ude00"],"seed":-1,"logit_bias":{"50256":-100},"temperature":0,"top_p":null}`,
		`{"stop":"x","tool_choice":"auto","n":1.0,"logprobs":true,"top_logprobs":2,"user":"\ud800","unknown":[{"a":[null,true,false,1e5]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}`,
		`{"max_tokens":"5"}`,
		`{"functions":[{"name":"f"}],"function_call":"auto"}`,
		`{"functions":null,"messages":[{"role":"assistant","function_call":null}]}`,
		`{"model":"m" `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m openaiv1.ChatCompletionRequest
		if err := Unmarshal(data, &m); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if _, err := proto.Marshal(&m); err != nil {
			t.Fatalf("decoded message is not a valid proto: %v", err)
		}
		b, err := Marshal(&m)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !json.Valid(b) {
			t.Fatalf("Marshal wrote invalid JSON %q", b)
		}
		var again openaiv1.ChatCompletionRequest
		if err := Unmarshal(b, &again); err != nil {
			t.Fatalf("Unmarshal(Marshal(m)) = %v\n%s", err, b)
		}
		if !proto.Equal(&m, &again) {
			t.Fatalf("round trip changed the message\nfirst:  %v\nsecond: %v\nJSON: %s", &m, &again, b)
		}
	})
}

// FuzzUnmarshalResponse covers the tolerant decoders the adapter runs on node
// output: no panics, only DecodeErrors, and whatever decodes re-encodes to a
// fixed point (encoding what the encoding decodes to gives the same bytes).
func FuzzUnmarshalResponse(f *testing.F) {
	for _, seed := range []struct {
		kind byte
		body string
	}{
		{0, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant",` +
			`"content":"hi","refusal":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
			`"logprobs":{"content":[{"token":"hi","logprob":-0.5,"bytes":[104,105],"top_logprobs":[]}],"refusal":null},"finish_reason":"stop"}],` +
			`"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0}}}`},
		{1, `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant",` +
			`"content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}`},
		{1, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`},
		{1, `{"choices":[{"index":0,"delta":{"reasoning":"hm","reasoning_content":"hm"}}],"usage":{"completion_tokens_details":{"reasoning_tokens":4}}}`},
		{0, `{"choices":[{"message":{"content":"a","reasoning":"b"}}]}`},
		{2, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2e-8,3]},{"embedding":"AACAPwAAAMA="}],"model":"m","usage":null}`},
		{3, `{"object":"list","data":[{"id":"llama3","object":"model","created":1721000000,"owned_by":"library"}]}`},
		{4, `{"model":"m","input":[[1,2],[3]],"encoding_format":"base64","dimensions":8}`},
	} {
		f.Add(seed.kind, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		newMsg := func() proto.Message {
			switch kind % 5 {
			case 0:
				return &openaiv1.ChatCompletion{}
			case 1:
				return &openaiv1.ChatCompletionChunk{}
			case 2:
				return &openaiv1.EmbeddingList{}
			case 3:
				return &openaiv1.ModelList{}
			default:
				return &openaiv1.EmbeddingRequest{}
			}
		}
		m := newMsg()
		if err := Unmarshal(data, m); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		if _, err := proto.Marshal(m); err != nil {
			t.Fatalf("decoded message is not a valid proto: %v", err)
		}
		first, err := Marshal(m)
		if err != nil {
			return // a base64 embedding can hold NaN, which JSON cannot
		}
		again := newMsg()
		if err := Unmarshal(first, again); err != nil {
			t.Fatalf("Unmarshal(Marshal(m)) = %v\n%s", err, first)
		}
		second, err := Marshal(again)
		if err != nil || string(second) != string(first) {
			t.Fatalf("not a fixed point (%v)\nfirst:  %s\nsecond: %s", err, first, second)
		}
	})
}
