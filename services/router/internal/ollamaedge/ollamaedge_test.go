package ollamaedge

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answer is how the fake adapter answers an Ollama call: these objects,
// then err (nil: success).
type answer struct {
	objects []string
	err     error
}

// fakeAdapter stands in for the adapter and the nodes behind it (which
// have their own tests); it runs behind the real meshkit gRPC server so
// errors cross the wire as in production.
type fakeAdapter struct {
	adapterv1.UnimplementedAdapterServiceServer
	answers map[string]answer // by node id; read-only once serving

	mu    sync.Mutex
	calls []*adapterv1.OllamaRequest
}

func (f *fakeAdapter) Ollama(req *adapterv1.OllamaRequest, stream grpc.ServerStreamingServer[adapterv1.OllamaResponse]) error {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.mu.Unlock()
	a := f.answers[req.GetNode().GetId()]
	for _, o := range a.objects {
		if err := stream.Send(&adapterv1.OllamaResponse{Object: []byte(o)}); err != nil {
			return err
		}
	}
	return a.err
}

func (f *fakeAdapter) Calls() []*adapterv1.OllamaRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*adapterv1.OllamaRequest(nil), f.calls...)
}

func serveAdapter(t *testing.T, fake *fakeAdapter) adapterv1.AdapterServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcserver.New(slog.New(slog.DiscardHandler))
	adapterv1.RegisterAdapterServiceServer(srv.GRPC, fake)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, 5*time.Second) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		require.NoError(t, <-served)
	})
	return adapterv1.NewAdapterServiceClient(conn)
}

// mesh is two healthy nodes and one down node: "a" serves llama3 (loaded
// until 2030) and nomic, "b" serves llama3 (loaded until 2031) and qwen
// (loaded for good), "c" is down with gone.
func mesh() *nodetable.Table {
	exp := timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	later := timestamppb.New(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	t := nodetable.New()
	t.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{{
		Node: &nodev1.Node{Id: "a"}, Status: nodev1.Status_STATUS_UP,
		Models: []*nodev1.ModelInfo{
			{Id: "llama3", Loaded: true, SizeBytes: 100, SizeVram: 80, Digest: "d1", Family: "llama", Created: 1700000000, ExpiresAt: exp, ContextLength: 4096,
				Format: "gguf", ParameterSize: "127K", QuantizationLevel: "Q8_0", LoadedSizeBytes: 120},
			{Id: "nomic", SizeBytes: 10, Type: nodev1.ModelType_MODEL_TYPE_EMBEDDING},
		},
	}, {
		Node: &nodev1.Node{Id: "b"}, Status: nodev1.Status_STATUS_UP,
		Models: []*nodev1.ModelInfo{
			{Id: "llama3", Loaded: true, SizeBytes: 100, SizeVram: 200, Digest: "d1", Family: "llama", Families: []string{"llama", "clip"}, ExpiresAt: later, ContextLength: 8192,
				Format: "gguf", ParameterSize: "127K", QuantizationLevel: "Q8_0", LoadedSizeBytes: 250},
			{Id: "qwen", Loaded: true, SizeBytes: 50, SizeVram: 50},
		},
	}, {
		Node: &nodev1.Node{Id: "c"}, Status: nodev1.Status_STATUS_DOWN,
		Models: []*nodev1.ModelInfo{{Id: "gone", Loaded: true}},
	}}})
	return t
}

