package grpcutf8

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// service answers every chat and counts the requests that reached it.
type service struct {
	routerv1.UnimplementedInferenceServiceServer
	calls atomic.Int32
}

func (s *service) CreateChatCompletion(context.Context, *routerv1.CreateChatCompletionRequest) (*routerv1.CreateChatCompletionResponse, error) {
	s.calls.Add(1)
	return &routerv1.CreateChatCompletionResponse{Completion: &openaiv1.ChatCompletion{Id: "ok"}}, nil
}

func (s *service) StreamChatCompletion(_ *routerv1.StreamChatCompletionRequest, stream grpc.ServerStreamingServer[routerv1.StreamChatCompletionResponse]) error {
	s.calls.Add(1)
	return stream.Send(&routerv1.StreamChatCompletionResponse{Chunk: &openaiv1.ChatCompletionChunk{Id: "ok"}})
}

// raw is a client codec that sends bytes as they are, so a test can send
// what a Go client's own codec would refuse to encode.
type raw struct{}

func (raw) Name() string { return "proto" }
func (raw) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (raw) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func serve(t *testing.T, svc *service, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcserver.New(slog.New(slog.DiscardHandler), opts...)
	routerv1.RegisterInferenceServiceServer(srv.GRPC, svc)
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

// chatBytes is a chat request's wire form whose second message's text
// holds a byte that is not UTF-8.
func chatBytes(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&routerv1.CreateChatCompletionRequest{Request: &openaiv1.ChatCompletionRequest{Model: "m",
		Messages: []*openaiv1.ChatMessage{
			{Role: "system", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "be brief"}}},
			{Role: "user", Content: &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: "aXb"}}},
		}}})
	require.NoError(t, err)
	require.Equal(t, 1, bytes.Count(b, []byte("aXb")))
	return bytes.Replace(b, []byte("aXb"), []byte("a\xffb"), 1)
}

const (
	unaryMethod  = "/llmesh.router.v1.InferenceService/CreateChatCompletion"
	streamMethod = "/llmesh.router.v1.InferenceService/StreamChatCompletion"
)

func callUnary(conn *grpc.ClientConn, req []byte) error {
	var out []byte
	return conn.Invoke(context.Background(), unaryMethod, req, &out, grpc.ForceCodecV2(raw{}))
}

func callStream(conn *grpc.ClientConn, req []byte) error {
	s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, streamMethod, grpc.ForceCodecV2(raw{}))
	if err != nil {
		return err
	}
	if err := s.SendMsg(req); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		var out []byte
		if err := s.RecvMsg(&out); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Without this package, grpc-go reports a client's invalid string as a
// server fault: INTERNAL.
func TestGRPCGoAloneSaysInternal(t *testing.T) {
	svc := &service{}
	conn := serve(t, svc)
	assert.Equal(t, codes.Internal, status.Code(callUnary(conn, chatBytes(t))))
}

func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	svc := &service{}
	conn := serve(t, svc, ServerOptions()...)
	for name, call := range map[string]func(*grpc.ClientConn, []byte) error{"unary": callUnary, "server streaming": callStream} {
		t.Run(name, func(t *testing.T) {
			err := call(conn, chatBytes(t))
			st := status.Convert(err)
			assert.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
			assert.Equal(t, "request.messages[1].content.text: string is not valid UTF-8; proto3 strings must be UTF-8", st.Message())
			e, _ := apierror.FromError(err)
			assert.Equal(t, "request.messages[1].content.text", e.Param)
			assert.Equal(t, "invalid_request_error", e.Type)
		})
	}
	assert.Zero(t, svc.calls.Load(), "a refused request reached the service")

	t.Run("valid requests pass", func(t *testing.T) {
		b, err := proto.Marshal(&routerv1.CreateChatCompletionRequest{Request: &openaiv1.ChatCompletionRequest{Model: "é😀"}})
		require.NoError(t, err)
		require.NoError(t, callUnary(conn, b))
		require.NoError(t, callStream(conn, b))
		assert.EqualValues(t, 2, svc.calls.Load())
	})
	t.Run("other decode failures stay as grpc-go reports them", func(t *testing.T) {
		assert.Equal(t, codes.Internal, status.Code(callUnary(conn, []byte{0xff})))
	})
	t.Run("a client cannot forge the mark", func(t *testing.T) {
		b, err := proto.Marshal(&routerv1.CreateChatCompletionRequest{})
		require.NoError(t, err)
		b = protowire.AppendTag(b, markField, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte("guess"))
		assert.NoError(t, callUnary(conn, b))
	})
}
