package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const model = "llama3"

// script is how one fake node answers.
type script struct {
	chunks []*openaiv1.ChatCompletionChunk // ChatStream sends these first
	err    error                           // then fails with this (nil: success)
	block  bool                            // wait for the caller to give up instead
	hang   bool                            // ChatStream: after the chunks, wait for the caller to give up
	pause  time.Duration                   // Ollama: how long the node takes before its one object
	first  time.Duration                   // Chat: the time to first token the adapter reports
}

// fakeAdapter is an AdapterService whose nodes answer from scripts. It
// stands in for the adapter and the LLM nodes behind it; it runs behind the
// real meshkit gRPC server so errors cross the wire as they do in
// production.
type fakeAdapter struct {
	adapterv1.UnimplementedAdapterServiceServer
	scripts map[string]script // read-only once serving
	entered chan string       // receives the node id of each call, when set

	mu       sync.Mutex
	calls    []string
	timeouts []*adapterv1.CallTimeouts // of each call, in order
}

func (f *fakeAdapter) enter(ctx context.Context, node string) (script, error) {
	f.mu.Lock()
	f.calls = append(f.calls, node)
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- node
	}
	s, ok := f.scripts[node]
	if !ok {
		return s, nodeErr(codes.Internal, node, "fake adapter: no script for node")
	}
	if s.block {
		<-ctx.Done()
		return s, ctx.Err()
	}
	return s, nil
}

func (f *fakeAdapter) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeAdapter) Chat(ctx context.Context, req *adapterv1.ChatRequest) (*adapterv1.ChatResponse, error) {
	f.record(req.GetTimeouts())
	s, err := f.enter(ctx, req.GetNode().GetId())
	if err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	resp := &adapterv1.ChatResponse{Completion: &openaiv1.ChatCompletion{Id: "cmpl-" + req.GetNode().GetId(), Model: req.GetRequest().GetModel()}}
	if s.first > 0 {
		resp.FirstToken = durationpb.New(s.first)
	}
	return resp, nil
}

func (f *fakeAdapter) Embed(ctx context.Context, req *adapterv1.EmbedRequest) (*adapterv1.EmbedResponse, error) {
	f.record(req.GetTimeouts())
	s, err := f.enter(ctx, req.GetNode().GetId())
	if err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, s.err
	}
	return &adapterv1.EmbedResponse{Embeddings: &openaiv1.EmbeddingList{Model: req.GetNode().GetId(),
		Data: []*openaiv1.Embedding{{Embedding: []float32{1, 2}}}}}, nil
}

func (f *fakeAdapter) ChatStream(req *adapterv1.ChatStreamRequest, stream grpc.ServerStreamingServer[adapterv1.ChatStreamResponse]) error {
	f.record(req.GetTimeouts())
	s, err := f.enter(stream.Context(), req.GetNode().GetId())
	if err != nil {
		return err
	}
	for _, c := range s.chunks {
		if err := stream.Send(&adapterv1.ChatStreamResponse{Chunk: c}); err != nil {
			return err
		}
	}
	if s.hang {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return s.err
}

func (f *fakeAdapter) Ollama(req *adapterv1.OllamaRequest, stream grpc.ServerStreamingServer[adapterv1.OllamaResponse]) error {
	s, err := f.enter(stream.Context(), req.GetNode().GetId())
	if err != nil {
		return err
	}
	select {
	case <-time.After(s.pause):
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	return stream.Send(&adapterv1.OllamaResponse{Object: []byte(`{"embeddings":[[1]]}`)})
}

func (f *fakeAdapter) record(t *adapterv1.CallTimeouts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timeouts = append(f.timeouts, t)
}

func (f *fakeAdapter) Timeouts() []*adapterv1.CallTimeouts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.timeouts)
}

// nodeErr is a node's error as the adapter reports it.
func nodeErr(code codes.Code, node, msg string) error {
	e := &apierror.Error{Code: code, Node: node, Message: msg}
	switch code {
	case codes.ResourceExhausted:
		e.HTTPStatus = 429
	case codes.InvalidArgument:
		e.HTTPStatus, e.Param, e.Type = 400, "temperature", "invalid_request_error"
	}
	return e
}

// serveAdapter serves fake over bufconn and returns a client for it.
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