// edge serves the Ollama edge over a real routing.Router on loopback.
func edge(t *testing.T, fake *fakeAdapter, maxBody int64) *httptest.Server {
	t.Helper()
	table := mesh()
	routes := &modelroutes.Table{}
	for _, a := range []string{"default=llama3", "embedder=nomic@gpu", "ghost=missing"} {
		require.NoError(t, routes.AddAlias(a))
	}
	router := routing.New(table, serveAdapter(t, fake), routing.Options{MaxAttempts: 1, Routes: routes})
	srv := httptest.NewServer(New(Options{Routing: router, Table: table, Routes: routes, Log: slog.New(slog.DiscardHandler), MaxBodyBytes: maxBody}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(raw)
}

func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	require.NotEmpty(t, e.Error, body)
	return e.Error
}

const (
	obj1    = `{"model":"qwen","message":{"role":"assistant","content":"Hi"},"done":false}`
	objDone = `{"model":"qwen","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":1}`
)

func TestServes(t *testing.T) {
	for path, want := range map[string]bool{"/": true, "/api/chat": true, "/api/blobs/x": true, "/v1/chat/completions": false, "/apix": false, "/healthz": false} {
		assert.Equal(t, want, Serves(path), path)
	}
}

func TestFixedAnswers(t *testing.T) {
	srv := edge(t, &fakeAdapter{}, 0)
	tests := []struct {
		method, path string
		status       int
		body         string // exact body, when set
		errContains  string // Ollama error message, when set
	}{
		{"GET", "/", 200, "Ollama is running", ""},
		{"HEAD", "/", 200, "", ""},
		{"GET", "/api/version", 200, `{"version":"` + Version + `"}`, ""},
		{"HEAD", "/api/version", 200, "", ""},
		{"POST", "/", 405, "", "method POST not allowed on /"},
		{"GET", "/api/chat", 405, "", "method GET not allowed on /api/chat"},
		{"DELETE", "/api/tags", 405, "", "method DELETE not allowed"},
		{"POST", "/api/version", 405, "", "not allowed"},
		{"POST", "/api/pull", 501, "", "/api/pull is not served by llmesh"},
		{"POST", "/api/push", 501, "", "/api/push is not served"},
		{"POST", "/api/create", 501, "", "/api/create is not served"},
		{"POST", "/api/copy", 501, "", "/api/copy is not served"},
		{"DELETE", "/api/delete", 501, "", "/api/delete is not served"},
		{"HEAD", "/api/blobs/sha256:abc", 501, "", ""},
		{"POST", "/api/blobs/sha256:abc", 501, "", "/api/blobs/sha256:abc is not served"},
		{"GET", "/api/nothing", 404, "", "404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, "")
			assert.Equal(t, tt.status, resp.StatusCode)
			if tt.body != "" {
				assert.Equal(t, tt.body, body)
			}
			if tt.errContains != "" {
				assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
				assert.Contains(t, errorOf(t, body), tt.errContains)
			}
		})
	}
}

