package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/adapter/internal/service"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait on the node or the adapter; no test sleeps.
const wait = 5 * time.Second

// startAdapter serves the AdapterService over bufconn through
// grpcserver's interceptors and returns a client. Start it before the test
// nodes: cleanups run last-in first-out, so the nodes then close first and
// release any call a failed test left hanging.
func startAdapter(t *testing.T, env map[string]string) adapterv1.AdapterServiceClient {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Trust: localSecrets(t)})
	srv := grpcserver.New(log)
	adapterv1.RegisterAdapterServiceServer(srv.GRPC, service.New(log, pool, probe.New(pool, wait)))

	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()

	conn, err := grpc.NewClient("passthrough:///adapter",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, conn.Close())
		cancel()
		assert.NoError(t, <-served)
		pool.Close()
	})
	return adapterv1.NewAdapterServiceClient(conn)
}

// startNode runs h as an LLM node on 127.0.0.1.
func startNode(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections() // unblocks handlers even when a test failed midway
		srv.Close()
	})
	return srv
}

func refusedURL(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return "http://" + addr
}

func node(kind nodev1.Kind, url string) *nodev1.Node {
	return &nodev1.Node{Id: "node-1", Kind: kind, BaseUrl: url}
}

func chatReq(model string) *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{
		Model: model,
		Messages: []*openaiv1.ChatMessage{{
			Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "hi"}},
		}},
	}
}

// apiErr asserts err is a status carrying llmesh's ErrorInfo.
func apiErr(t *testing.T, err error) *apierror.Error {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.NotEmpty(t, st.Details(), "status without ErrorInfo: %v", err)
	e, ok := apierror.FromError(err)
	require.True(t, ok)
	return e
}

const completion = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m1",
	"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop","logprobs":null}],
	"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"some_future_field":{"x":1}}`

func TestChat(t *testing.T) {
	var body map[string]any
	var path string
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.Method + " " + r.URL.Path
		assert.Empty(t, r.Header.Get("Authorization"), "no key configured")
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completion)
	})

	req := chatReq("m1")
	req.Stream = true // ignored by Chat
	req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	resp, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: req})
	require.NoError(t, err)
	assert.Equal(t, "POST /v1/chat/completions", path)
	assert.Equal(t, "m1", body["model"])
	assert.NotEqual(t, true, body["stream"])
	assert.NotContains(t, body, "stream_options")
	cc := resp.GetCompletion()
	assert.Equal(t, "chatcmpl-1", cc.GetId())
	require.Len(t, cc.GetChoices(), 1)
	assert.Equal(t, "hello", cc.GetChoices()[0].GetMessage().GetContent())
	assert.Equal(t, "stop", cc.GetChoices()[0].GetFinishReason())
	assert.EqualValues(t, 4, cc.GetUsage().GetTotalTokens())
	assert.Nil(t, resp.GetFirstToken(), "an answer in one piece: no first token seen")
}

// A chat folded from the node's stream reports when its first token came,
// which the router scores the node by.
func TestFoldedChatReportsItsFirstToken(t *testing.T) {
	c := startAdapter(t, nil)
	sn, nd := startSSENode(t)
	type result struct {
		resp *adapterv1.ChatResponse
		err  error
	}
	done := make(chan result, 1)
	began := time.Now()
	go func() {
		resp, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: chatReq("m1"),
			Timeouts: &adapterv1.CallTimeouts{FirstToken: durationpb.New(time.Minute)}})
		done <- result{resp, err}
	}()
	<-sn.bodies
	sn.step(t, chunk("hel", ""))
	sn.step(t, chunk("lo", "stop"))
	sn.step(t, "data: [DONE]\n\n")
	close(sn.steps)
	r := <-done
	elapsed := time.Since(began)
	require.NoError(t, r.err)
	assert.Equal(t, "hello", r.resp.GetCompletion().GetChoices()[0].GetMessage().GetContent())
	require.NotNil(t, r.resp.GetFirstToken())
	assert.Positive(t, r.resp.GetFirstToken().AsDuration())
	assert.LessOrEqual(t, r.resp.GetFirstToken().AsDuration(), elapsed)
}

func TestOpenAIKindUsesBaseURLAsAPIBaseAndSendsKey(t *testing.T) {
	var path, auth string
	c := startAdapter(t, map[string]string{"NODE_API_KEY": "sk-test-123"})
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		_, _ = io.WriteString(w, completion)
	})
	n := &nodev1.Node{Id: "cloud", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: nd.URL + "/openai/v1", ApiKeyEnv: "NODE_API_KEY"}
	_, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: n, Request: chatReq("m1")})
	require.NoError(t, err)
	assert.Equal(t, "/openai/v1/chat/completions", path)
	assert.Equal(t, "Bearer sk-test-123", auth)
}

