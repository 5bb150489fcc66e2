package openaijson

import (
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

func TestUnmarshalChatRequest(t *testing.T) {
	user := func(c *openaiv1.MessageContent) *openaiv1.ChatCompletionRequest {
		return &openaiv1.ChatCompletionRequest{
			Model:    "m",
			Messages: []*openaiv1.ChatMessage{{Role: "user", Content: c}},
		}
	}
	tests := []struct {
		name string
		in   string
		want *openaiv1.ChatCompletionRequest
	}{
		{
			name: "content string",
			in:   `{"model":"m","messages":[{"role":"user","content":"Hi there"}]}`,
			want: user(textContent("Hi there")),
		},
		{
			name: "content empty string stays text",
			in:   `{"model":"m","messages":[{"role":"user","content":""}]}`,
			want: user(textContent("")),
		},
		{
			name: "content text parts",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`,
			want: user(partsContent(
				&openaiv1.ContentPart{Type: "text", Text: "a"},
				&openaiv1.ContentPart{Type: "text", Text: "b"},
			)),
		},
		{
			name: "content empty array stays parts",
			in:   `{"model":"m","messages":[{"role":"user","content":[]}]}`,
			want: user(partsContent()),
		},
		{
			name: "image_url object",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/cat.png","detail":"high"}}]}]}`,
			want: user(partsContent(&openaiv1.ContentPart{
				Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "https://x/cat.png", Detail: "high"},
			})),
		},
		{
			name: "image_url string shorthand",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"https://x/cat.png"}]}]}`,
			want: user(partsContent(&openaiv1.ContentPart{
				Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "https://x/cat.png"},
			})),
		},
		{
			name: "input_audio",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]}`,
			want: user(partsContent(
				&openaiv1.ContentPart{Type: "text", Text: "what is this?"},
				&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Data: "UklGRg==", Format: "wav"}},
			)),
		},
		{
			name: "content null",
			in:   `{"model":"m","messages":[{"role":"user","content":null}]}`,
			want: user(nil),
		},
		{
			name: "content absent",
			in:   `{"model":"m","messages":[{"role":"user"}]}`,
			want: user(nil),
		},
		{
			name: "stop string",
			in:   `{"stop":"\n\n"}`,
			want: &openaiv1.ChatCompletionRequest{Stop: []string{"\n\n"}},
		},
		{
			name: "stop array",
			in:   `{"stop":["END","###"]}`,
			want: &openaiv1.ChatCompletionRequest{Stop: []string{"END", "###"}},
		},
		{
			name: "stop null",
			in:   `{"stop":null}`,
			want: &openaiv1.ChatCompletionRequest{},
		},
		{
			name: "tool_choice mode",
			in:   `{"tool_choice":"required"}`,
			want: &openaiv1.ChatCompletionRequest{ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "required"}}},
		},
		{
			name: "tool_choice function object",
			in:   `{"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`,
			want: &openaiv1.ChatCompletionRequest{ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "get_weather"}}},
		},
		{
			name: "unknown fields at every level",
			in: `{"x-top":{"deep":[1,{"a":null}]},"model":"m","metadata":{"k":"v"},
				"messages":[{"role":"user","x":1,"content":[
					{"type":"text","text":"t","cache_control":{"type":"ephemeral"}},
					{"type":"image_url","image_url":{"url":"u","x":[true,false]},"y":"z"}]},
				  {"role":"assistant","content":null,"audio":null,"tool_calls":[{"id":"c1","type":"function","x":{},
					"function":{"name":"f","arguments":"{}","x":"y"}}]}],
				"stream_options":{"include_usage":true,"x":1},
				"response_format":{"type":"json_schema","x":2,"json_schema":{"name":"s","x":3,"schema":{"type":"object"}}},
				"tools":[{"type":"function","x":4,"function":{"name":"f","x":5,"parameters":{"type":"object"}}}],
				"tool_choice":{"type":"function","x":6,"function":{"name":"f","x":7}},
				"store":true,"modalities":["text"],"prediction":{"type":"content","content":"x"}}`,
			want: &openaiv1.ChatCompletionRequest{
				Model: "m",
				Messages: []*openaiv1.ChatMessage{
					{Role: "user", Content: partsContent(
						&openaiv1.ContentPart{Type: "text", Text: "t"},
						&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "u"}},
					)},
					{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{
						Id: "c1", Type: "function", Function: &openaiv1.FunctionCall{Name: "f", Arguments: "{}"},
					}}},
				},
				StreamOptions: &openaiv1.StreamOptions{IncludeUsage: true},
				ResponseFormat: &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{
					Name: "s", SchemaJson: `{"type":"object"}`,
				}},
				Tools: []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{
					Name: "f", ParametersJson: `{"type":"object"}`,
				}}},
				ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "f"}},
			},
		},
		{
			name: "null fields are absent",
			in: `{"model":null,"messages":null,"stream":null,"stream_options":null,"max_tokens":null,
				"max_completion_tokens":null,"temperature":null,"top_p":null,"n":null,"stop":null,"seed":null,
				"presence_penalty":null,"frequency_penalty":null,"response_format":null,"tools":null,
				"tool_choice":null,"user":null,"logprobs":null,"top_logprobs":null,"logit_bias":null,
				"parallel_tool_calls":null,"reasoning_effort":null}`,
			want: &openaiv1.ChatCompletionRequest{},
		},
		{
			name: "null nested fields are absent",
			in: `{"messages":[{"role":null,"content":null,"name":null,"tool_calls":null,"tool_call_id":null,"refusal":null}],
				"tools":[{"type":"function","function":{"name":"f","description":null,"parameters":null,"strict":null}}],
				"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":null,"strict":null}}}`,
			want: &openaiv1.ChatCompletionRequest{
				Messages:       []*openaiv1.ChatMessage{{}},
				Tools:          []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "f"}}},
				ResponseFormat: &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "s"}},
			},
		},
		{
			name: "optional zero values keep presence",
			in: `{"max_tokens":0,"max_completion_tokens":0,"temperature":0,"top_p":0,"n":0,"seed":0,
				"presence_penalty":0,"frequency_penalty":0,"logprobs":false,"top_logprobs":0,"parallel_tool_calls":false,
				"tools":[{"function":{"strict":false}}]}`,
			want: &openaiv1.ChatCompletionRequest{
				MaxTokens: proto.Int32(0), MaxCompletionTokens: proto.Int32(0), Temperature: proto.Float64(0),
				TopP: proto.Float64(0), N: proto.Int32(0), Seed: proto.Int64(0), PresencePenalty: proto.Float64(0),
				FrequencyPenalty: proto.Float64(0), Logprobs: proto.Bool(false), TopLogprobs: proto.Int32(0),
				ParallelToolCalls: proto.Bool(false),
				Tools:             []*openaiv1.Tool{{Function: &openaiv1.FunctionDefinition{Strict: proto.Bool(false)}}},
			},
		},
		{
			name: "integral floats accepted for integers",
			in:   `{"max_tokens":5.0,"n":1e0,"seed":-2E1}`,
			want: &openaiv1.ChatCompletionRequest{MaxTokens: proto.Int32(5), N: proto.Int32(1), Seed: proto.Int64(-20)},
		},
		{
			name: "scalars",
			in: `{"model":"llama3.1:8b","stream":true,"max_tokens":256,"temperature":0.7,"top_p":0.95,"n":2,
				"seed":9007199254740993,"presence_penalty":-0.5,"frequency_penalty":1.5e-1,"user":"u-1",
				"logprobs":true,"top_logprobs":5,"logit_bias":{"50256":-100,"15496":2.5},"parallel_tool_calls":true,
				"reasoning_effort":"low"}`,
			want: &openaiv1.ChatCompletionRequest{
				Model: "llama3.1:8b", Stream: true, MaxTokens: proto.Int32(256), Temperature: proto.Float64(0.7),
				TopP: proto.Float64(0.95), N: proto.Int32(2), Seed: proto.Int64(9007199254740993),
				PresencePenalty: proto.Float64(-0.5), FrequencyPenalty: proto.Float64(0.15), User: "u-1",
				Logprobs: proto.Bool(true), TopLogprobs: proto.Int32(5),
				LogitBias:         map[string]float64{"50256": -100, "15496": 2.5},
				ParallelToolCalls: proto.Bool(true), ReasoningEffort: "low",
			},
		},
		{
			name: "messages of every role",
			in: `{"messages":[
				{"role":"developer","content":"be brief"},
				{"role":"user","name":"ann","content":"weather?"},
				{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{\"c\":\"Oslo\"}"}}]},
				{"role":"tool","tool_call_id":"call_1","content":"-3C"},
				{"role":"assistant","refusal":"no"}]}`,
			want: &openaiv1.ChatCompletionRequest{Messages: []*openaiv1.ChatMessage{
				{Role: "developer", Content: textContent("be brief")},
				{Role: "user", Name: "ann", Content: textContent("weather?")},
				{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{
					Id: "call_1", Type: "function", Function: &openaiv1.FunctionCall{Name: "w", Arguments: `{"c":"Oslo"}`},
				}}},
				{Role: "tool", ToolCallId: "call_1", Content: textContent("-3C")},
				{Role: "assistant", Refusal: "no"},
			}},
		},
		{
			name: "tool call index in a request message is ignored",
			in:   `{"messages":[{"role":"assistant","tool_calls":[{"index":3,"id":"c"}]}]}`,
			want: &openaiv1.ChatCompletionRequest{Messages: []*openaiv1.ChatMessage{
				{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Id: "c"}}},
			}},
		},
		{
			name: "tools and schemas",
			in: `{"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","strict":true,
					"parameters":{"type":"object","properties":{"city":{"type":"string","enum":["Oslo","Rome"]},"days":{"type":"integer","minimum":1}},"required":["city"],"additionalProperties":false}}}],
				"response_format":{"type":"json_schema","json_schema":{"name":"answer","description":"d","strict":true,"schema":{"type":"object","properties":{"n":{"type":"number"}}}}}}`,
			want: &openaiv1.ChatCompletionRequest{
				Tools: []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{
					Name: "get_weather", Description: "Weather now", Strict: proto.Bool(true),
					ParametersJson: `{"type":"object","properties":{"city":{"type":"string","enum":["Oslo","Rome"]},"days":{"type":"integer","minimum":1}},"required":["city"],"additionalProperties":false}`,
				}}},
				ResponseFormat: &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{
					Name: "answer", Description: "d", Strict: proto.Bool(true),
					SchemaJson: `{"type":"object","properties":{"n":{"type":"number"}}}`,
				}},
			},
		},
		{
			name: "string escapes and unicode",
			in:   `{"model":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 ünï","user":"\ud800x\udc00"}`,
			want: &openaiv1.ChatCompletionRequest{Model: "a\"b\\c/d\b\f\n\r\té😀 ünï", User: "\uFFFDx\uFFFD"},
		},
		{
			name: "escaped keys",
			in:   `{"mod\u0065l":"m","\u006dessages":[{"r\u006fle":"user"}]}`,
			want: &openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{{Role: "user"}}},
		},
		{
			name: "whitespace everywhere",
			in:   " \n{ \"model\" :\t\"m\" , \"stop\" : [ \"a\" , \"b\" ] , \"messages\" : [ ] }\r\n",
			want: &openaiv1.ChatCompletionRequest{Model: "m", Stop: []string{"a", "b"}},
		},
		{
			name: "empty object",
			in:   `{}`,
			want: &openaiv1.ChatCompletionRequest{},
		},
		{
			name: "duplicate keys: last wins",
			in:   `{"model":"a","model":"b"}`,
			want: &openaiv1.ChatCompletionRequest{Model: "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &openaiv1.ChatCompletionRequest{Model: "stale", Stop: []string{"stale"}}
			if err := Unmarshal([]byte(tt.in), got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			assertProtoEqual(t, got, tt.want)
			if _, err := proto.Marshal(got); err != nil {
				t.Errorf("decoded message is not a valid proto: %v", err)
			}
		})
	}
}

func TestUnmarshalChatRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		param   string
		msgPart string
	}{
		// Malformed JSON: never a Param.
		{"empty body", ``, "", "unexpected end of JSON input"},
		{"truncated", `{"model":"m","messages":[{"role":"user"`, "", "unexpected end"},
		{"missing value", `{"model":}`, "", "invalid character '}'"},
		{"trailing comma in object", `{"model":"m",}`, "", "invalid character"},
		{"trailing comma in array", `{"stop":["a",]}`, "", "invalid character ']'"},
		{"missing comma", `{"model":"m" "n":1}`, "", "invalid character"},
		{"trailing data", `{"model":"m"} {}`, "", "after top-level value"},
		{"trailing NUL", "{}\x00", "", "after top-level value"},
		{"bad escape", `{"model":"a\qb"}`, "", "invalid escape"},
		{"bad unicode escape", `{"model":"\u12"}`, "", "invalid \\u escape"},
		{"raw control character", "{\"model\":\"a\nb\"}", "", "control character"},
		{"unterminated string", `{"model":"m`, "", "unexpected end"},
		{"bad literal", `{"stream":tru}`, "", "invalid character '}'"},
		{"leading zero", `{"n":01}`, "", "invalid character '1'"},
		{"bare fraction", `{"temperature":1.}`, "", "invalid character '}'"},
		{"lone minus", `{"seed":-}`, "", "invalid character '}'"},
		{"unknown field malformed", `{"x":[1 2]}`, "", "invalid character '2'"},
		{"single quotes", `{'model':'m'}`, "", "invalid character"},
		{"type error before malformed tail", `{"model":5,"x":}`, "", "invalid character '}'"},
		{"too deep", `{"x":` + nest(maxDepth+1) + `}`, "", "nested too deeply"},

		// Wrong types: Param is the JSON path.
		{"top-level array", `[]`, "", "expected an object, got array"},
		{"top-level null", `null`, "", "expected an object, got null"},
		{"model number", `{"model":5}`, "model", "expected a string, got number"},
		{"messages object", `{"messages":{}}`, "messages", "expected an array, got object"},
		{"message string", `{"messages":["hi"]}`, "messages[0]", "expected an object, got string"},
		{"role number", `{"messages":[{"role":1}]}`, "messages[0].role", "expected a string"},
		{"content number", `{"messages":[{"role":"user","content":5}]}`, "messages[0].content", "expected a string or an array, got number"},
		{"content object", `{"messages":[{"role":"user","content":{"type":"text"}}]}`, "messages[0].content", "got object"},
		{"part not object", `{"messages":[{"content":[5]}]}`, "messages[0].content[0]", "expected an object"},
		{"unknown part type", `{"messages":[{"content":"x"},{"content":[{"type":"file","file":{}}]}]}`, "messages[1].content[0].type", `unsupported content part type "file"`},
		{"missing part type", `{"messages":[{"content":[{"type":"text","text":"a"},{"text":"b"}]}]}`, "messages[0].content[1].type", `unsupported content part type ""`},
		{"part text number", `{"messages":[{"content":[{"type":"text","text":1}]}]}`, "messages[0].content[0].text", "expected a string"},
		{"image_url number", `{"messages":[{"content":[{"type":"image_url","image_url":1}]}]}`, "messages[0].content[0].image_url", "expected an object, got number"},
		{"tool call arguments object", `{"messages":[{"tool_calls":[{"function":{"arguments":{}}}]}]}`, "messages[0].tool_calls[0].function.arguments", "expected a string, got object"},
		{"max_tokens string", `{"max_tokens":"5"}`, "max_tokens", "expected a number, got string"},
		{"max_tokens fraction", `{"max_tokens":5.5}`, "max_tokens", "expected an integer, got 5.5"},
		{"max_tokens overflow", `{"max_tokens":3000000000}`, "max_tokens", "out of range"},
		{"seed overflow", `{"seed":9223372036854775808}`, "seed", "out of range"},
		{"seed float overflow", `{"seed":1e19}`, "seed", "out of range"},
		{"temperature string", `{"temperature":"hot"}`, "temperature", "expected a number"},
		{"temperature huge", `{"temperature":1e999}`, "temperature", "out of range"},
		{"stream string", `{"stream":"yes"}`, "stream", "expected a boolean, got string"},
		{"stream_options array", `{"stream_options":[]}`, "stream_options", "expected an object"},
		{"include_usage number", `{"stream_options":{"include_usage":1}}`, "stream_options.include_usage", "expected a boolean"},
		{"stop number", `{"stop":5}`, "stop", "expected a string or an array"},
		{"stop element number", `{"stop":["a",5]}`, "stop[1]", "expected a string"},
		{"tool_choice number", `{"tool_choice":5}`, "tool_choice", "expected a string or an object"},
		{"tool_choice other type", `{"tool_choice":{"type":"allowed_tools"}}`, "tool_choice.type", `unsupported tool_choice type "allowed_tools"`},
		{"tool_choice name number", `{"tool_choice":{"type":"function","function":{"name":1}}}`, "tool_choice.function.name", "expected a string"},
		{"tools object", `{"tools":{}}`, "tools", "expected an array"},
		{"parameters string", `{"tools":[{"function":{"parameters":"{}"}}]}`, "tools[0].function.parameters", "expected an object, got string"},
		{"deep schema syntax", `{"tools":[{"function":{"parameters":{"properties":{"a":{"enum":[1,]}}}}}]}`, "", "invalid JSON: invalid character ']'"},
		{"strict string", `{"tools":[{"function":{"strict":"true"}}]}`, "tools[0].function.strict", "expected a boolean"},
		{"schema array", `{"response_format":{"json_schema":{"schema":[]}}}`, "response_format.json_schema.schema", "expected an object, got array"},
		{"logit_bias value", `{"logit_bias":{"50256":"x"}}`, "logit_bias.50256", "expected a number"},
		{"logit_bias array", `{"logit_bias":[]}`, "logit_bias", "expected an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &openaiv1.ChatCompletionRequest{Model: "stale"}
			err := Unmarshal([]byte(tt.in), m)
			assertDecodeError(t, err, tt.param, tt.msgPart)
			if !proto.Equal(m, &openaiv1.ChatCompletionRequest{}) {
				t.Errorf("message not left empty after error: %v", m)
			}
		})
	}
}

