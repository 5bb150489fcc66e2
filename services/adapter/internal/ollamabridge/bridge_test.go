package ollamabridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/anthropic"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	chatEP   = adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT
	genEP    = adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE
	embedEP  = adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED
	legacyEP = adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS
	showEP   = adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW
)

// node is an OpenAI-compatible node on loopback: it records each request
// (method, path and JSON body) and answers with answer.
type node struct {
	mu       sync.Mutex
	requests []received
}

type received struct {
	route string // "POST /v1/chat/completions"
	body  map[string]any
	raw   string // the body as sent, for what the map loses (key order)
}

func (n *node) last(t *testing.T) received {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	require.NotEmpty(t, n.requests, "the node got no request")
	return n.requests[len(n.requests)-1]
}

// newBridge starts a vLLM-kind node answering with answer and returns a
// bridge over the adapter's real OpenAI-compatible client for it.
func newBridge(t *testing.T, answer http.HandlerFunc) (*Bridge, *node) {
	t.Helper()
	return newBridgeFor(t, &nodev1.Node{Id: "n1", Kind: nodev1.Kind_KIND_VLLM}, nodev1.ModelType_MODEL_TYPE_UNSPECIFIED, answer)
}

// newBridgeFor starts a node of spec's kind (its base URL filled in)
// answering with answer and returns a bridge over the adapter's real
// client for it, for a model of type mt.
func newBridgeFor(t *testing.T, spec *nodev1.Node, mt nodev1.ModelType, answer http.HandlerFunc) (*Bridge, *node) {
	t.Helper()
	n := &node{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := received{route: r.Method + " " + r.URL.Path}
		if raw, _ := io.ReadAll(r.Body); len(raw) > 0 {
			rec.raw = string(raw)
			assert.NoError(t, json.Unmarshal(raw, &rec.body), "the node got invalid JSON: %s", raw)
		}
		n.mu.Lock()
		n.requests = append(n.requests, rec)
		n.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	// Every key variable a node names holds a key.
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(string) (string, bool) { return "test-key", true }, Trust: localSecrets(t)})
	t.Cleanup(pool.Close)
	spec = proto.CloneOf(spec)
	spec.BaseUrl = srv.URL
	conn, err := pool.Client(spec)
	require.NoError(t, err)
	var api API = openaicompat.New(conn)
	if spec.GetKind() == nodev1.Kind_KIND_ANTHROPIC {
		api = anthropic.New(conn)
	}
	return New(api, spec, mt), n
}

// serve runs one bridge request and returns the objects it sent, decoded.
func serve(t *testing.T, b *Bridge, ep adapterv1.OllamaEndpoint, body string, firstToken time.Duration) ([]map[string]any, error) {
	t.Helper()
	var out []map[string]any
	err := b.Serve(t.Context(), ep, []byte(body), firstToken, 0, func(obj []byte) error {
		var m map[string]any
		require.NoError(t, json.Unmarshal(obj, &m), "the bridge sent invalid JSON: %s", obj)
		out = append(out, m)
		return nil
	})
	return out, err
}

// completion answers a non-streamed chat with one message.
func completion(content string, usage string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		c, _ := json.Marshal(content)
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}]%s}`, c, usage)
	}
}

// events answers with an SSE stream of the given data payloads and [DONE].
func events(data ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range data {
			fmt.Fprintf(w, "data: %s\n\n", d)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}
}

func chunk(delta string, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`, delta, f)
}