func TestMissingAPIKey(t *testing.T) {
	var calls atomic.Int32
	c := startAdapter(t, map[string]string{"EMPTY_KEY": ""})
	nd := startNode(t, func(http.ResponseWriter, *http.Request) { calls.Add(1) })
	for _, env := range []string{"EMPTY_KEY", "UNSET_KEY"} {
		n := &nodev1.Node{Id: "cloud", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: nd.URL, ApiKeyEnv: env}
		_, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: n, Request: chatReq("m1")})
		e := apiErr(t, err)
		assert.Equal(t, codes.FailedPrecondition, e.Code)
		assert.Contains(t, e.Message, env)
		assert.Equal(t, "cloud", e.Node)
	}
	assert.Zero(t, calls.Load(), "no request without the key")
}

func TestEmbed(t *testing.T) {
	var body map[string]any
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		if !assert.Equal(t, "/v1/embeddings", r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		_, _ = io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1,2]}],"model":"emb","usage":{"prompt_tokens":2,"total_tokens":2}}`)
	})
	resp, err := c.Embed(t.Context(), &adapterv1.EmbedRequest{
		Node: node(nodev1.Kind_KIND_VLLM, nd.URL),
		Request: &openaiv1.EmbeddingRequest{Model: "emb", Input: &openaiv1.EmbeddingInput{
			Kind: &openaiv1.EmbeddingInput_Text{Text: "hello"},
		}},
	})
	require.NoError(t, err)
	assert.Equal(t, "hello", body["input"])
	require.Len(t, resp.GetEmbeddings().GetData(), 1)
	assert.Equal(t, []float32{0.5, -1, 2}, resp.GetEmbeddings().GetData()[0].GetEmbedding())
	assert.EqualValues(t, 2, resp.GetEmbeddings().GetUsage().GetPromptTokens())
}

// Token-id input goes to the kinds that take it and is refused before the
// node is asked on the others (Ollama answers it with a bare 400).
func TestEmbedTokenInput(t *testing.T) {
	var asked atomic.Int32
	var got atomic.Value
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		var body map[string]json.RawMessage
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		got.Store(string(body["input"]))
		_, _ = io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1]},{"object":"embedding","index":1,"embedding":[2]}],"model":"emb"}`)
	})
	inputs := map[string]*openaiv1.EmbeddingInput{
		"[1,2,3]": {Kind: &openaiv1.EmbeddingInput_Tokens{Tokens: &openaiv1.TokenList{Values: []int64{1, 2, 3}}}},
		"[[1,2],[3]]": {Kind: &openaiv1.EmbeddingInput_TokenLists{TokenLists: &openaiv1.TokenLists{Values: []*openaiv1.TokenList{
			{Values: []int64{1, 2}}, {Values: []int64{3}}}}}},
	}
	for want, in := range inputs {
		for _, kind := range []nodev1.Kind{nodev1.Kind_KIND_OLLAMA, nodev1.Kind_KIND_LMSTUDIO} {
			_, err := c.Embed(t.Context(), &adapterv1.EmbedRequest{Node: node(kind, nd.URL), Request: &openaiv1.EmbeddingRequest{Model: "emb", Input: in}})
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s %s", kind, want)
			e := apiErr(t, err)
			assert.Equal(t, "invalid_request_error", e.Type)
			assert.Equal(t, "input", e.Param)
			assert.Contains(t, e.Message, "kind "+nodespec.KindName(kind))
			assert.Contains(t, e.Message, "send the input as text")
		}
		assert.Zero(t, asked.Load(), "refused before the node is asked")
		for _, kind := range []nodev1.Kind{nodev1.Kind_KIND_VLLM, nodev1.Kind_KIND_LLAMACPP} {
			_, err := c.Embed(t.Context(), &adapterv1.EmbedRequest{Node: node(kind, nd.URL), Request: &openaiv1.EmbeddingRequest{Model: "emb", Input: in}})
			require.NoError(t, err, "%s %s", kind, want)
			assert.JSONEq(t, want, got.Load().(string), "passed as sent")
		}
		asked.Store(0)
	}
}

