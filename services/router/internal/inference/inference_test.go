package inference

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/llmesh/llmesh/services/router/internal/routing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const model = "llama3"

// vector is what the fake node embeds every input as.
var vector = []float32{1.5, -2, 0.1, 0, float32(math.Inf(1)), math.SmallestNonzeroFloat32, -math.MaxFloat32}

// fakeAdapter stands in for the adapter and its LLM nodes: it answers
// every call and records what it was asked.
type fakeAdapter struct {
	adapterv1.UnimplementedAdapterServiceServer
	mu     sync.Mutex
	chats  []*openaiv1.ChatCompletionRequest
	embeds []*openaiv1.EmbeddingRequest
}

func (f *fakeAdapter) record(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeAdapter) chatRequests() []*openaiv1.ChatCompletionRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.chats)
}

func (f *fakeAdapter) embedRequests() []*openaiv1.EmbeddingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.embeds)
}

func (f *fakeAdapter) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.chats) + len(f.embeds)
}

func (f *fakeAdapter) Chat(_ context.Context, req *adapterv1.ChatRequest) (*adapterv1.ChatResponse, error) {
	f.record(func() { f.chats = append(f.chats, req.GetRequest()) })
	content := "hi"
	return &adapterv1.ChatResponse{Completion: &openaiv1.ChatCompletion{Id: "cmpl-1", Object: "chat.completion", Model: req.GetRequest().GetModel(),
		Choices: []*openaiv1.ChatCompletionChoice{{Message: &openaiv1.ResponseMessage{Role: "assistant", Content: &content}}}}}, nil
}

func (f *fakeAdapter) ChatStream(req *adapterv1.ChatStreamRequest, stream grpc.ServerStreamingServer[adapterv1.ChatStreamResponse]) error {
	f.record(func() { f.chats = append(f.chats, req.GetRequest()) })
	content := "hi"
	return stream.Send(&adapterv1.ChatStreamResponse{Chunk: &openaiv1.ChatCompletionChunk{Id: "chunk-1",
		Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: &content}}}}})
}

func (f *fakeAdapter) Embed(_ context.Context, req *adapterv1.EmbedRequest) (*adapterv1.EmbedResponse, error) {
	f.record(func() { f.embeds = append(f.embeds, req.GetRequest()) })
	return &adapterv1.EmbedResponse{Embeddings: &openaiv1.EmbeddingList{Object: "list", Model: req.GetRequest().GetModel(),
		Data: []*openaiv1.Embedding{
			{Object: "embedding", Index: 0, Embedding: vector},
			{Object: "embedding", Index: 1, Embedding: []float32{42}},
		}}}, nil
}

// serve runs register's services on a meshkit gRPC server over bufconn and
// returns a connection to it.
func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcserver.New(slog.New(slog.DiscardHandler))
	register(srv.GRPC)
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
	return conn
}

// setup serves the InferenceService, routing over the fake adapter, and
// returns a client for it.
func setup(t *testing.T, states ...*nodev1.NodeState) (routerv1.InferenceServiceClient, *fakeAdapter) {
	t.Helper()
	fake := &fakeAdapter{}
	adapterConn := serve(t, func(s *grpc.Server) { adapterv1.RegisterAdapterServiceServer(s, fake) })
	table := nodetable.New()
	table.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: states})
	svc := New(routing.New(table, adapterv1.NewAdapterServiceClient(adapterConn), routing.Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder}), table, nil)
	conn := serve(t, func(s *grpc.Server) { routerv1.RegisterInferenceServiceServer(s, svc) })
	return routerv1.NewInferenceServiceClient(conn), fake
}

func upNode(id string, models ...*nodev1.ModelInfo) *nodev1.NodeState {
	return &nodev1.NodeState{Node: &nodev1.Node{Id: id}, Status: nodev1.Status_STATUS_UP, Models: models}
}

func user() []*openaiv1.ChatMessage {
	return []*openaiv1.ChatMessage{{Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "hi"}}}}
}

func i32(v int32) *int32 { return &v }

func f64(v float64) *float64 { return &v }

func validChat() *openaiv1.ChatCompletionRequest {
	return &openaiv1.ChatCompletionRequest{Model: model, Messages: user()}
}

func textInput(s string) *openaiv1.EmbeddingInput {
	return &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Text{Text: s}}
}