const usageChunk = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}`

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	return v
}

// TestRequestTranslation checks the OpenAI request the node receives for
// each kind of Ollama request.
func TestRequestTranslation(t *testing.T) {
	tests := []struct {
		name string
		ep   adapterv1.OllamaEndpoint
		body string
		want map[string]string // OpenAI field -> its JSON
		none []string          // OpenAI fields that must be absent
	}{{
		name: "plain chat with options",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],
			"options":{"temperature":0.2,"top_p":0.9,"seed":42,"num_predict":64,"stop":["\n\n","END"],"presence_penalty":0.5,"frequency_penalty":0.25}}`,
		want: map[string]string{
			"model":             `"m"`,
			"messages":          `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]`,
			"temperature":       `0.2`,
			"top_p":             `0.9`,
			"seed":              `42`,
			"max_tokens":        `64`,
			"stop":              `["\n\n","END"]`,
			"presence_penalty":  `0.5`,
			"frequency_penalty": `0.25`,
		},
		none: []string{"response_format", "tools"},
	}, {
		name: "num_predict -1 is no limit",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":-1}}`,
		none: []string{"max_tokens"},
	}, {
		name: "images become image parts",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"messages":[{"role":"user","content":"what is this?","images":["aGVsbG8="]}]}`,
		want: map[string]string{"messages": `[{"role":"user","content":[{"type":"text","text":"what is this?"},
			{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]}]`},
	}, {
		name: "tools, a tool call and its result",
		ep:   chatEP,
		body: `{"model":"m","stream":false,
			"tools":[{"type":"function","function":{"name":"weather","description":"the weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
			"messages":[{"role":"user","content":"weather in Paris?"},
				{"role":"assistant","content":"","tool_calls":[{"function":{"name":"weather","arguments":{"city":"Paris"}}}]},
				{"role":"tool","tool_name":"weather","content":"sunny"}]}`,
		want: map[string]string{
			"tools": `[{"type":"function","function":{"name":"weather","description":"the weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`,
			"messages": `[{"role":"user","content":"weather in Paris?"},
				{"role":"assistant","content":"","tool_calls":[{"id":"call_1_0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
				{"role":"tool","name":"weather","content":"sunny","tool_call_id":"call_1_0"}]`,
		},
	}, {
		name: "two calls of one tool: each result answers its own call, in order",
		ep:   chatEP,
		body: `{"model":"m","stream":false,
			"messages":[{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":"","tool_calls":[{"function":{"name":"weather","arguments":{"city":"Paris"}}},{"function":{"name":"weather","arguments":{"city":"Rome"}}}]},
				{"role":"tool","tool_name":"weather","content":"sunny"},
				{"role":"tool","content":"rainy"}]}`,
		want: map[string]string{
			"messages": `[{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":"","tool_calls":[{"id":"call_1_0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"call_1_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
				{"role":"tool","name":"weather","content":"sunny","tool_call_id":"call_1_0"},
				{"role":"tool","content":"rainy","tool_call_id":"call_1_1"}]`,
		},
	}, {
		name: "num_predict 0 is no limit too",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":0}}`,
		none: []string{"max_tokens"},
	}, {
		name: "an image's type comes from its bytes",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"messages":[{"role":"user","content":"this?","images":["/9j/4AAQSkZJRgAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="]}]}`,
		want: map[string]string{"messages": `[{"role":"user","content":[{"type":"text","text":"this?"},
			{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQSkZJRgAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}}]}]`},
	}, {
		name: "tool_call_id names the call a result answers",
		ep:   chatEP,
		body: `{"model":"m","stream":false,
			"messages":[{"role":"assistant","content":"","tool_calls":[{"id":"c1","function":{"name":"w","arguments":{}}},{"id":"c2","function":{"name":"w","arguments":{}}}]},
				{"role":"tool","tool_call_id":"c2","content":"second"},
				{"role":"tool","content":"first"}]}`,
		want: map[string]string{
			"messages": `[{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}},
					{"id":"c2","type":"function","function":{"name":"w","arguments":"{}"}}]},
				{"role":"tool","content":"second","tool_call_id":"c2"},
				{"role":"tool","content":"first","tool_call_id":"c1"}]`,
		},
	}, {
		name: "format json",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"format":"json","messages":[{"role":"user","content":"hi"}]}`,
		want: map[string]string{"response_format": `{"type":"json_object"}`},
	}, {
		name: "format schema",
		ep:   chatEP,
		body: `{"model":"m","stream":false,"format":{"type":"object","properties":{"age":{"type":"integer"}}},"messages":[{"role":"user","content":"hi"}]}`,
		want: map[string]string{"response_format": `{"type":"json_schema","json_schema":{"name":"format","schema":{"type":"object","properties":{"age":{"type":"integer"}}}}}`},
	}, {
		name: "generate: system and prompt with images",
		ep:   genEP,
		body: `{"model":"m","stream":false,"system":"sys","prompt":"describe","images":["aW1n"],"options":{"temperature":0}}`,
		want: map[string]string{
			"messages": `[{"role":"system","content":"sys"},{"role":"user","content":[{"type":"text","text":"describe"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,aW1n"}}]}]`,
			"temperature": `0`,
		},
	}, {
		name: "a stream asks for usage",
		ep:   chatEP,
		body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		want: map[string]string{"stream": `true`, "stream_options": `{"include_usage":true}`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, n := newBridge(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
					events(chunk(`{"role":"assistant","content":"ok"}`, "stop"))(w, r)
					return
				}
				completion("ok", "")(w, r)
			})
			_, err := serve(t, b, tt.ep, tt.body, 0)
			require.NoError(t, err)
			got := n.last(t)
			assert.Equal(t, "POST /v1/chat/completions", got.route)
			for field, want := range tt.want {
				assert.Equal(t, jsonOf(t, want), got.body[field], field)
			}
			for _, field := range tt.none {
				assert.NotContains(t, got.body, field)
			}
		})
	}
}