// node is an up node serving model; a trailing "*" on id marks it loaded.
func node(id string) *nodev1.NodeState {
	id, loaded := strings.CutSuffix(id, "*")
	return &nodev1.NodeState{Node: &nodev1.Node{Id: id}, Status: nodev1.Status_STATUS_UP,
		Models: []*nodev1.ModelInfo{{Id: model, Loaded: loaded}}}
}

func downNode(id, reason string, models ...string) *nodev1.NodeState {
	st := &nodev1.NodeState{Node: &nodev1.Node{Id: id}, Status: nodev1.Status_STATUS_DOWN, Reason: reason}
	for _, m := range models {
		st.Models = append(st.Models, &nodev1.ModelInfo{Id: m})
	}
	return st
}

func table(states ...*nodev1.NodeState) *nodetable.Table {
	t := nodetable.New()
	t.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: states})
	return t
}

func chatReq() *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{Model: model, Messages: []*openaiv1.ChatMessage{{Role: "user"}}}
}

func text(s string) *string { return &s }

func chunk(content string) *openaiv1.ChatCompletionChunk {
	return &openaiv1.ChatCompletionChunk{Id: "chunk", Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: text(content)}}}}
}

func TestChatFailover(t *testing.T) {
	// "f*" is loaded, so it is always tried before "g".
	cases := []struct {
		name      string
		fErr      error
		wantCalls []string
		wantCode  codes.Code // OK: g answered
	}{
		{name: "first node answers", fErr: nil, wantCalls: []string{"f"}},
		{name: "UNAVAILABLE fails over", fErr: nodeErr(codes.Unavailable, "f", "connection refused"), wantCalls: []string{"f", "g"}},
		{name: "RESOURCE_EXHAUSTED fails over", fErr: nodeErr(codes.ResourceExhausted, "f", "rate limited"), wantCalls: []string{"f", "g"}},
		{name: "INTERNAL fails over", fErr: nodeErr(codes.Internal, "f", "500 from node"), wantCalls: []string{"f", "g"}},
		{name: "NOT_FOUND from a stale node fails over", fErr: nodeErr(codes.NotFound, "f", "model not found"), wantCalls: []string{"f", "g"}},
		{name: "INVALID_ARGUMENT is not retried", fErr: nodeErr(codes.InvalidArgument, "f", "bad temperature"),
			wantCalls: []string{"f"}, wantCode: codes.InvalidArgument},
		{name: "OUT_OF_RANGE is not retried", fErr: nodeErr(codes.OutOfRange, "f", "context too long"),
			wantCalls: []string{"f"}, wantCode: codes.OutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{"f": {err: tc.fErr}, "g": {}}}
			r := New(table(node("g"), node("f*")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})

			out, err := r.Chat(context.Background(), chatReq())

			assert.Equal(t, tc.wantCalls, fake.Calls())
			if tc.wantCode == codes.OK {
				require.NoError(t, err)
				assert.Equal(t, "cmpl-"+tc.wantCalls[len(tc.wantCalls)-1], out.GetId())
				return
			}
			e, ok := apierror.FromError(err)
			require.True(t, ok, "error %v carries no status", err)
			assert.Equal(t, tc.wantCode, e.Code)
			assert.Equal(t, "f", e.Node, "the node's error is passed on as is")
			if tc.wantCode == codes.InvalidArgument {
				assert.Equal(t, "temperature", e.Param)
				assert.Equal(t, 400, e.HTTPStatus)
			}
		})
	}
}

func TestEmbedFailsOver(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"f": {err: nodeErr(codes.Unavailable, "f", "refused")}, "g": {}}}
	r := New(table(node("f*"), node("g")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})

	out, err := r.Embed(context.Background(), &openaiv1.EmbeddingRequest{Model: model})

	require.NoError(t, err)
	assert.Equal(t, "g", out.GetModel(), "the answer is g's")
	assert.Equal(t, []string{"f", "g"}, fake.Calls())
}