// streamErr runs StreamChatCompletion and returns the stream's error.
func streamErr(ctx context.Context, c routerv1.InferenceServiceClient, req *openaiv1.ChatCompletionRequest) error {
	s, err := c.StreamChatCompletion(ctx, &routerv1.StreamChatCompletionRequest{Request: req})
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
}

func TestChatValidation(t *testing.T) {
	cases := []struct {
		name      string
		mutate    func(*openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest
		wantParam string
	}{
		{name: "nil request", mutate: func(*openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest { return nil }, wantParam: ""},
		{name: "missing model", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest { r.Model = ""; return r }, wantParam: "model"},
		{name: "empty messages", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest { r.Messages = nil; return r }, wantParam: "messages"},
		{name: "bad role", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "robot"})
			return r
		}, wantParam: "messages[1].role"},
		{name: "empty role", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Messages[0].Role = ""
			return r
		}, wantParam: "messages[0].role"},
		{name: "max_tokens 0", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.MaxTokens = i32(0)
			return r
		}, wantParam: "max_tokens"},
		{name: "max_tokens negative", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.MaxTokens = i32(-5)
			return r
		}, wantParam: "max_tokens"},
		{name: "max_completion_tokens 0", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.MaxCompletionTokens = i32(0)
			return r
		}, wantParam: "max_completion_tokens"},
		{name: "deprecated function role", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Messages = append(r.Messages, &openaiv1.ChatMessage{Role: "function", Name: "f"})
			return r
		}, wantParam: "messages[1].role"},
		{name: "n 0", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.N = i32(0)
			return r
		}, wantParam: "n"},
		{name: "n above OpenAI's limit", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.N = i32(129)
			return r
		}, wantParam: "n"},
		{name: "unsupported content part (native gRPC; REST refuses it while decoding)", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Messages[0].Content = &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{Parts: &openaiv1.ContentParts{
				Parts: []*openaiv1.ContentPart{{Type: "text", Text: "hi"}, {Type: "video"}}}}}
			return r
		}, wantParam: "messages[0].content[1].type"},
		{name: "temperature above 2", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Temperature = f64(5)
			return r
		}, wantParam: "temperature"},
		{name: "top_p above 1", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.TopP = f64(1.5)
			return r
		}, wantParam: "top_p"},
		{name: "presence_penalty below -2", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.PresencePenalty = f64(-3)
			return r
		}, wantParam: "presence_penalty"},
		{name: "tool_choice naming a missing tool", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "weather"}}}
			r.ToolChoice = &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "time"}}
			return r
		}, wantParam: "tool_choice"},
		{name: "tool_choice with an unknown mode", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "weather"}}}
			r.ToolChoice = &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "bogus"}}
			return r
		}, wantParam: "tool_choice"},
		{name: "schema text not a JSON object (native gRPC; REST refuses it while decoding)", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "s", SchemaJson: `["type"]`}}
			return r
		}, wantParam: "response_format.json_schema.schema"},
		{name: "schema text not JSON", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "s", SchemaJson: `{"type":object}`}}
			return r
		}, wantParam: "response_format.json_schema.schema"},
		{name: "tool parameters text with trailing garbage", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "a", ParametersJson: `{}`}},
				{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "b", ParametersJson: `{} x`}}}
			return r
		}, wantParam: "tools[1].function.parameters"},
		{name: "tool_choice required without tools", mutate: func(r *openaiv1.ChatCompletionRequest) *openaiv1.ChatCompletionRequest {
			r.ToolChoice = &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: "required"}}
			return r
		}, wantParam: "tool_choice"},
	}
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.mutate(validChat())
			calls := map[string]error{}
			_, calls["CreateChatCompletion"] = c.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
			calls["StreamChatCompletion"] = streamErr(ctx, c, req)
			for rpc, err := range calls {
				e, ok := apierror.FromError(err)
				require.True(t, ok, "%s: %v", rpc, err)
				assert.Equal(t, codes.InvalidArgument, e.Code, rpc)
				assert.Equal(t, tc.wantParam, e.Param, rpc)
				assert.Equal(t, "invalid_request_error", e.Type, rpc)
				assert.NotEmpty(t, e.Message, rpc)
			}
		})
	}
	assert.Zero(t, fake.calls(), "an invalid request never reaches a node")

	t.Run("valid request passes", func(t *testing.T) {
		req := validChat()
		req.MaxTokens, req.MaxCompletionTokens = i32(1), i32(1)
		req.Temperature, req.TopP, req.FrequencyPenalty = f64(2), f64(0), f64(-2)
		req.Tools = []*openaiv1.Tool{{Type: "function", Function: &openaiv1.FunctionDefinition{Name: "weather",
			ParametersJson: ` {"type": "object", "properties": {"city": {"type": "string"}}} `}}}
		req.ToolChoice = &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: "weather"}}
		req.ResponseFormat = &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "s", SchemaJson: `{}`}}
		text := func(s string) *openaiv1.MessageContent {
			return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: s}}
		}
		req.Messages = append(req.Messages, &openaiv1.ChatMessage{Role: "system", Content: text("be brief")},
			&openaiv1.ChatMessage{Role: "developer", Content: text("")},
			&openaiv1.ChatMessage{Role: "assistant", ToolCalls: []*openaiv1.ToolCall{{Id: "c1", Type: "function",
				Function: &openaiv1.FunctionCall{Name: "weather", Arguments: "{}"}}}},
			&openaiv1.ChatMessage{Role: "tool", ToolCallId: "c1", Content: text("sunny")},
			&openaiv1.ChatMessage{Role: "assistant", Content: text("It is sunny.")})
		resp, err := c.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: req})
		require.NoError(t, err)
		assert.Equal(t, "cmpl-1", resp.GetCompletion().GetId())
		require.NoError(t, ignoreEOF(streamErr(ctx, c, req)))
	})
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func TestEmbeddingsValidation(t *testing.T) {
	cases := []struct {
		name      string
		req       *openaiv1.EmbeddingRequest
		wantParam string
	}{
		{name: "nil request", req: nil, wantParam: ""},
		{name: "missing model", req: &openaiv1.EmbeddingRequest{Input: textInput("x")}, wantParam: "model"},
		{name: "missing input", req: &openaiv1.EmbeddingRequest{Model: model}, wantParam: "input"},
		{name: "bad encoding_format", req: &openaiv1.EmbeddingRequest{Model: model, Input: textInput("x"), EncodingFormat: "int8"}, wantParam: "encoding_format"},
		{name: "empty string", req: &openaiv1.EmbeddingRequest{Model: model, Input: textInput("")}, wantParam: "input"},
		{name: "empty array", req: &openaiv1.EmbeddingRequest{Model: model, Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{}}}}, wantParam: "input"},
		{name: "an empty string in the array", req: &openaiv1.EmbeddingRequest{Model: model, Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: []string{"a", ""}}}}}, wantParam: "input"},
		{name: "an empty token array", req: &openaiv1.EmbeddingRequest{Model: model, Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_TokenLists{TokenLists: &openaiv1.TokenLists{Values: []*openaiv1.TokenList{{Values: []int64{1}}, {}}}}}}, wantParam: "input"},
	}
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateEmbeddings(context.Background(), &routerv1.CreateEmbeddingsRequest{Request: tc.req})
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.InvalidArgument, e.Code)
			assert.Equal(t, tc.wantParam, e.Param)
			assert.Equal(t, "invalid_request_error", e.Type)
		})
	}
	assert.Zero(t, fake.calls(), "an invalid request never reaches a node")
}

