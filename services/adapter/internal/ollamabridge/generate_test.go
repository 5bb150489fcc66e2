package ollamabridge

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// textChunk is one event of a streamed legacy completion.
func textChunk(text, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return fmt.Sprintf(`{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":%q,"finish_reason":%s}]}`, text, f)
}

const textUsage = `{"id":"c","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`

// wholeText answers a non-streamed legacy completion.
func wholeText(text string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":%q,"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`, text)
	}
}

var (
	vllmNode   = &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_VLLM}
	openaiNode = &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_OPENAI}
)

// A raw prompt is sent as it is to /v1/completions, not wrapped in a chat
// the node would format with the model's template.
func TestGenerateRawStream(t *testing.T) {
	b, n := newBridgeFor(t, vllmNode, nodev1.ModelType_MODEL_TYPE_CHAT, events(textChunk("Hel", ""), textChunk("lo", "length"), textUsage))
	out, err := serve(t, b, genEP, `{"model":"m","prompt":"<|user|>hi<|assistant|>","raw":true,"system":"ignored, as Ollama does with raw","options":{"num_predict":2,"temperature":0.5,"stop":["x"]}}`, time.Minute)
	require.NoError(t, err)
	got := n.last(t)
	assert.Equal(t, "POST /v1/completions", got.route)
	assert.Equal(t, "<|user|>hi<|assistant|>", got.body["prompt"], "the prompt untouched")
	assert.NotContains(t, got.body, "messages")
	assert.NotContains(t, got.body, "suffix")
	assert.EqualValues(t, 2, got.body["max_tokens"])
	assert.EqualValues(t, 0.5, got.body["temperature"])
	assert.Equal(t, []any{"x"}, got.body["stop"])
	assert.Equal(t, true, got.body["stream"])

	var text string
	for _, o := range out[:len(out)-1] {
		assert.Equal(t, false, o["done"])
		assert.NotContains(t, o, "message")
		text += o["response"].(string)
	}
	assert.Equal(t, "Hello", text)
	done := out[len(out)-1]
	assert.Equal(t, true, done["done"])
	assert.Equal(t, "length", done["done_reason"])
	assert.EqualValues(t, 2, done["eval_count"])
	assert.EqualValues(t, 4, done["prompt_eval_count"])
}

func TestGenerateRawWhole(t *testing.T) {
	for _, firstToken := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("first token ", firstToken), func(t *testing.T) {
			answer := wholeText("Hello")
			if firstToken > 0 { // folded from a stream
				answer = events(textChunk("Hel", ""), textChunk("lo", "length"), textUsage)
			}
			b, n := newBridgeFor(t, vllmNode, nodev1.ModelType_MODEL_TYPE_CHAT, answer)
			out, err := serve(t, b, genEP, `{"model":"m","prompt":"once upon","raw":true,"stream":false}`, firstToken)
			require.NoError(t, err)
			assert.Equal(t, "POST /v1/completions", n.last(t).route)
			require.Len(t, out, 1)
			assert.Equal(t, "Hello", out[0]["response"])
			assert.Equal(t, true, out[0]["done"])
			assert.Equal(t, "length", out[0]["done_reason"])
			assert.EqualValues(t, 2, out[0]["eval_count"])
		})
	}
}

// suffix goes to /v1/completions on nodes whose kind takes it there.
func TestGenerateSuffix(t *testing.T) {
	for _, stream := range []string{"true", "false"} {
		t.Run("stream "+stream, func(t *testing.T) {
			answer := wholeText("return a + b")
			if stream == "true" {
				answer = events(textChunk("return a + b", "stop"))
			}
			b, n := newBridgeFor(t, openaiNode, nodev1.ModelType_MODEL_TYPE_CHAT, answer)
			out, err := serve(t, b, genEP, `{"model":"m","prompt":"def add(a, b):\n    ","suffix":"\n\nprint(add(1, 2))","stream":`+stream+`}`, 0)
			require.NoError(t, err)
			got := n.last(t)
			assert.Equal(t, "POST /completions", got.route, "an openai node's base URL is its API base")
			assert.Equal(t, "\n\nprint(add(1, 2))", got.body["suffix"])
			assert.Equal(t, "def add(a, b):\n    ", got.body["prompt"])
			assert.Equal(t, true, out[len(out)-1]["done"])
			var text string
			for _, o := range out {
				text += o["response"].(string)
			}
			assert.Equal(t, "return a + b", text)
		})
	}
}

// Fields a node's kind cannot honour are refused in Ollama's terms (400
// naming the field and the kind), before the node is asked anything.
func TestGenerateRefusals(t *testing.T) {
	anthropicNode := &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_ANTHROPIC}
	llamaNode := &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_LLAMACPP}
	tests := []struct {
		name string
		node *nodev1.Node
		body string
		want string
	}{
		{"suffix on vllm", vllmNode, `{"model":"m","prompt":"a","suffix":"b"}`, "suffix is not supported on vllm nodes (node n1)"},
		{"suffix on llama.cpp", llamaNode, `{"model":"m","prompt":"a","suffix":"b","raw":true,"stream":false}`, "suffix is not supported on llamacpp nodes"},
		{"raw on anthropic", anthropicNode, `{"model":"m","prompt":"a","raw":true}`, "raw is not supported on anthropic nodes"},
		{"template", vllmNode, `{"model":"m","prompt":"a","template":"{{ .Prompt }}"}`, "template is not supported on vllm nodes"},
		{"template with raw", openaiNode, `{"model":"m","prompt":"a","raw":true,"template":"{{ .Prompt }}","stream":false}`, "template is not supported on openai nodes"},
		{"context", vllmNode, `{"model":"m","prompt":"a","context":[1,2,3]}`, "context is not supported on vllm nodes"},
		{"context not a list", vllmNode, `{"model":"m","prompt":"a","context":"x"}`, "context is not supported"},
		{"images with raw", vllmNode, `{"model":"m","prompt":"a","raw":true,"images":["iVBORw0KGgo="]}`, "images with raw is not supported on vllm nodes"},
		{"format with raw", vllmNode, `{"model":"m","prompt":"a","raw":true,"format":"json"}`, "format with raw is not supported"},
		{"system with suffix", openaiNode, `{"model":"m","prompt":"a","suffix":"b","system":"s"}`, "system with suffix is not supported on openai nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, n := newBridgeFor(t, tt.node, nodev1.ModelType_MODEL_TYPE_CHAT, func(w http.ResponseWriter, _ *http.Request) {
				t.Error("the node was asked")
				w.WriteHeader(http.StatusInternalServerError)
			})
			out, err := serve(t, b, genEP, tt.body, 0)
			assert.Empty(t, out)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.InvalidArgument, e.Code)
			assert.Contains(t, e.Message, tt.want)
			n.mu.Lock()
			assert.Empty(t, n.requests)
			n.mu.Unlock()
		})
	}
}

// An empty context (what clients send for a first turn) is no context.
func TestGenerateEmptyContext(t *testing.T) {
	for _, ctx := range []string{`null`, `[]`} {
		b, n := newBridge(t, completion("hi", ""))
		out, err := serve(t, b, genEP, `{"model":"m","prompt":"a","stream":false,"context":`+ctx+`}`, 0)
		require.NoError(t, err, ctx)
		assert.Equal(t, "POST /v1/chat/completions", n.last(t).route)
		assert.Equal(t, "hi", out[0]["response"])
	}
}

// TestShowCapabilities: /api/show on a node without it says what the
// mesh knows of the model: embedding models embed; chat models complete,
// and take tools where the node's kind does for every model.
func TestShowCapabilities(t *testing.T) {
	chat, embedding, unknown := nodev1.ModelType_MODEL_TYPE_CHAT, nodev1.ModelType_MODEL_TYPE_EMBEDDING, nodev1.ModelType_MODEL_TYPE_UNSPECIFIED
	tests := []struct {
		kind   nodev1.Kind
		keyEnv string
		mt     nodev1.ModelType
		want   []any
	}{
		{nodev1.Kind_KIND_VLLM, "", embedding, []any{"embedding"}},
		{nodev1.Kind_KIND_VLLM, "", chat, []any{"completion"}},
		{nodev1.Kind_KIND_LLAMACPP, "", unknown, []any{"completion"}},
		{nodev1.Kind_KIND_LMSTUDIO, "", chat, []any{"completion"}},
		{nodev1.Kind_KIND_LMSTUDIO, "", embedding, []any{"embedding"}},
		{nodev1.Kind_KIND_OPENAI, "", chat, []any{"completion"}},
		{nodev1.Kind_KIND_OPENAI, "KEY", chat, []any{"completion", "tools"}},
		{nodev1.Kind_KIND_OPENAI, "KEY", embedding, []any{"embedding"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s key=%q %s", tt.kind, tt.keyEnv, tt.mt), func(t *testing.T) {
			b, _ := newBridgeFor(t, &nodev1.Node{Id: "n1", Kind: tt.kind, ApiKeyEnv: tt.keyEnv}, tt.mt, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model","owned_by":"x"}]}`)
			})
			out, err := serve(t, b, showEP, `{"model":"m"}`, 0)
			require.NoError(t, err)
			require.Len(t, out, 1)
			assert.Equal(t, tt.want, out[0]["capabilities"])
		})
	}
	t.Run("anthropic", func(t *testing.T) {
		b := New(nil, &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_ANTHROPIC, ApiKeyEnv: "KEY"}, chat)
		assert.Equal(t, []string{"completion", "tools"}, b.capabilities())
	})
}