func TestExhausted(t *testing.T) {
	cases := []struct {
		name        string
		errs        map[string]error
		maxAttempts int
		wantTries   int
		wantCode    codes.Code
		wantHTTP    int
	}{
		{
			name: "all UNAVAILABLE",
			errs: map[string]error{
				"a": nodeErr(codes.Unavailable, "a", "connection refused"),
				"b": nodeErr(codes.Unavailable, "b", "no route to host"),
				"c": nodeErr(codes.Unavailable, "c", "i/o timeout"),
			},
			wantTries: 3, wantCode: codes.Unavailable,
		},
		{
			name: "all 429 stays 429",
			errs: map[string]error{
				"a": nodeErr(codes.ResourceExhausted, "a", "rate limited a"),
				"b": nodeErr(codes.ResourceExhausted, "b", "rate limited b"),
			},
			wantTries: 2, wantCode: codes.ResourceExhausted, wantHTTP: 429,
		},
		{
			name: "all INTERNAL stays INTERNAL",
			errs: map[string]error{
				"a": nodeErr(codes.Internal, "a", "boom a"),
				"b": nodeErr(codes.Internal, "b", "boom b"),
			},
			wantTries: 2, wantCode: codes.Internal,
		},
		{
			name: "mixed failures are UNAVAILABLE",
			errs: map[string]error{
				"a": nodeErr(codes.ResourceExhausted, "a", "rate limited"),
				"b": nodeErr(codes.Unavailable, "b", "refused"),
				"c": nodeErr(codes.Internal, "c", "boom"),
			},
			wantTries: 3, wantCode: codes.Unavailable,
		},
		{
			name: "maxAttempts caps the tries",
			errs: map[string]error{
				"a": nodeErr(codes.Unavailable, "a", "refused a"),
				"b": nodeErr(codes.Unavailable, "b", "refused b"),
				"c": nodeErr(codes.Unavailable, "c", "refused c"),
				"d": nodeErr(codes.Unavailable, "d", "refused d"),
				"e": nodeErr(codes.Unavailable, "e", "refused e"),
			},
			maxAttempts: 2, wantTries: 2, wantCode: codes.Unavailable,
		},
		{
			name: "maxAttempts 0 means the default",
			errs: map[string]error{
				"a": nodeErr(codes.Unavailable, "a", "refused a"),
				"b": nodeErr(codes.Unavailable, "b", "refused b"),
				"c": nodeErr(codes.Unavailable, "c", "refused c"),
				"d": nodeErr(codes.Unavailable, "d", "refused d"),
				"e": nodeErr(codes.Unavailable, "e", "refused e"),
			},
			maxAttempts: 0, wantTries: DefaultMaxAttempts, wantCode: codes.Unavailable,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{}}
			var states []*nodev1.NodeState
			for id, err := range tc.errs {
				fake.scripts[id] = script{err: err}
				states = append(states, node(id))
			}
			r := New(table(states...), serveAdapter(t, fake), Options{MaxAttempts: tc.maxAttempts, Policy: policy.RoundRobinOrder})

			_, err := r.Chat(context.Background(), chatReq())

			calls := fake.Calls()
			require.Len(t, calls, tc.wantTries)
			assert.Len(t, distinct(calls), tc.wantTries, "no node is tried twice")
			e, ok := apierror.FromError(err)
			require.True(t, ok)
			assert.Equal(t, tc.wantCode, e.Code)
			assert.Equal(t, tc.wantHTTP, e.HTTPStatus)
			assert.Contains(t, e.Message, model)
			for id, nerr := range tc.errs {
				var ae *apierror.Error
				require.ErrorAs(t, nerr, &ae)
				reason := ae.Message
				if slices.Contains(calls, id) {
					assert.Contains(t, e.Message, id+": "+reason, "the error names every node tried and why")
				} else {
					assert.NotContains(t, e.Message, reason, "a node not tried is not named")
				}
			}
		})
	}
}

func distinct(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func TestSingleFailureKeepsNode(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {err: nodeErr(codes.ResourceExhausted, "a", "rate limited")}}}
	r := New(table(node("a")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})

	_, err := r.Chat(context.Background(), chatReq())

	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.ResourceExhausted, e.Code)
	assert.Equal(t, "a", e.Node)
	assert.Equal(t, "rate limited", e.Message)
	assert.Equal(t, 429, e.HTTPStatus)
}

