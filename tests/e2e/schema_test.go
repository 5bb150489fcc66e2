package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A structured-output schema and tool parameters reach the node as the
// client wrote them — through the OpenAI edge, native gRPC and the Ollama
// edge (to an Ollama node and, translated, to a vLLM one): the model writes
// the answer's fields in the order of the schema's properties.
func TestSchemaKeyOrderReachesTheNode(t *testing.T) {
	const schema = `{"type":"object","properties":{"zeta":{"type":"integer"},"reasoning":{"type":"string"},"alpha":{"type":"boolean"}},"required":["zeta","reasoning","alpha"],"x":1.50}`
	const params = `{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","maximum":1E2}}}`
	ollama := meshtest.StartNode(t, "ollama-1", simnode.Config{Models: []string{"m"}, Tokens: 2})
	vllm := meshtest.StartNode(t, "vllm-1", simnode.Config{Flavor: "vllm", Models: []string{"v"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{ollama, vllm}, meshtest.Options{})
	forwarded := func(n *meshtest.Node, path string) string { return string(n.LastRequest(path)) }

	t.Run("OpenAI edge", func(t *testing.T) {
		for _, stream := range []string{"false", "true"} {
			ctx := meshtest.Context(t, 10*time.Second)
			resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","stream":`+stream+`,
				"messages":[{"role":"user","content":"hi"}],
				"response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":`+schema+`}},
				"tools":[{"type":"function","function":{"name":"search","parameters":`+params+`}}]}`)
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			got := forwarded(ollama, "/v1/chat/completions")
			assert.Contains(t, got, `"schema":`+schema+`,"strict":true}`, "stream=%s", stream)
			assert.Contains(t, got, `"parameters":`+params+`}`, "stream=%s", stream)
		}
	})

	t.Run("native gRPC", func(t *testing.T) {
		client := routerv1.NewInferenceServiceClient(dial(t, m.GRPCAddr))
		ctx := meshtest.Context(t, 10*time.Second)
		req := userChat("m")
		req.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "answer", SchemaJson: schema}}
		_, err := client.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
		require.NoError(t, err)
		assert.Contains(t, forwarded(ollama, "/v1/chat/completions"), `"schema":`+schema+`}`)

		req.ResponseFormat.JsonSchema.SchemaJson = `{"type":"object",}`
		_, err = client.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	})

	t.Run("Ollama edge", func(t *testing.T) {
		for node, model := range map[*meshtest.Node]string{ollama: "m", vllm: "v"} {
			ctx := meshtest.Context(t, 10*time.Second)
			resp := post(t, ctx, m.RESTURL+"/api/chat", `{"model":"`+model+`","stream":false,"format":`+schema+`,
				"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"search","parameters":`+params+`}}]}`)
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			got := forwarded(node, "/api/chat")
			if node == vllm {
				got = forwarded(node, "/v1/chat/completions")
			}
			assert.Contains(t, got, schema, model)
			assert.Contains(t, got, `"parameters":`+params+`}`, model)
		}
	})
}