func TestTagsAndPS(t *testing.T) {
	srv := edge(t, &fakeAdapter{}, 0)

	resp, body := do(t, srv, "GET", "/api/tags", "")
	require.Equal(t, 200, resp.StatusCode)
	llama3 := `"modified_at":"2023-11-14T22:13:20Z","size":100,"digest":"d1",
		 "details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"127K","quantization_level":"Q8_0"}`
	nomic := `"modified_at":"0001-01-01T00:00:00Z","size":10,"digest":"531e67a59846756e7b8c8ba5b7e33ae8991351b0c656f95171409fbda8115de8",
		 "details":{"parent_model":"","format":"","family":"","families":null,"parameter_size":"","quantization_level":""}`
	assert.JSONEq(t, `{"models":[
		{"name":"llama3","model":"llama3",`+llama3+`},
		{"name":"nomic","model":"nomic",`+nomic+`},
		{"name":"qwen","model":"qwen","modified_at":"0001-01-01T00:00:00Z","size":50,"digest":"67f2d22514622d1be30c14ee9f3cb104503a159a33a656ca91a1953aa9616429",
		 "details":{"parent_model":"","format":"","family":"","families":null,"parameter_size":"","quantization_level":""}},
		{"name":"default","model":"default",`+llama3+`},
		{"name":"embedder","model":"embedder",`+nomic+`}]}`, body,
		"each model of a healthy node once, with the details its node reported; the down node's model is not listed; "+
			"a node without digests gets the SHA-256 of the model id; each alias of a served model with that model's details")

	resp, body = do(t, srv, "GET", "/api/ps", "")
	require.Equal(t, 200, resp.StatusCode)
	var ps struct {
		Models []struct {
			Name      string    `json:"name"`
			Size      int64     `json:"size"`
			SizeVRAM  int64     `json:"size_vram"`
			ExpiresAt time.Time `json:"expires_at"`
			Details   details   `json:"details"`
			// A pointer, to tell an omitted context_length from 0.
			ContextLength *int32 `json:"context_length"`
		} `json:"models"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ps))
	names := []string{}
	for _, m := range ps.Models {
		names = append(names, m.Name)
	}
	assert.Equal(t, []string{"qwen", "llama3"}, names, "loaded models on healthy nodes, once each, longest remaining first")
	for _, m := range ps.Models {
		if m.Name == "llama3" {
			assert.Equal(t, int64(250), m.Size, "the loaded size of node b, where the model stays loaded longest")
			assert.Equal(t, int64(200), m.SizeVRAM)
			assert.Equal(t, time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC), m.ExpiresAt)
			if assert.NotNil(t, m.ContextLength) {
				assert.Equal(t, int32(8192), *m.ContextLength)
			}
			assert.Equal(t, details{Format: "gguf", Family: "llama", Families: []string{"llama", "clip"}, ParameterSize: "127K", QuantizationLevel: "Q8_0"}, m.Details)
		} else {
			assert.Equal(t, int64(50), m.Size, "no loaded size reported: the size")
			assert.Nil(t, m.ContextLength, "not reported by the node: left out")
			assert.Greater(t, m.ExpiresAt.Year(), time.Now().Year()+20, "a node that never unloads: Ollama's clients show Forever")
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"empty body", "/api/chat", "", 400, "missing request body"},
		{"blank body", "/api/generate", "  \n", 400, "missing request body"},
		{"bad JSON", "/api/chat", `{"model":`, 400, "invalid JSON body"},
		{"not an object", "/api/embed", `[1]`, 400, "invalid JSON body"},
		{"model of the wrong type", "/api/chat", `{"model":7}`, 400, "model must be string, not number"},
		{"stream of the wrong type", "/api/chat", `{"model":"qwen","stream":"no"}`, 400, "stream must be bool, not string"},
		{"missing model", "/api/chat", `{"messages":[]}`, 400, "model is required"},
		{"missing model on show", "/api/show", `{}`, 400, "model is required"},
		{"too large", "/api/embed", `{"model":"nomic","input":"` + strings.Repeat("x", 200) + `"}`, 413, "request body is larger than 100 bytes"},
		{"unknown model", "/api/chat", `{"model":"nope"}`, 404, "model 'nope' not found"},
		{"model only on a down node", "/api/generate", `{"model":"gone","prompt":"p"}`, 0, "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAdapter{}
			srv := edge(t, fake, 100)
			resp, body := do(t, srv, "POST", tt.path, tt.body)
			if tt.status != 0 {
				assert.Equal(t, tt.status, resp.StatusCode)
			} else {
				assert.GreaterOrEqual(t, resp.StatusCode, 400)
			}
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Contains(t, errorOf(t, body), tt.msg)
			assert.Empty(t, fake.Calls(), "a refused request reached the adapter")
		})
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name, path, body string
		objects          []string
		endpoint         adapterv1.OllamaEndpoint
		wantType         string
	}{
		{"chat streams by default", "/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"keep_alive":-1}`,
			[]string{obj1, objDone}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT, "application/x-ndjson"},
		{"generate stream true", "/api/generate", `{"model":"qwen","prompt":"hi","stream":true}`,
			[]string{obj1, objDone}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE, "application/x-ndjson"},
		{"chat stream false", "/api/chat", `{"model":"qwen","stream":false}`,
			[]string{objDone}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT, "application/json; charset=utf-8"},
		{"embed", "/api/embed", `{"model":"qwen","input":["a"]}`,
			[]string{`{"model":"qwen","embeddings":[[1,2]]}`}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED, "application/json; charset=utf-8"},
		{"legacy embeddings", "/api/embeddings", `{"model":"qwen","prompt":"a"}`,
			[]string{`{"embedding":[1,2]}`}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS, "application/json; charset=utf-8"},
		{"show by name", "/api/show", `{"name":"qwen"}`,
			[]string{`{"modelfile":""}`}, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW, "application/json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAdapter{answers: map[string]answer{"b": {objects: tt.objects}}}
			srv := edge(t, fake, 0)
			resp, body := do(t, srv, "POST", tt.path, tt.body)
			require.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, tt.wantType, resp.Header.Get("Content-Type"))
			assert.Equal(t, strings.Join(tt.objects, "\n")+"\n", body, "one object a line, as the node sent them")
			calls := fake.Calls()
			require.Len(t, calls, 1)
			assert.Equal(t, "b", calls[0].GetNode().GetId(), "the node that serves qwen")
			assert.Equal(t, tt.endpoint, calls[0].GetEndpoint())
			assert.Equal(t, tt.body, string(calls[0].GetBody()), "the body travels on verbatim")
		})
	}
}