func TestNodeErrors(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		code     codes.Code
		msg      string
		param    string
		errCode  string
		openType string
	}{
		{"unknown model (openai body)", 404,
			`{"error":{"message":"model \"nope\" not found, try pulling it first","type":"api_error","param":null,"code":null}}`,
			codes.NotFound, `model "nope" not found, try pulling it first`, "", "", "api_error"},
		{"unknown model (ollama body)", 404, `{"error":"model 'nope' not found"}`,
			codes.NotFound, "model 'nope' not found", "", "", "invalid_request_error"},
		{"busy", 503, `{"error":"server busy, please try again.  maximum pending requests exceeded"}`,
			codes.Unavailable, "server busy, please try again.  maximum pending requests exceeded", "", "", "service_unavailable_error"},
		{"rate limited", 429, `{"error":{"message":"Rate limit reached","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`,
			codes.ResourceExhausted, "Rate limit reached", "", "rate_limit_exceeded", "rate_limit_error"},
		{"bad request", 400, `{"error":{"message":"temperature must be <= 2","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`,
			codes.InvalidArgument, "temperature must be <= 2", "temperature", "invalid_value", "invalid_request_error"},
		{"bad key", 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			codes.Unauthenticated, "Incorrect API key provided", "", "invalid_api_key", "invalid_request_error"},
		{"plain text 500", 500, "internal failure\n",
			codes.Internal, "HTTP 500 Internal Server Error: internal failure", "", "", "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startAdapter(t, nil)
			nd := startNode(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			check := func(err error) {
				t.Helper()
				e := apiErr(t, err)
				assert.Equal(t, tc.code, e.Code)
				assert.Equal(t, tc.status, e.HTTPStatus)
				assert.Equal(t, tc.msg, e.Message)
				assert.Equal(t, tc.param, e.Param)
				assert.Equal(t, tc.errCode, e.ErrCode)
				assert.Equal(t, tc.openType, e.Type)
				assert.Equal(t, "node-1", e.Node)
				assert.Equal(t, apierror.ReasonUpstream, e.Reason)
			}
			_, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: chatReq("nope")})
			check(err)

			stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: chatReq("nope")})
			require.NoError(t, err)
			_, err = stream.Recv()
			check(err)

			_, err = c.Embed(t.Context(), &adapterv1.EmbedRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: &openaiv1.EmbeddingRequest{Model: "nope"}})
			check(err)
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	c := startAdapter(t, nil)
	url := refusedURL(t)
	_, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: node(nodev1.Kind_KIND_VLLM, url), Request: chatReq("m1")})
	e := apiErr(t, err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Contains(t, e.Message, "connection refused")
	assert.Equal(t, apierror.ReasonUnreachable, e.Reason)
	assert.Zero(t, e.HTTPStatus)
	assert.NotContains(t, status.Convert(err).Message(), url, "the URL stays out of the message")

	stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_VLLM, url), Request: chatReq("m1")})
	require.NoError(t, err)
	_, err = stream.Recv()
	assert.Equal(t, codes.Unavailable, apiErr(t, err).Code)
}

func TestInvalidRequests(t *testing.T) {
	var calls atomic.Int32
	c := startAdapter(t, nil)
	nd := startNode(t, func(http.ResponseWriter, *http.Request) { calls.Add(1) })
	good := node(nodev1.Kind_KIND_OLLAMA, nd.URL)
	cases := []struct {
		name string
		node *nodev1.Node
		req  *openaiv1.ChatCompletionRequest
		msg  string
	}{
		{"no node", nil, chatReq("m1"), "node is required"},
		{"no node id", &nodev1.Node{Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: nd.URL}, chatReq("m1"), "node.id is required"},
		{"no kind", &nodev1.Node{Id: "n", BaseUrl: nd.URL}, chatReq("m1"), "node.kind is required"},
		{"unknown kind", &nodev1.Node{Id: "n", Kind: 99, BaseUrl: nd.URL}, chatReq("m1"), "not supported"},
		{"bad base url", &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "ftp://x"}, chatReq("m1"), `node n: url "ftp://x": scheme "ftp": want http or https`},
		{"no base url", &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OLLAMA}, chatReq("m1"), "node n: url is required"},
		{"tls over http", &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://x:1", TlsInsecureSkipVerify: true}, chatReq("m1"), "node n: tls settings need an https url"},
		{"no request", good, nil, "request is required"},
		{"no model", good, chatReq(""), "request.model is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Chat(t.Context(), &adapterv1.ChatRequest{Node: tc.node, Request: tc.req})
			e := apiErr(t, err)
			assert.Equal(t, codes.InvalidArgument, e.Code)
			assert.Contains(t, e.Message, tc.msg)

			stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: tc.node, Request: tc.req})
			require.NoError(t, err)
			_, err = stream.Recv()
			assert.Equal(t, codes.InvalidArgument, apiErr(t, err).Code)

			var emb *openaiv1.EmbeddingRequest
			if tc.req != nil {
				emb = &openaiv1.EmbeddingRequest{Model: tc.req.GetModel()}
			}
			_, err = c.Embed(t.Context(), &adapterv1.EmbedRequest{Node: tc.node, Request: emb})
			assert.Equal(t, codes.InvalidArgument, apiErr(t, err).Code)
		})
	}
	_, err := c.Probe(t.Context(), &adapterv1.ProbeRequest{})
	assert.Equal(t, codes.InvalidArgument, apiErr(t, err).Code)
	assert.Zero(t, calls.Load(), "invalid requests never reach the node")
}