func TestEmbeddingsInputWithoutValueIsInvalid(t *testing.T) {
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	_, err := c.CreateEmbeddings(context.Background(), &routerv1.CreateEmbeddingsRequest{
		Request: &openaiv1.EmbeddingRequest{Model: model, Input: &openaiv1.EmbeddingInput{}}})
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.InvalidArgument, e.Code)
	assert.Equal(t, "input", e.Param)
	assert.Zero(t, fake.calls())
}

func TestChatStreamFlagSentUpstream(t *testing.T) {
	c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))
	ctx := context.Background()

	unary := validChat()
	unary.Stream = true
	unary.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	_, err := c.CreateChatCompletion(ctx, &routerv1.CreateChatCompletionRequest{Request: unary})
	require.NoError(t, err)

	streamed := validChat()
	streamed.Stream = false
	require.NoError(t, ignoreEOF(streamErr(ctx, c, streamed)))

	chats := fake.chatRequests()
	require.Len(t, chats, 2)
	assert.False(t, chats[0].GetStream(), "a unary call asks the adapter for one answer")
	assert.Nil(t, chats[0].GetStreamOptions())
	assert.True(t, chats[1].GetStream(), "a streamed call asks the node to stream")
}

func TestListModels(t *testing.T) {
	c, _ := setup(t,
		upNode("b", &nodev1.ModelInfo{Id: "zeta", Created: 100, OwnedBy: "acme"}, &nodev1.ModelInfo{Id: "alpha"}),
		upNode("a", &nodev1.ModelInfo{Id: "alpha", Created: 7, OwnedBy: "first"}),
		&nodev1.NodeState{Node: &nodev1.Node{Id: "c"}, Status: nodev1.Status_STATUS_DOWN, Models: []*nodev1.ModelInfo{{Id: "down-only"}}},
	)

	resp, err := c.ListModels(context.Background(), &routerv1.ListModelsRequest{})

	require.NoError(t, err)
	want := &openaiv1.ModelList{Object: "list", Data: []*openaiv1.Model{
		{Id: "alpha", Object: "model", Created: 7, OwnedBy: "first"},
		{Id: "zeta", Object: "model", Created: 100, OwnedBy: "acme"},
	}}
	assert.True(t, proto.Equal(want, resp.GetModels()), "got %v", resp.GetModels())
}