// TestAliasIsRewritten: the node is asked for the model an alias stands
// for — in "model", and in "name" where the body has it — and every other
// field reaches it untouched.
func TestAliasIsRewritten(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"model", `{"model":"default","messages":[],"keep_alive":-1,"stream":false}`,
			`{"keep_alive":-1,"messages":[],"model":"llama3","stream":false}`},
		{"model and older name", `{"model":"default","name":"default"}`, `{"model":"llama3","name":"llama3"}`},
		{"name only", `{"name":"default"}`, `{"model":"llama3","name":"llama3"}`},
		{"not an alias: verbatim", `{"model":"llama3" , "stream":false}`, `{"model":"llama3" , "stream":false}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAdapter{answers: map[string]answer{"a": {objects: []string{`{}`}}, "b": {objects: []string{`{}`}}}}
			srv := edge(t, fake, 0)
			resp, body := do(t, srv, "POST", "/api/chat", tt.body)
			require.Equal(t, 200, resp.StatusCode, body)
			calls := fake.Calls()
			require.Len(t, calls, 1)
			assert.Equal(t, tt.want, string(calls[0].GetBody()))
		})
	}
}

// TestModelTypeReachesTheAdapter: the adapter describes a model of a node
// without /api/show from what the probe found, so the call says it.
func TestModelTypeReachesTheAdapter(t *testing.T) {
	fake := &fakeAdapter{answers: map[string]answer{"a": {objects: []string{`{"capabilities":["embedding"]}`}}, "b": {objects: []string{`{}`}}}}
	srv := edge(t, fake, 0)
	resp, body := do(t, srv, "POST", "/api/show", `{"model":"nomic"}`)
	require.Equal(t, 200, resp.StatusCode, body)
	resp, body = do(t, srv, "POST", "/api/show", `{"model":"qwen"}`)
	require.Equal(t, 200, resp.StatusCode, body)
	calls := fake.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, nodev1.ModelType_MODEL_TYPE_EMBEDDING, calls[0].GetModelType())
	assert.Equal(t, nodev1.ModelType_MODEL_TYPE_UNSPECIFIED, calls[1].GetModelType(), "not known")
}

// TestStreamedObjectsArriveOneByOne reads a stream line by line while the
// adapter is still answering.
func TestStreamedObjectsArriveOneByOne(t *testing.T) {
	fake := &fakeAdapter{answers: map[string]answer{"b": {objects: []string{obj1, obj1, objDone}}}}
	srv := edge(t, fake, 0)
	resp, err := srv.Client().Post(srv.URL+"/api/chat", "application/json", strings.NewReader(`{"model":"qwen"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	var got []map[string]any
	for lines.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(lines.Bytes(), &m))
		got = append(got, m)
	}
	require.NoError(t, lines.Err())
	require.Len(t, got, 3)
	assert.Equal(t, true, got[2]["done"])
}

func TestNodeErrors(t *testing.T) {
	tests := []struct {
		name       string
		answer     answer
		status     int
		msg        string
		retryAfter bool
	}{{
		name:   "a node's bad request keeps its status",
		answer: answer{err: &apierror.Error{Code: codes.InvalidArgument, HTTPStatus: 400, Node: "b", Message: "invalid option num_ctx"}},
		status: 400, msg: "invalid option num_ctx",
	}, {
		name:   "a node's unknown model keeps its message",
		answer: answer{err: &apierror.Error{Code: codes.NotFound, HTTPStatus: 404, Node: "b", Message: "model 'qwen' not found, try pulling it first"}},
		status: 404, msg: "model 'qwen' not found, try pulling it first",
	}, {
		name:   "internal failures are masked",
		answer: answer{err: &apierror.Error{Code: codes.Internal, Node: "b", Message: "secret stack trace"}},
		status: 500, msg: "node b: the server had an error while processing your request",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAdapter{answers: map[string]answer{"b": tt.answer}}
			srv := edge(t, fake, 0)
			resp, body := do(t, srv, "POST", "/api/chat", `{"model":"qwen"}`)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			assert.Equal(t, tt.msg, errorOf(t, body))
			assert.NotContains(t, body, "secret")
		})
	}
}

// TestUnavailableNode: a node that cannot answer is a 503 with Retry-After
// and the node named.
func TestUnavailableNode(t *testing.T) {
	fake := &fakeAdapter{answers: map[string]answer{"b": {err: &apierror.Error{Code: codes.Unavailable, Node: "b",
		Reason: apierror.ReasonUnreachable, Message: "connect: connection refused"}}}}
	srv := edge(t, fake, 0)
	resp, body := do(t, srv, "POST", "/api/generate", `{"model":"qwen","prompt":"p"}`)
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	msg := errorOf(t, body)
	assert.Contains(t, msg, "b")
	assert.Contains(t, msg, "connection refused")
}

// TestErrorAfterFirstObject: once the status is sent, a failure ends the
// stream with an error object, as Ollama does.
func TestErrorAfterFirstObject(t *testing.T) {
	fake := &fakeAdapter{answers: map[string]answer{"b": {objects: []string{obj1},
		err: &apierror.Error{Code: codes.Unavailable, Node: "b", Message: "the stream ended before its done object"}}}}
	srv := edge(t, fake, 0)
	resp, body := do(t, srv, "POST", "/api/chat", `{"model":"qwen"}`)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	require.Len(t, lines, 2, body)
	assert.Equal(t, obj1, lines[0])
	assert.Equal(t, "node b: the stream ended before its done object", errorOf(t, lines[1]))
}