// A format schema and tool parameters reach the node as the client wrote
// them: the model writes the answer's fields (and a call's arguments) in
// the order of the schema's properties.
func TestSchemasKeepKeyOrder(t *testing.T) {
	schema := `{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean","description":"1.50 \u00e9"}},"required":["zeta","alpha"],"x":1.50}`
	b, n := newBridge(t, completion("{}", ""))
	body := `{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}],"format":` + schema +
		`,"tools":[{"type":"function","function":{"name":"f","parameters":` + schema + `}}]}`
	_, err := serve(t, b, chatEP, body, 0)
	require.NoError(t, err)
	raw := n.last(t).raw
	assert.Contains(t, raw, `"json_schema":{"name":"format","schema":`+schema+`}`)
	assert.Contains(t, raw, `"parameters":`+schema+`}`)
}

func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name, body, msg string
		ep              adapterv1.OllamaEndpoint
	}{
		{"bad JSON", `{"model":`, "invalid JSON body", chatEP},
		{"messages not a list", `{"model":"m","messages":"hi"}`, "invalid JSON body", chatEP},
		{"format neither json nor schema", `{"model":"m","format":"xml"}`, `format must be "json" or a JSON schema`, chatEP},
		{"format a number", `{"model":"m","format":3}`, "format must be", genEP},
		{"format an array", `{"model":"m","format":[{}]}`, "format must be", chatEP},
		{"tool parameters a string", `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]}`,
			"tools[0].function.parameters must be a JSON Schema object", chatEP},
		{"embed without input", `{"model":"m"}`, "input is required", embedEP},
		{"embed input of numbers", `{"model":"m","input":[1,2]}`, "input must be a string or an array of strings", embedEP},
		{"show bad JSON", `[`, "invalid JSON body", showEP},
		{"a tool result answering no call", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_name":"weather","content":"sunny"}]}`,
			`messages[1]: a tool result (tool_name "weather") must answer a call`, chatEP},
		{"unknown endpoint", `{"model":"m"}`, "unsupported Ollama endpoint", adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_UNSPECIFIED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, n := newBridge(t, completion("never", ""))
			out, err := serve(t, b, tt.ep, tt.body, 0)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.InvalidArgument, e.Code)
			assert.Contains(t, e.Message, tt.msg)
			assert.Empty(t, out)
			assert.Empty(t, n.requests, "a bad request reached the node")
		})
	}
}

func TestChatStream(t *testing.T) {
	b, _ := newBridge(t, events(
		chunk(`{"role":"assistant","content":""}`, ""),
		chunk(`{"content":"Hel"}`, ""),
		chunk(`{"content":"lo"}`, ""),
		chunk(`{}`, "length"),
		usageChunk))
	out, err := serve(t, b, chatEP, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, time.Minute)
	require.NoError(t, err)
	require.Len(t, out, 4)
	assert.Equal(t, map[string]any{"role": "assistant", "content": ""}, out[0]["message"],
		"the node's first chunk, empty: the answer has started")
	out = out[1:]
	for i, text := range []string{"Hel", "lo"} {
		assert.Equal(t, "m", out[i]["model"])
		assert.Equal(t, false, out[i]["done"])
		assert.Equal(t, map[string]any{"role": "assistant", "content": text}, out[i]["message"])
		assert.NotEmpty(t, out[i]["created_at"])
	}
	done := out[2]
	assert.Equal(t, true, done["done"])
	assert.Equal(t, "length", done["done_reason"])
	assert.Equal(t, map[string]any{"role": "assistant", "content": ""}, done["message"])
	assert.EqualValues(t, 5, done["eval_count"], "the node's completion_tokens")
	assert.EqualValues(t, 7, done["prompt_eval_count"])
	for _, f := range []string{"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"} {
		assert.Contains(t, done, f)
	}
	assert.Greater(t, done["total_duration"], float64(0))
}