func TestNoCandidate(t *testing.T) {
	cases := []struct {
		name        string
		states      []*nodev1.NodeState
		wantCode    codes.Code
		wantParam   string
		wantIn      []string
		wantNotIn   []string
		wantErrCode string
	}{
		{
			name:        "unknown model",
			states:      []*nodev1.NodeState{node("a"), downNode("b", "refused", "other")},
			wantCode:    codes.NotFound,
			wantParam:   "model",
			wantErrCode: "model_not_found",
			wantIn:      []string{"nope"},
		},
		{
			name: "model only on down nodes",
			states: []*nodev1.NodeState{
				{Node: &nodev1.Node{Id: "up"}, Status: nodev1.Status_STATUS_UP, Models: []*nodev1.ModelInfo{{Id: "other"}}},
				downNode("d1", "connect: connection refused", "nope"),
				downNode("d2", "i/o timeout", "nope", "other"),
				downNode("d3", "tls handshake failed", "other"),
			},
			wantCode:  codes.Unavailable,
			wantIn:    []string{"nope", "d1: connect: connection refused", "d2: i/o timeout"},
			wantNotIn: []string{"d3", "tls handshake"},
		},
		{
			name:     "no nodes known",
			wantCode: codes.Unavailable,
			wantIn:   []string{"no LLM nodes"},
		},
		{
			name: "a misconfigured node may serve it: 503 that says why",
			states: []*nodev1.NodeState{node("a"), {Node: &nodev1.Node{Id: "cloud"}, Status: nodev1.Status_STATUS_MISCONFIGURED,
				Reason: "401 from https://api.example.com/v1/models: invalid API key — check OPENAI_API_KEY"}},
			wantCode: codes.Unavailable,
			wantIn:   []string{"nope", "cloud: misconfigured: 401 from https://api.example.com/v1/models: invalid API key — check OPENAI_API_KEY"},
		},
		{
			name: "the model's node is loading",
			states: []*nodev1.NodeState{node("a"), {Node: &nodev1.Node{Id: "llama"}, Status: nodev1.Status_STATUS_LOADING,
				Reason: "llamacpp: loading the model", Models: []*nodev1.ModelInfo{{Id: "nope"}}}},
			wantCode: codes.Unavailable,
			wantIn:   []string{"llama: loading: llamacpp: loading the model"},
		},
		{
			name: "a node loading on first start never listed its models: 503, not 404",
			states: []*nodev1.NodeState{node("a"), {Node: &nodev1.Node{Id: "llama"}, Status: nodev1.Status_STATUS_LOADING,
				Reason: "llamacpp: loading the model"}},
			wantCode: codes.Unavailable,
			wantIn:   []string{"llama: loading: llamacpp: loading the model"},
		},
		{
			name:     "every node down, none had the model",
			states:   []*nodev1.NodeState{downNode("d1", "refused", "other"), {Node: &nodev1.Node{Id: "d2"}}},
			wantCode: codes.Unavailable,
			wantIn:   []string{"nope", "d1: refused", "d2: not probed yet"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{}
			r := New(table(tc.states...), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
			req := chatReq()
			req.Model = "nope"

			_, err := r.Chat(context.Background(), req)

			e, ok := apierror.FromError(err)
			require.True(t, ok)
			assert.Equal(t, tc.wantCode, e.Code)
			assert.Equal(t, tc.wantParam, e.Param)
			assert.Equal(t, tc.wantErrCode, e.ErrCode)
			for _, s := range tc.wantIn {
				assert.Contains(t, e.Message, s)
			}
			for _, s := range tc.wantNotIn {
				assert.NotContains(t, e.Message, s)
			}
			assert.Empty(t, fake.Calls(), "no node is called")
		})
	}
}

func TestLoadedNodesFirst(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{}}
	var states []*nodev1.NodeState
	for _, id := range []string{"a", "b*", "c", "d*", "e"} {
		bare := strings.TrimSuffix(id, "*")
		fake.scripts[bare] = script{err: nodeErr(codes.Unavailable, bare, "refused")}
		states = append(states, node(id))
	}
	r := New(table(states...), serveAdapter(t, fake), Options{MaxAttempts: 5, Policy: policy.RoundRobinOrder})
	seen := 0
	for i := range 4 {
		_, err := r.Chat(context.Background(), chatReq())
		require.Error(t, err)
		calls := fake.Calls()[seen:]
		seen += len(calls)
		require.Len(t, calls, 5, "request %d", i)
		assert.ElementsMatch(t, []string{"b", "d"}, calls[:2], "request %d: loaded nodes first, got %v", i, calls)
		assert.ElementsMatch(t, []string{"a", "c", "e"}, calls[2:], "request %d: then the others, got %v", i, calls)
	}
}