// sseNode is a streaming test node: it writes the events it is given one
// at a time, each flushed, waiting on the test between them.
type sseNode struct {
	bodies chan map[string]any // the request bodies it received
	steps  chan string         // each value is written as one raw piece of the stream
	gone   chan struct{}       // closed when the node sees its request canceled
}

func startSSENode(t *testing.T) (*sseNode, *httptest.Server) {
	t.Helper()
	sn := &sseNode{bodies: make(chan map[string]any, 1), steps: make(chan string), gone: make(chan struct{})}
	srv := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body to its end lets the server notice a client
		// that goes away.
		raw, err := io.ReadAll(r.Body)
		assert.NoError(t, err)
		var body map[string]any
		assert.NoError(t, json.Unmarshal(raw, &body))
		sn.bodies <- body
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				close(sn.gone)
				return
			case s, ok := <-sn.steps:
				if !ok {
					return
				}
				if s == "HANGUP" {
					hangUp(t, w)
					return
				}
				_, _ = io.WriteString(w, s)
				w.(http.Flusher).Flush()
			}
		}
	})
	return sn, srv
}

// hangUp closes the connection in the middle of a chunked body.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if !assert.NoError(t, err) {
		return
	}
	_, _ = buf.WriteString("20\r\ndata: {\"id\":\"cut") // a chunk cut short
	_ = buf.Flush()
	_ = conn.Close()
}

// step hands the node its next piece or fails the test.
func (sn *sseNode) step(t *testing.T, s string) {
	t.Helper()
	select {
	case sn.steps <- s:
	case <-time.After(wait):
		t.Fatalf("the node did not take step %q", s)
	}
}

func chunk(content, finish string) string {
	fr := "null"
	if finish != "" {
		fr = fmt.Sprintf("%q", finish)
	}
	return fmt.Sprintf(`data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":%q},"finish_reason":%s}]}`+"\n\n", content, fr)
}

type recvResult struct {
	resp *adapterv1.ChatStreamResponse
	err  error
}

// recv receives the next message within the wait.
func recv(t *testing.T, stream grpc.ServerStreamingClient[adapterv1.ChatStreamResponse]) (*adapterv1.ChatStreamResponse, error) {
	t.Helper()
	ch := make(chan recvResult, 1)
	go func() {
		resp, err := stream.Recv()
		ch <- recvResult{resp, err}
	}()
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-time.After(wait):
		t.Fatal("no message from the adapter")
		return nil, nil
	}
}

func TestChatStreamRelaysEachChunkAsItArrives(t *testing.T) {
	c := startAdapter(t, nil)
	sn, nd := startSSENode(t)
	stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_LLAMACPP, nd.URL), Request: chatReq("m1")})
	require.NoError(t, err)

	body := <-sn.bodies
	assert.Equal(t, true, body["stream"])
	assert.NotContains(t, body, "stream_options", "usage is not asked for unless the client did")

	// The node holds the second chunk until the first has reached the client.
	sn.step(t, ": keep-alive\n\n"+chunk("Hel", ""))
	resp, err := recv(t, stream)
	require.NoError(t, err)
	assert.Equal(t, "Hel", resp.GetChunk().GetChoices()[0].GetDelta().GetContent())
	assert.Equal(t, "assistant", resp.GetChunk().GetChoices()[0].GetDelta().GetRole())

	sn.step(t, chunk("lo", "stop"))
	resp, err = recv(t, stream)
	require.NoError(t, err)
	assert.Equal(t, "lo", resp.GetChunk().GetChoices()[0].GetDelta().GetContent())
	assert.Equal(t, "stop", resp.GetChunk().GetChoices()[0].GetFinishReason())

	sn.step(t, "data: [DONE]\n\n")
	_, err = recv(t, stream)
	assert.ErrorIs(t, err, io.EOF)
	close(sn.steps)
}