// A thinking model's reasoning (reasoning_content from vLLM or llama.cpp,
// reasoning from Ollama's /v1) reaches Ollama clients as thinking: in the
// message for chat, beside the response for generate.
func TestThinkingStream(t *testing.T) {
	for _, field := range []string{"reasoning_content", "reasoning"} {
		t.Run(field, func(t *testing.T) {
			answer := func() []string {
				return []string{
					chunk(`{"role":"assistant","`+field+`":"Let me"}`, ""),
					chunk(`{"`+field+`":" think."}`, ""),
					chunk(`{"content":"42"}`, "stop"),
				}
			}
			b, _ := newBridge(t, events(answer()...))
			out, err := serve(t, b, chatEP, `{"model":"m","messages":[{"role":"user","content":"why?"}]}`, time.Minute)
			require.NoError(t, err)
			require.Len(t, out, 4)
			assert.Equal(t, map[string]any{"role": "assistant", "content": "", "thinking": "Let me"}, out[0]["message"])
			assert.Equal(t, map[string]any{"role": "assistant", "content": "", "thinking": " think."}, out[1]["message"])
			assert.Equal(t, map[string]any{"role": "assistant", "content": "42"}, out[2]["message"])
			assert.EqualValues(t, 3, out[3]["eval_count"], "thinking counts as output")

			b, _ = newBridge(t, events(answer()...))
			out, err = serve(t, b, genEP, `{"model":"m","prompt":"why?"}`, 0)
			require.NoError(t, err)
			require.Len(t, out, 4)
			assert.Equal(t, "Let me", out[0]["thinking"])
			assert.Equal(t, "", out[0]["response"])
			assert.Equal(t, "42", out[2]["response"])
			assert.NotContains(t, out[2], "thinking")
		})
	}
}

func TestGenerateStreamWithoutUsage(t *testing.T) {
	b, _ := newBridge(t, events(
		chunk(`{"content":"a"}`, ""),
		chunk(`{"content":"b"}`, ""),
		chunk(`{"content":"c"}`, "stop")))
	out, err := serve(t, b, genEP, `{"model":"m","prompt":"abc"}`, 0)
	require.NoError(t, err)
	require.Len(t, out, 4)
	for i, text := range []string{"a", "b", "c"} {
		assert.Equal(t, text, out[i]["response"])
		assert.NotContains(t, out[i], "message")
	}
	done := out[3]
	assert.Equal(t, true, done["done"])
	assert.Equal(t, "", done["response"])
	assert.Equal(t, "stop", done["done_reason"])
	assert.EqualValues(t, 3, done["eval_count"], "counted from the chunks when the node reports no usage")
	assert.EqualValues(t, 0, done["prompt_eval_count"])
}

