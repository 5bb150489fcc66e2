package openaijson

import (
	"strings"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"google.golang.org/protobuf/proto"
)

// A request is JSON text, which must be UTF-8 (RFC 8259): a byte that is
// not is refused naming the field, never replaced and passed on.
func TestRequestsRefuseInvalidUTF8(t *testing.T) {
	tests := []struct {
		name  string
		msg   func() proto.Message
		in    string
		param string
	}{
		{"chat content", chat, `{"model":"m","messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
		{"chat model", chat, `{"model":"mock-` + "\xc3(" + `","messages":[]}`, "model"},
		{"chat part text", chat, `{"messages":[{"role":"user","content":[{"type":"text","text":"` + "\xe2\x82" + `"}]}]}`, "messages[0].content[0].text"},
		{"chat string after an escape", chat, `{"user":"\n` + "\xff" + `"}`, "user"},
		{"chat stop element", chat, `{"stop":["ok","` + "\xf0\x9f" + `"]}`, "stop[1]"},
		{"chat tool arguments", chat, `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"` + "\xff" + `"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"chat schema", chat, `{"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"d":"a` + "\xff" + `"}}}}`, "response_format.json_schema.schema.d"},
		{"chat unknown field", chat, `{"extra":{"x":["` + "\xff" + `"]}}`, "extra.x[0]"},
		{"chat key of a known object", chat, `{"messages":[{"r` + "\xff" + `le":"user"}]}`, "messages[0]"},
		{"chat top-level key", chat, `{"` + "\xff" + `":1}`, ""},
		{"an encoded surrogate is not UTF-8", chat, `{"model":"` + "\xed\xa0\x80" + `"}`, "model"},
		{"embeddings input", embed, `{"model":"m","input":"a` + "\xff" + `b"}`, "input"},
		{"embeddings input array", embed, `{"model":"m","input":["ok","` + "\xff" + `"]}`, "input"},
		{"embeddings encoding_format", embed, `{"model":"m","input":"x","encoding_format":"` + "\xff" + `"}`, "encoding_format"},
		{"completion prompt", completion, `{"model":"m","prompt":["a","` + "\xff" + `"]}`, "prompt[1]"},
		{"completion suffix", completion, `{"model":"m","prompt":"a","suffix":"` + "\xff" + `"}`, "suffix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg()
			err := Unmarshal([]byte(tt.in), m)
			assertDecodeError(t, err, tt.param, "not valid UTF-8")
			if !strings.Contains(err.Error(), "JSON text must be UTF-8") {
				t.Errorf("error %q does not say why", err)
			}
		})
	}
}

func chat() proto.Message       { return &openaiv1.ChatCompletionRequest{} }
func embed() proto.Message      { return &openaiv1.EmbeddingRequest{} }
func completion() proto.Message { return &openaiv1.CompletionRequest{} }

// Malformed JSON after the bad string is reported as malformed, as for any
// other field error.
func TestInvalidUTF8ThenMalformed(t *testing.T) {
	err := Unmarshal([]byte(`{"model":"`+"\xff"+`","x":}`), &openaiv1.ChatCompletionRequest{})
	assertDecodeError(t, err, "", "invalid JSON")
}

// What nodes send back is relayed as well as it can be: bad bytes become
// U+FFFD there. Lone surrogate escapes are valid JSON text and become
// U+FFFD everywhere.
func TestNodeOutputAndSurrogatesStayLenient(t *testing.T) {
	var c openaiv1.ChatCompletion
	if err := Unmarshal([]byte(`{"model":"a`+"\xff"+`b","choices":[]}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.GetModel() != "a\uFFFDb" {
		t.Errorf("model = %q", c.GetModel())
	}
	var r openaiv1.ChatCompletionRequest
	if err := Unmarshal([]byte(`{"user":"\ud800x"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.GetUser() != "\uFFFDx" {
		t.Errorf("user = %q", r.GetUser())
	}
}

func TestCheckUTF8(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		param string // "" with ok: no error
		ok    bool
	}{
		{"valid", `{"model":"m","messages":[{"role":"user","content":"é😀"}]}`, "", true},
		{"not JSON is left to the caller's parser", "{\xff", "", true},
		{"Ollama chat content", `{"model":"m","messages":[{"role":"user","content":"a` + "\xff" + `"}]}`, "messages[0].content", false},
		{"Ollama options", `{"model":"m","options":{"stop":["` + "\xc3(" + `"]}}`, "options.stop[0]", false},
		{"model", `{"model":"mock-` + "\xc3(" + `"}`, "model", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUTF8([]byte(tt.in))
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckUTF8 = %v, want nil", err)
				}
				return
			}
			assertDecodeError(t, err, tt.param, "not valid UTF-8")
		})
	}
}

// An error quotes at most a short prefix of what the client sent, however
// long that was.
func TestDecodeErrorsClipClientValues(t *testing.T) {
	huge := strings.Repeat("z", 1<<20)
	tests := []struct {
		name, in string
	}{
		{"content part type", `{"messages":[{"role":"user","content":[{"type":"` + huge + `"}]}]}`},
		{"tool_choice type", `{"tool_choice":{"type":"` + huge + `"}}`},
		{"integer literal", `{"max_tokens":1` + strings.Repeat("0", 1<<20) + `}`},
		{"fraction literal", `{"max_tokens":1.` + strings.Repeat("5", 1<<20) + `}`},
		{"float literal", `{"temperature":1` + strings.Repeat("0", 1<<20) + `}`},
		{"unknown key", `{"` + huge + `":{"a":"` + "\xff" + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal([]byte(tt.in), &openaiv1.ChatCompletionRequest{})
			if err == nil {
				t.Fatal("no error")
			}
			if n := len(err.Error()); n > 400 {
				t.Errorf("error is %d bytes long: %.200q…", n, err.Error())
			}
			if !strings.Contains(err.Error(), "…") {
				t.Errorf("error %q does not show that the value was cut", err)
			}
		})
	}
	if apierror.ClipRunes > 100 {
		t.Fatalf("ClipRunes = %d; the bound above assumes a short prefix", apierror.ClipRunes)
	}
}