func TestRotationSpreadsFirstAttempts(t *testing.T) {
	cases := []struct {
		name  string
		nodes []string
	}{
		{name: "loaded nodes", nodes: []string{"a*", "b*", "c*"}},
		{name: "unloaded nodes", nodes: []string{"a", "b", "c"}},
		{name: "unloaded behind one loaded", nodes: []string{"a", "b", "c", "z*"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{}}
			var states []*nodev1.NodeState
			for _, id := range tc.nodes {
				bare := strings.TrimSuffix(id, "*")
				if bare == "z" {
					fake.scripts[bare] = script{err: nodeErr(codes.Unavailable, "z", "refused")}
				} else {
					fake.scripts[bare] = script{}
				}
				states = append(states, node(id))
			}
			r := New(table(states...), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
			for range 6 {
				_, err := r.Chat(context.Background(), chatReq())
				require.NoError(t, err)
			}
			first := map[string]int{}
			for _, c := range fake.Calls() {
				if c != "z" {
					first[c]++
				}
			}
			assert.Equal(t, map[string]int{"a": 2, "b": 2, "c": 2}, first, "six requests over three equal nodes start twice on each")
		})
	}
}

func TestContextCanceledStopsAttempts(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			fake := &fakeAdapter{
				scripts: map[string]script{"f": {block: true}, "g": {}},
				entered: make(chan string, 4),
			}
			r := New(table(node("f*"), node("g")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-fake.entered // f has the request
				cancel()
			}()

			var err error
			if stream {
				err = r.ChatStream(ctx, chatReq(), func(*openaiv1.ChatCompletionChunk) error { return nil })
			} else {
				_, err = r.Chat(ctx, chatReq())
			}

			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, []string{"f"}, fake.Calls(), "no node is tried after the caller gave up")
		})
	}
}

// collect returns a send func that records chunks.
func collect(got *[]*openaiv1.ChatCompletionChunk) func(*openaiv1.ChatCompletionChunk) error {
	return func(c *openaiv1.ChatCompletionChunk) error {
		*got = append(*got, c)
		return nil
	}
}

func contents(chunks []*openaiv1.ChatCompletionChunk) []string {
	var out []string
	for _, c := range chunks {
		for _, ch := range c.GetChoices() {
			out = append(out, ch.GetDelta().GetContent())
		}
	}
	return out
}

func TestChatStream(t *testing.T) {
	cases := []struct {
		name         string
		f            script
		wantCalls    []string
		wantContents []string
		wantCode     codes.Code
	}{
		{
			name:         "first node streams",
			f:            script{chunks: []*openaiv1.ChatCompletionChunk{chunk("f1"), chunk("f2")}},
			wantCalls:    []string{"f"},
			wantContents: []string{"f1", "f2"},
		},
		{
			name:         "failure before the first chunk fails over",
			f:            script{err: nodeErr(codes.Unavailable, "f", "refused")},
			wantCalls:    []string{"f", "g"},
			wantContents: []string{"g1", "g2"},
		},
		{
			name:         "429 before the first chunk fails over",
			f:            script{err: nodeErr(codes.ResourceExhausted, "f", "rate limited")},
			wantCalls:    []string{"f", "g"},
			wantContents: []string{"g1", "g2"},
		},
		{
			name:         "failure after the first chunk is returned, not retried",
			f:            script{chunks: []*openaiv1.ChatCompletionChunk{chunk("f1")}, err: nodeErr(codes.Unavailable, "f", "answer broken off")},
			wantCalls:    []string{"f"},
			wantContents: []string{"f1"},
			wantCode:     codes.Unavailable,
		},
		{
			name:         "INVALID_ARGUMENT before the first chunk is not retried",
			f:            script{err: nodeErr(codes.InvalidArgument, "f", "bad temperature")},
			wantCalls:    []string{"f"},
			wantContents: nil,
			wantCode:     codes.InvalidArgument,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{
				"f": tc.f,
				"g": {chunks: []*openaiv1.ChatCompletionChunk{chunk("g1"), chunk("g2")}},
			}}
			r := New(table(node("f*"), node("g")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
			var got []*openaiv1.ChatCompletionChunk

			err := r.ChatStream(context.Background(), chatReq(), collect(&got))

			assert.Equal(t, tc.wantCalls, fake.Calls())
			assert.Equal(t, tc.wantContents, contents(got))
			if tc.wantCode == codes.OK {
				require.NoError(t, err)
				return
			}
			e, ok := apierror.FromError(err)
			require.True(t, ok, "error %v carries no status", err)
			assert.Equal(t, tc.wantCode, e.Code)
			assert.Equal(t, "f", e.Node)
		})
	}
}