// TestStreamedToolCall: fragments of a call are sent as one whole call
// with arguments as an object, as Ollama does.
func TestStreamedToolCall(t *testing.T) {
	b, _ := newBridge(t, events(
		chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}`, ""),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, ""),
		chunk(`{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]}`, ""),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, ""),
		chunk(`{}`, "tool_calls"),
		usageChunk))
	out, err := serve(t, b, chatEP, `{"model":"m","messages":[{"role":"user","content":"weather?"}],"tools":[]}`, 0)
	require.NoError(t, err)
	require.Len(t, out, 6, "an empty object per fragment — the node is working — then the call, then done")
	for _, o := range out[:4] {
		assert.Equal(t, map[string]any{"role": "assistant", "content": ""}, o["message"])
	}
	out = out[4:]
	calls := jsonOf(t, `[{"id":"call_a","function":{"index":0,"name":"weather","arguments":{"city":"Paris"}}},
		{"id":"call_b","function":{"index":1,"name":"time","arguments":{}}}]`)
	assert.Equal(t, map[string]any{"role": "assistant", "content": "", "tool_calls": calls}, out[0]["message"])
	assert.Equal(t, false, out[0]["done"])
	assert.Equal(t, true, out[1]["done"])
	assert.Equal(t, "stop", out[1]["done_reason"], "Ollama ends a tool call with stop")
}

func TestChatWhole(t *testing.T) {
	tests := []struct {
		name       string
		ep         adapterv1.OllamaEndpoint
		answer     string
		wantText   string
		wantCalls  string
		wantReason string
		wantEval   float64
	}{{
		name:       "text with usage",
		ep:         chatEP,
		answer:     `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
		wantText:   "hi there",
		wantReason: "stop",
		wantEval:   2,
	}, {
		name:       "text without usage counts one piece",
		ep:         genEP,
		answer:     `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}]}`,
		wantText:   "hi",
		wantReason: "length",
		wantEval:   1,
	}, {
		name:       "a tool call",
		ep:         chatEP,
		answer:     `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"not json"}}]},"finish_reason":"tool_calls"}]}`,
		wantCalls:  `[{"id":"c1","function":{"index":0,"name":"f","arguments":{"_raw":"not json"}}}]`,
		wantReason: "stop",
		wantEval:   1,
	}, {
		name:       "only the first choice",
		ep:         chatEP,
		answer:     `{"choices":[{"index":1,"message":{"role":"assistant","content":"second"},"finish_reason":"stop"},{"index":0,"message":{"role":"assistant","content":"first"},"finish_reason":"stop"}]}`,
		wantText:   "first",
		wantReason: "stop",
		wantEval:   1,
	}}
	for _, tt := range tests {
		for _, firstToken := range []time.Duration{0, time.Minute} {
			t.Run(fmt.Sprintf("%s/firstToken=%s", tt.name, firstToken), func(t *testing.T) {
				b, _ := newBridge(t, func(w http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
						w.Header().Set("Content-Type", "application/json") // a node that ignores stream
					}
					io.WriteString(w, tt.answer)
				})
				body := `{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}`
				if tt.ep == genEP {
					body = `{"model":"m","stream":false,"prompt":"hi"}`
				}
				out, err := serve(t, b, tt.ep, body, firstToken)
				require.NoError(t, err)
				require.Len(t, out, 1)
				o := out[0]
				assert.Equal(t, true, o["done"])
				assert.Equal(t, tt.wantReason, o["done_reason"])
				assert.Equal(t, tt.wantEval, o["eval_count"])
				if tt.ep == genEP {
					assert.Equal(t, tt.wantText, o["response"])
					return
				}
				msg := o["message"].(map[string]any)
				assert.Equal(t, tt.wantText, msg["content"])
				if tt.wantCalls != "" {
					assert.Equal(t, jsonOf(t, tt.wantCalls), msg["tool_calls"])
				} else {
					assert.NotContains(t, msg, "tool_calls")
				}
			})
		}
	}
}

func TestNodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		code   codes.Code
		msg    string
	}{
		{"unknown model", 404, `{"error":{"message":"The model 'm' does not exist.","type":"NotFoundError","code":404}}`, codes.NotFound, "does not exist"},
		{"bad request", 400, `{"error":{"message":"temperature must be at most 2","type":"BadRequestError"}}`, codes.InvalidArgument, "temperature"},
		{"overloaded", 503, `{"error":{"message":"busy"}}`, codes.Unavailable, "busy"},
	}
	for _, tt := range tests {
		for _, stream := range []string{"true", "false"} {
			t.Run(tt.name+"/stream="+stream, func(t *testing.T) {
				b, _ := newBridge(t, func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
				})
				out, err := serve(t, b, chatEP, `{"model":"m","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`, 0)
				e, ok := apierror.FromError(err)
				require.True(t, ok, "%v", err)
				assert.Equal(t, tt.code, e.Code)
				assert.Equal(t, tt.status, e.HTTPStatus)
				assert.Contains(t, e.Message, tt.msg)
				assert.Equal(t, "n1", e.Node)
				assert.Empty(t, out)
			})
		}
	}
}

// TestStreamBreaksOff: a stream that ends without a finish and [DONE]
// after some text is an error after the objects already sent, and no done
// object is sent.
func TestStreamBreaksOff(t *testing.T) {
	b, _ := newBridge(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", chunk(`{"content":"par"}`, ""))
	})
	out, err := serve(t, b, chatEP, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 0)
	require.Error(t, err)
	require.Len(t, out, 1)
	assert.Equal(t, false, out[0]["done"])
}

// TestFirstTokenTimeout: a node that accepts the request and then says
// nothing is reported hung (UNAVAILABLE) once firstToken has passed.
func TestFirstTokenTimeout(t *testing.T) {
	for _, stream := range []string{"true", "false"} {
		t.Run("stream="+stream, func(t *testing.T) {
			b, _ := newBridge(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
			})
			out, err := serve(t, b, chatEP, `{"model":"m","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`, 20*time.Millisecond)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.Unavailable, e.Code)
			assert.Equal(t, "n1", e.Node)
			assert.Contains(t, e.Message, "no first token within 20ms")
			assert.Empty(t, out)
		})
	}
}