func TestChatStreamKeepsIncludeUsage(t *testing.T) {
	c := startAdapter(t, nil)
	sn, nd := startSSENode(t)
	req := chatReq("m1")
	req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_VLLM, nd.URL), Request: req})
	require.NoError(t, err)
	body := <-sn.bodies
	assert.Equal(t, map[string]any{"include_usage": true}, body["stream_options"])

	sn.step(t, chunk("hi", "stop"))
	sn.step(t, `data: {"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"m1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`+"\r\n\r\n")
	sn.step(t, "data: [DONE]\n\n")
	close(sn.steps)

	var got []*openaiv1.ChatCompletionChunk
	for {
		resp, err := recv(t, stream)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, resp.GetChunk())
	}
	require.Len(t, got, 2)
	assert.Empty(t, got[1].GetChoices())
	assert.EqualValues(t, 4, got[1].GetUsage().GetTotalTokens())
}

func TestChatStreamBreaksOff(t *testing.T) {
	cases := []struct {
		name   string
		end    string // the step after the first chunk
		code   codes.Code
		msg    string
		close  bool   // the node ends its response normally after end
		reason string // a broken-off answer is the node's failure; an error it reports is its answer
	}{
		{"connection cut mid-chunk", "HANGUP", codes.Unavailable, "unexpected EOF", false, apierror.ReasonAnswerFailed},
		{"body ends before [DONE]", "", codes.Unavailable, "ended before [DONE]", true, apierror.ReasonAnswerFailed},
		{"error event", `data: {"error":{"message":"CUDA out of memory","type":"server_error","param":null,"code":null}}` + "\n\n",
			codes.Internal, "CUDA out of memory", true, apierror.ReasonUpstream},
		{"error event with an http code", `data: {"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}` + "\n\n",
			codes.Unavailable, "Loading model", true, apierror.ReasonUpstream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startAdapter(t, nil)
			sn, nd := startSSENode(t)
			stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: chatReq("m1")})
			require.NoError(t, err)
			<-sn.bodies
			sn.step(t, chunk("Hel", ""))
			resp, err := recv(t, stream)
			require.NoError(t, err, "the chunk before the failure is relayed")
			assert.Equal(t, "Hel", resp.GetChunk().GetChoices()[0].GetDelta().GetContent())

			if tc.end != "" {
				sn.step(t, tc.end)
			}
			if tc.close {
				close(sn.steps)
			}
			_, err = recv(t, stream)
			e := apiErr(t, err)
			assert.Equal(t, tc.code, e.Code)
			assert.Contains(t, e.Message, tc.msg)
			assert.Equal(t, "node-1", e.Node)
			assert.Equal(t, tc.reason, e.Reason)
		})
	}
}

// Calls the node answers in one piece when done wait for its response at
// most the first-token bound: a hung node fails them fast as
// NODE_ANSWER_FAILED (so the router takes it out and moves on) instead of
// holding them until the deadline.
func TestOneObjectCallsOnAHungNode(t *testing.T) {
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	bound := &adapterv1.CallTimeouts{FirstToken: durationpb.New(100 * time.Millisecond)}
	embed := func(ctx context.Context, kind nodev1.Kind) error {
		_, err := c.Embed(ctx, &adapterv1.EmbedRequest{Node: node(kind, nd.URL), Timeouts: bound,
			Request: &openaiv1.EmbeddingRequest{Model: "emb", Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Text{Text: "x"}}}})
		return err
	}
	ollamaCall := func(kind nodev1.Kind, endpoint adapterv1.OllamaEndpoint) func(context.Context, nodev1.Kind) error {
		return func(ctx context.Context, _ nodev1.Kind) error {
			stream, err := c.Ollama(ctx, &adapterv1.OllamaRequest{Node: node(kind, nd.URL), Endpoint: endpoint, Timeouts: bound,
				Body: []byte(`{"model":"emb","input":"x"}`)})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}
	}
	cases := map[string]func(context.Context, nodev1.Kind) error{
		"embed":                      embed,
		"ollama /api/embed":          ollamaCall(nodev1.Kind_KIND_OLLAMA, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED),
		"ollama /api/embeddings":     ollamaCall(nodev1.Kind_KIND_OLLAMA, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS),
		"ollama /api/show":           ollamaCall(nodev1.Kind_KIND_OLLAMA, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW),
		"bridged /api/embed on vLLM": ollamaCall(nodev1.Kind_KIND_VLLM, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED),
	}
	for name, call := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			e := apiErr(t, call(ctx, nodev1.Kind_KIND_VLLM))
			assert.Equal(t, codes.Unavailable, e.Code)
			assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason)
			assert.Equal(t, "no response within 100ms", e.Message)
			assert.Equal(t, "node-1", e.Node)
			require.NoError(t, ctx.Err(), "failed by the bound, not the deadline")
		})
	}
}

