package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// nodeRequests counts the inference requests (POSTs) a node received.
func nodeRequests(n *meshtest.Node) int64 {
	var sum int64
	for key, v := range n.Stats().Requests {
		if strings.HasPrefix(key, "POST ") {
			sum += v
		}
	}
	return sum
}

// rawBytes is a client codec that sends bytes as they are: a Go client's
// own codec refuses to encode a string that is not UTF-8.
type rawBytes struct{}

func (rawBytes) Name() string { return "proto" }
func (rawBytes) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawBytes) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

// What a chaos run sent a real router: strings that are not UTF-8, values
// a node must not see, megabyte-long values echoed in errors, and bodies
// that never arrive. Each is answered at once, in OpenAI's (or Ollama's)
// error JSON, and never reaches the node.
func TestHostileRequests(t *testing.T) {
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 6, TokenDelay: 200 * time.Millisecond})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{RouterArgs: []string{"-body-read-timeout", "500ms"}})
	ctx := meshtest.Context(t, 2*time.Minute)
	before := nodeRequests(n)

	t.Run("invalid UTF-8 is 400 naming the field", func(t *testing.T) {
		for _, tc := range []struct{ path, body, param string }{
			{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
			{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"a` + "\xff" + `b"}]}`, "messages[0].content"},
			{"/v1/chat/completions", `{"model":"mock-` + "\xc3(" + `","messages":[{"role":"user","content":"hi"}]}`, "model"},
			{"/v1/completions", `{"model":"m","prompt":"a` + "\xff" + `b"}`, "prompt"},
			{"/v1/embeddings", `{"model":"m","input":"a` + "\xff" + `b"}`, "input"},
		} {
			resp := post(t, ctx, m.RESTURL+tc.path, tc.body)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.path)
			e := decodeError(t, resp)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Contains(t, e.Error.Message, "not valid UTF-8")
			if assert.NotNil(t, e.Error.Param, tc.path) {
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		}
		for _, path := range []string{"/api/chat", "/api/generate", "/api/embed"} {
			resp := post(t, ctx, m.RESTURL+path, `{"model":"m","prompt":"a`+"\xff"+`b","input":"x","messages":[]}`)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
			b, _ := io.ReadAll(resp.Body)
			assert.Contains(t, string(b), `prompt: string is not valid UTF-8`, path)
		}
		req, err := proto.Marshal(&routerv1.CreateChatCompletionRequest{Request: userChat("m")})
		require.NoError(t, err)
		require.Equal(t, 1, bytes.Count(req, []byte("hello grpc")))
		req = bytes.Replace(req, []byte("hello grpc"), []byte("hello \xffrpc"), 1)
		var out []byte
		err = dial(t, m.GRPCAddr).Invoke(ctx, "/llmesh.router.v1.InferenceService/CreateChatCompletion", req, &out, grpc.ForceCodecV2(rawBytes{}))
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		assert.Contains(t, status.Convert(err).Message(), "request.messages[0].content.text: string is not valid UTF-8")
	})

	t.Run("values a node must not see are 400", func(t *testing.T) {
		for _, tc := range []struct{ path, body, param string }{
			{"/v1/embeddings", `{"model":"m","input":"x","dimensions":0}`, "dimensions"},
			{"/v1/embeddings", `{"model":"m","input":"x","dimensions":-1}`, "dimensions"},
			{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":null}]}`, "messages[0].content"},
			{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user"}]}`, "messages[0].content"},
			{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"top_logprobs":-1,"logprobs":true}`, "top_logprobs"},
			{"/v1/chat/completions", `{"model":"","messages":[{"role":"user","content":"hi"}]}`, "model"},
		} {
			resp := post(t, ctx, m.RESTURL+tc.path, tc.body)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.body)
			e := decodeError(t, resp)
			if assert.NotNil(t, e.Error.Param, tc.body) {
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		}
	})

	t.Run("errors quote a short prefix of a long value", func(t *testing.T) {
		huge := strings.Repeat("x", 1<<20)
		for _, tc := range []struct {
			path, body string
			status     int
		}{
			{"/v1/chat/completions", `{"model":"` + huge + `","messages":[{"role":"user","content":"hi"}]}`, http.StatusNotFound},
			{"/v1/embeddings", `{"model":"m","input":"x","encoding_format":"` + huge + `"}`, http.StatusBadRequest},
			{"/api/chat", `{"model":"` + huge + `"}`, http.StatusNotFound},
		} {
			resp := post(t, ctx, m.RESTURL+tc.path, tc.body)
			assert.Equal(t, tc.status, resp.StatusCode, tc.path)
			b, _ := io.ReadAll(resp.Body)
			assert.Less(t, len(b), 1024, "%s answered %d bytes: %.200s", tc.path, len(b), b)
			assert.Contains(t, string(b), strings.Repeat("x", 64)+"…", tc.path)
		}
		resp, err := http.Get(m.RESTURL + "/v1/models/" + huge[:32<<10])
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		b, _ := io.ReadAll(resp.Body)
		assert.Less(t, len(b), 1024)
	})

	t.Run("headers over -http-max-header-bytes are 431", func(t *testing.T) {
		for _, tc := range []struct{ name, path, header string }{
			{"a long path", "/v1/models/" + strings.Repeat("x", 128<<10), ""},
			{"a long header", "/v1/models", strings.Repeat("x", 128<<10)},
		} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.RESTURL+tc.path, nil)
			require.NoError(t, err)
			req.Header.Set("X-Long", tc.header)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err, tc.name)
			resp.Body.Close()
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode, tc.name)
		}
	})

	t.Run("a body that does not arrive is 408", func(t *testing.T) {
		for _, path := range []string{"/v1/chat/completions", "/api/chat"} {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimPrefix(m.RESTURL, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second))) // the test's bound
			_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"model\":", path)
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "%s: no answer", path)
			assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, path)
			b, _ := io.ReadAll(resp.Body)
			assert.Contains(t, string(b), "request body not received within 500ms", path)
			if path == "/v1/chat/completions" {
				assert.Contains(t, string(b), `"type":"invalid_request_error"`)
			}
		}
	})

	t.Run("an answer may take longer than the body timeout", func(t *testing.T) {
		// Six tokens 200 ms apart: the stream outlives -body-read-timeout.
		resp := post(t, ctx, m.RESTURL+"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		ev := events(t, resp.Body)
		require.NotEmpty(t, ev)
		assert.Equal(t, "[DONE]", ev[len(ev)-1])
	})

	assert.Equal(t, before+1, nodeRequests(n), "only the valid stream reached the node")
}
