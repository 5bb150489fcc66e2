package openaicompat

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, kind nodev1.Kind, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pool := nodeconn.NewPool(nodeconn.Options{})
	t.Cleanup(pool.Close)
	conn, err := pool.Client(&nodev1.Node{Id: "n", Kind: kind, BaseUrl: srv.URL})
	require.NoError(t, err)
	return New(conn)
}

func TestAPIPrefix(t *testing.T) {
	assert.Equal(t, "", APIPrefix(nodev1.Kind_KIND_OPENAI))
	for _, k := range []nodev1.Kind{nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_VLLM, nodev1.Kind_KIND_LLAMACPP, nodev1.Kind_KIND_LMSTUDIO} {
		assert.Equal(t, "/v1", APIPrefix(k), k)
	}
}

func TestListModels(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_VLLM, func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "GET /v1/models", r.Method+" "+r.URL.Path)
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model","created":1,"owned_by":"vllm","max_model_len":4096}]}`)
	})
	list, err := c.ListModels(t.Context())
	require.NoError(t, err)
	require.Len(t, list.GetData(), 1)
	assert.Equal(t, "m", list.GetData()[0].GetId())
	assert.Equal(t, "/v1/models", c.ModelsPath())
}

func TestErrorObjectIn200(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_LLAMACPP, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`)
	})
	_, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "m"})
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, 503, e.HTTPStatus)
	assert.Equal(t, "Loading model", e.Message)
}

func TestInvalidAnswer(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_VLLM, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"choices":`)
	})
	_, err := c.Chat(t.Context(), &openaiv1.ChatCompletionRequest{Model: "m"})
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Internal, e.Code)
	assert.Contains(t, e.Message, "invalid answer")
}

func TestStreamEventTooLarge(t *testing.T) {
	c := client(t, nodev1.Kind_KIND_VLLM, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = io.WriteString(w, "data: "+strings.Repeat("x", 9<<20)+"\n\n")
	})
	err := c.ChatStream(t.Context(), &openaiv1.ChatCompletionRequest{Model: "m"}, func(*openaiv1.ChatCompletionChunk) error {
		t.Fatal("no chunk expected")
		return nil
	})
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Contains(t, e.Message, "too large")
}

func TestCompletionChunks(t *testing.T) {
	cc := &openaiv1.ChatCompletion{
		Id: "c", Created: 5, Model: "m",
		Choices: []*openaiv1.ChatCompletionChoice{{
			Index: 0, FinishReason: "tool_calls",
			Message: &openaiv1.ResponseMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Id: "t1", Type: "function"}}},
		}},
		Usage: &openaiv1.Usage{TotalTokens: 7},
	}
	chunks := CompletionChunks(cc, false)
	require.Len(t, chunks, 1, "no usage chunk unless asked for")
	assert.Equal(t, "chat.completion.chunk", chunks[0].GetObject())
	assert.Nil(t, chunks[0].GetChoices()[0].GetDelta().Content, "a tool call has no content")
	assert.True(t, proto.Equal(cc.GetChoices()[0].GetMessage().GetToolCalls()[0], chunks[0].GetChoices()[0].GetDelta().GetToolCalls()[0]))

	chunks = CompletionChunks(cc, true)
	require.Len(t, chunks, 2)
	assert.Empty(t, chunks[1].GetChoices())
	assert.EqualValues(t, 7, chunks[1].GetUsage().GetTotalTokens())
}

// The node gets the schema and tool parameters as the client wrote them: a
// model writes structured output in the order of the schema's properties.
func TestSchemaKeyOrderReachesTheNode(t *testing.T) {
	const schema = `{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"}},"required":["zeta","alpha"],"x":1.50}`
	const params = `{"type":"object","properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}}`
	bodies := make(chan string, 2)
	c := client(t, nodev1.Kind_KIND_OLLAMA, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		if strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
			return
		}
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}]}`)
	})
	req := &openaiv1.ChatCompletionRequest{Model: "m", Messages: []*openaiv1.ChatMessage{{Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "hi"}}}},
		ResponseFormat: &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "s", SchemaJson: schema}},
		Tools:          []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "f", ParametersJson: params}}}}
	_, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	require.NoError(t, c.ChatStream(t.Context(), req, func(*openaiv1.ChatCompletionChunk) error { return nil }))
	for range 2 {
		body := <-bodies
		assert.Contains(t, body, `"json_schema":{"name":"s","schema":`+schema+`}`)
		assert.Contains(t, body, `"parameters":`+params+`}`)
	}
}