func TestListModelsDefaultOwnerAndEmpty(t *testing.T) {
	table := nodetable.New()
	svc := New(routing.New(table, nil, routing.Options{MaxAttempts: 0, Policy: policy.RoundRobinOrder}), table, nil)

	resp, err := svc.ListModels(context.Background(), &routerv1.ListModelsRequest{})
	require.NoError(t, err)
	assert.Equal(t, "list", resp.GetModels().GetObject())
	assert.NotNil(t, resp.GetModels().GetData(), "an empty list is [] in JSON, not null")
	assert.Empty(t, resp.GetModels().GetData())

	table.Apply(&healthmonv1.WatchNodesResponse{Snapshot: true, Nodes: []*nodev1.NodeState{upNode("a", &nodev1.ModelInfo{Id: "m"})}})
	resp, err = svc.ListModels(context.Background(), &routerv1.ListModelsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetModels().GetData(), 1)
	assert.Equal(t, "llmesh", resp.GetModels().GetData()[0].GetOwnedBy(), "a model without owner is owned by llmesh")
}

func TestEmbeddingsEncoding(t *testing.T) {
	le := func(v []float32) []byte {
		var buf bytes.Buffer
		require.NoError(t, binary.Write(&buf, binary.LittleEndian, v))
		return buf.Bytes()
	}
	cases := []struct {
		format     string
		wantFloats bool
	}{
		{format: "", wantFloats: true},
		{format: "float", wantFloats: true},
		{format: "base64", wantFloats: false},
	}
	for _, tc := range cases {
		t.Run("format="+tc.format, func(t *testing.T) {
			c, fake := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))

			resp, err := c.CreateEmbeddings(context.Background(), &routerv1.CreateEmbeddingsRequest{Request: &openaiv1.EmbeddingRequest{
				Model: model, Input: textInput("hello"), EncodingFormat: tc.format}})

			require.NoError(t, err)
			embeds := fake.embedRequests()
			require.Len(t, embeds, 1)
			assert.Empty(t, embeds[0].GetEncodingFormat(), "nodes are always asked for floats")
			data := resp.GetEmbeddings().GetData()
			require.Len(t, data, 2)
			if tc.wantFloats {
				assert.Equal(t, vector, data[0].GetEmbedding())
				assert.Empty(t, data[0].GetEmbeddingBase64())
				return
			}
			assert.Equal(t, le(vector), data[0].GetEmbeddingBase64(), "little-endian float32s")
			assert.Equal(t, []byte{0, 0, 0x28, 0x42}, data[1].GetEmbeddingBase64(), "42 as a little-endian float32")
			assert.Empty(t, data[0].GetEmbedding(), "base64 replaces the floats")
			assert.Equal(t, int32(1), data[1].GetIndex())
		})
	}
}

func TestRoutingErrorsReachTheClient(t *testing.T) {
	c, _ := setup(t, upNode("a", &nodev1.ModelInfo{Id: model}))

	_, err := c.CreateChatCompletion(context.Background(), &routerv1.CreateChatCompletionRequest{Request: &openaiv1.ChatCompletionRequest{
		Model: "unknown", Messages: user()}})

	e, ok := apierror.FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.NotFound, e.Code)
	assert.Equal(t, "model", e.Param)
	assert.Equal(t, "model_not_found", e.ErrCode)
}