// TestClientCancel: the caller going away is not reported as a hung node.
func TestClientCancel(t *testing.T) {
	entered := make(chan struct{})
	b, _ := newBridge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		close(entered)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-entered; cancel() }()
	err := b.Serve(ctx, chatEP, []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), time.Hour, 0, func([]byte) error { return nil })
	require.Error(t, err)
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Canceled, e.Code)
}

// A chat with no messages (or a generate with no prompt) only loads the
// model in Ollama — the ollama CLI sends one before a session. The bridge
// answers it as Ollama does, without asking the node.
func TestNothingToAnswerIsALoad(t *testing.T) {
	for _, tt := range []struct {
		ep   adapterv1.OllamaEndpoint
		body string
	}{
		{chatEP, `{"model":"m","messages":[]}`},
		{chatEP, `{"model":"m"}`},
		{genEP, `{"model":"m","prompt":""}`},
	} {
		b, n := newBridge(t, completion("never", ""))
		out, err := serve(t, b, tt.ep, tt.body, 0)
		require.NoError(t, err, tt.body)
		require.Len(t, out, 1)
		assert.Equal(t, true, out[0]["done"])
		assert.Equal(t, "load", out[0]["done_reason"])
		assert.Empty(t, n.requests, "the node is not asked")
	}
}

func TestEmbed(t *testing.T) {
	answer := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// out of order on purpose: the answer follows the inputs' order
		io.WriteString(w, `{"object":"list","model":"m","data":[{"object":"embedding","index":1,"embedding":[3,4]},
			{"object":"embedding","index":0,"embedding":[1,2]}],"usage":{"prompt_tokens":4,"total_tokens":4}}`)
	}
	tests := []struct {
		name      string
		ep        adapterv1.OllamaEndpoint
		body      string
		wantInput string
		want      string
	}{{
		name:      "a batch",
		ep:        embedEP,
		body:      `{"model":"m","input":["a","b"],"dimensions":2}`,
		wantInput: `["a","b"]`,
		want:      `{"model":"m","embeddings":[[1,2],[3,4]],"load_duration":0,"prompt_eval_count":4}`,
	}, {
		name:      "one string",
		ep:        embedEP,
		body:      `{"model":"m","input":"a"}`,
		wantInput: `["a"]`,
		want:      `{"model":"m","embeddings":[[1,2],[3,4]],"load_duration":0,"prompt_eval_count":4}`,
	}, {
		name:      "legacy embeddings",
		ep:        legacyEP,
		body:      `{"model":"m","prompt":"a"}`,
		wantInput: `["a"]`,
		want:      `{"embedding":[1,2]}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, n := newBridge(t, answer)
			out, err := serve(t, b, tt.ep, tt.body, 0)
			require.NoError(t, err)
			require.Len(t, out, 1)
			got := n.last(t)
			assert.Equal(t, "POST /v1/embeddings", got.route)
			assert.Equal(t, jsonOf(t, tt.wantInput), got.body["input"])
			want := jsonOf(t, tt.want).(map[string]any)
			if tt.ep == embedEP {
				assert.Contains(t, out[0], "total_duration")
				want["total_duration"] = out[0]["total_duration"]
			}
			assert.Equal(t, want, out[0])
		})
	}
}

func TestShow(t *testing.T) {
	b, n := newBridge(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"other","object":"model","owned_by":"x"},{"id":"m","object":"model","created":1700000000,"owned_by":"vllm"}]}`)
	})
	for _, body := range []string{`{"model":"m"}`, `{"name":"m"}`} {
		out, err := serve(t, b, showEP, body, 0)
		require.NoError(t, err, body)
		require.Len(t, out, 1)
		assert.Equal(t, "GET /v1/models", n.last(t).route)
		assert.Equal(t, map[string]any{"general.owned_by": "vllm"}, out[0]["model_info"])
		assert.Equal(t, "2023-11-14T22:13:20Z", out[0]["modified_at"])
		assert.Contains(t, out[0], "details")
		assert.Contains(t, out[0], "capabilities")
	}

	_, err := serve(t, b, showEP, `{"model":"missing"}`, 0)
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.NotFound, e.Code)
	assert.Equal(t, 404, e.HTTPStatus)
	assert.Equal(t, "model 'missing' not found", e.Message)
}

// localSecrets binds the variables this package's tests name to the test
// servers' hosts, as the operator's -secret-env would.
func localSecrets(t testing.TB) *nodetrust.Policy {
	t.Helper()
	bind := []string{"127.0.0.1", "h"}
	p, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{
		"KEY": bind,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