// nest is n nested JSON arrays.
func nest(n int) string {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, '[')
	}
	for range n {
		b = append(b, ']')
	}
	return string(b)
}

func TestDecodeErrorString(t *testing.T) {
	if got := (&DecodeError{Param: "messages[0].content", Msg: "expected a string"}).Error(); got != "messages[0].content: expected a string" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&DecodeError{Msg: "invalid JSON: x"}).Error(); got != "invalid JSON: x" {
		t.Errorf("Error() = %q", got)
	}
}

func TestMarshalChatRequest(t *testing.T) {
	tests := []struct {
		name string
		in   *openaiv1.ChatCompletionRequest
		want string
	}{
		{
			name: "only set fields",
			in: &openaiv1.ChatCompletionRequest{
				Model:    "m",
				Messages: []*openaiv1.ChatMessage{{Role: "user", Content: textContent("hi")}},
			},
			want: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "empty request",
			in:   &openaiv1.ChatCompletionRequest{},
			want: `{}`,
		},
		{
			name: "original union forms",
			in: &openaiv1.ChatCompletionRequest{
				Messages: []*openaiv1.ChatMessage{
					{Role: "user", Content: partsContent(
						&openaiv1.ContentPart{Type: "text"},
						&openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "u", Detail: "low"}},
						&openaiv1.ContentPart{Type: "input_audio", InputAudio: &openaiv1.InputAudio{Data: "d", Format: "mp3"}},
					)},
					{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Index: 4, Id: "c", Type: "function", Function: &openaiv1.FunctionCall{Name: "f", Arguments: "{}"}}}},
				},
				Stream:        true,
				StreamOptions: &openaiv1.StreamOptions{},
				Stop:          []string{"x"},
				ToolChoice:    &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "f"}},
				LogitBias:     map[string]float64{"2": 1, "10": -1e-9},
				Temperature:   proto.Float64(0),
			},
			want: `{"messages":[{"role":"user","content":[{"type":"text","text":""},{"type":"image_url","image_url":{"url":"u","detail":"low"}},` +
				`{"type":"input_audio","input_audio":{"data":"d","format":"mp3"}}]},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],` +
				`"stream":true,"stream_options":{"include_usage":false},"temperature":0,"stop":["x"],` +
				`"tool_choice":{"type":"function","function":{"name":"f"}},"logit_bias":{"10":-1e-9,"2":1}}`,
		},
		{
			name: "tool_choice mode",
			in:   &openaiv1.ChatCompletionRequest{ToolChoice: &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "auto"}}},
			want: `{"tool_choice":"auto"}`,
		},
		{
			name: "schema text written as it is",
			in: &openaiv1.ChatCompletionRequest{Tools: []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{
				Name:           "f",
				ParametersJson: `{"type":"object","required":["b","a"],"properties":{"b":{"maximum":1E21},"a":{"default":null}}}`,
			}}}},
			want: `{"tools":[{"type":"function","function":{"name":"f","parameters":` +
				`{"type":"object","required":["b","a"],"properties":{"b":{"maximum":1E21},"a":{"default":null}}}}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertMarshal(t, tt.in, tt.want) })
	}
}