func TestChatStreamCancelReachesTheNode(t *testing.T) {
	c := startAdapter(t, nil)
	sn, nd := startSSENode(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := c.ChatStream(ctx, &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL), Request: chatReq("m1")})
	require.NoError(t, err)
	<-sn.bodies
	sn.step(t, chunk("Hel", ""))
	_, err = recv(t, stream)
	require.NoError(t, err)

	cancel()
	select {
	case <-sn.gone:
	case <-time.After(wait):
		t.Fatal("the node's request was not canceled")
	}
	_, err = recv(t, stream)
	assert.Equal(t, codes.Canceled, status.Code(err))
}

func TestChatStreamFromANodeThatDoesNotStream(t *testing.T) {
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completion)
	})
	req := chatReq("m1")
	req.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	stream, err := c.ChatStream(t.Context(), &adapterv1.ChatStreamRequest{Node: node(nodev1.Kind_KIND_LMSTUDIO, nd.URL), Request: req})
	require.NoError(t, err)
	first, err := recv(t, stream)
	require.NoError(t, err)
	want := &openaiv1.ChunkChoice{Delta: &openaiv1.ChunkDelta{Role: "assistant", Content: proto.String("hello")}, FinishReason: "stop"}
	assert.True(t, proto.Equal(want, first.GetChunk().GetChoices()[0]), "%v", first.GetChunk())
	usage, err := recv(t, stream)
	require.NoError(t, err)
	assert.EqualValues(t, 4, usage.GetChunk().GetUsage().GetTotalTokens())
	_, err = recv(t, stream)
	assert.ErrorIs(t, err, io.EOF)
}

func TestProbe(t *testing.T) {
	c := startAdapter(t, nil)
	nd := startNode(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/version":
			_, _ = io.WriteString(w, `{"version":"0.17.4"}`)
		case "/api/tags":
			_, _ = io.WriteString(w, `{"models":[{"name":"a:latest","model":"a:latest","size":10,"modified_at":"2026-01-02T03:04:05Z"},{"name":"b:latest","model":"b:latest","size":20,"modified_at":"2026-01-02T03:04:05Z"}]}`)
		case "/api/ps":
			_, _ = io.WriteString(w, `{"models":[{"name":"b:latest","model":"b:latest"}]}`)
		default:
			http.NotFound(w, r)
		}
	})

	resp, err := c.Probe(t.Context(), &adapterv1.ProbeRequest{Node: node(nodev1.Kind_KIND_OLLAMA, nd.URL)})
	require.NoError(t, err)
	res := resp.GetResult()
	assert.True(t, res.GetUp())
	assert.Equal(t, "ollama 0.17.4: 2 models, 1 loaded", res.GetReason())
	require.Len(t, res.GetModels(), 2)
	assert.False(t, res.GetModels()[0].GetLoaded())
	assert.True(t, res.GetModels()[1].GetLoaded())
	assert.NotNil(t, res.GetProbedAt())

	resp, err = c.Probe(t.Context(), &adapterv1.ProbeRequest{Node: node(nodev1.Kind_KIND_OLLAMA, refusedURL(t))})
	require.NoError(t, err, "a node that is down is a successful probe")
	assert.False(t, resp.GetResult().GetUp())
	assert.Equal(t, "connect: connection refused", resp.GetResult().GetReason())
}

// localSecrets binds the variables this package's tests name to the test
// servers' hosts, as the operator's -secret-env would.
func localSecrets(t testing.TB) *nodetrust.Policy {
	t.Helper()
	bind := []string{"127.0.0.1", "h"}
	p, err := nodetrust.New(nodetrust.Config{SecretEnv: map[string][]string{
		"EMPTY_KEY": bind, "NODE_API_KEY": bind, "UNSET_KEY": bind,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