func TestChatStreamSendFailureIsNotRetried(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{
		"f": {chunks: []*openaiv1.ChatCompletionChunk{chunk("f1"), chunk("f2")}},
		"g": {chunks: []*openaiv1.ChatCompletionChunk{chunk("g1")}},
	}}
	r := New(table(node("f*"), node("g")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
	gone := errors.New("client went away")
	sent := 0

	err := r.ChatStream(context.Background(), chatReq(), func(*openaiv1.ChatCompletionChunk) error {
		sent++
		return gone
	})

	assert.ErrorIs(t, err, gone)
	assert.Equal(t, 1, sent)
	assert.Equal(t, []string{"f"}, fake.Calls())
}

func TestChatStreamEnsuresRole(t *testing.T) {
	first := &openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{
		{Index: 0, Delta: &openaiv1.ChunkDelta{Content: text("Hel")}},
		{Index: 1}, // no delta at all
		{Index: 2, Delta: &openaiv1.ChunkDelta{Role: "tool"}},
	}}
	second := &openaiv1.ChatCompletionChunk{Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: text("lo")}}}}
	fake := &fakeAdapter{scripts: map[string]script{
		"f": {err: nodeErr(codes.Unavailable, "f", "refused")},
		"g": {chunks: []*openaiv1.ChatCompletionChunk{first, second}},
	}}
	r := New(table(node("f*"), node("g")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
	var got []*openaiv1.ChatCompletionChunk

	require.NoError(t, r.ChatStream(context.Background(), chatReq(), collect(&got)))

	require.Len(t, got, 2)
	require.Len(t, got[0].GetChoices(), 3)
	assert.Equal(t, "assistant", got[0].GetChoices()[0].GetDelta().GetRole())
	assert.Equal(t, "Hel", got[0].GetChoices()[0].GetDelta().GetContent(), "content is kept")
	assert.Equal(t, "assistant", got[0].GetChoices()[1].GetDelta().GetRole(), "a missing delta gets one with the role")
	assert.Equal(t, "tool", got[0].GetChoices()[2].GetDelta().GetRole(), "a role the node sent is kept")
	assert.Empty(t, got[1].GetChoices()[0].GetDelta().GetRole(), "only the first chunk gets the role")
}

func TestChatOnEmbeddingModel(t *testing.T) {
	emb := &nodev1.NodeState{Node: &nodev1.Node{Id: "e"}, Status: nodev1.Status_STATUS_UP,
		Models: []*nodev1.ModelInfo{{Id: model, Type: nodev1.ModelType_MODEL_TYPE_EMBEDDING}}}
	fake := &fakeAdapter{}
	r := New(table(emb), serveAdapter(t, fake), Options{MaxAttempts: 3})
	_, err := r.Chat(context.Background(), chatReq())
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "model", e.Param)
	assert.Contains(t, e.Message, "embedding model")
	err = r.ChatStream(context.Background(), chatReq(), func(*openaiv1.ChatCompletionChunk) error { return nil })
	e, _ = apierror.FromError(err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Empty(t, fake.Calls(), "no node is asked to chat with an embedding model")

	// Embeddings still go to it.
	_, _ = r.Embed(context.Background(), &openaiv1.EmbeddingRequest{Model: model})
	assert.Equal(t, []string{"e"}, fake.Calls())
}
