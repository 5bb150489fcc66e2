package edge

import (
	"context"
	"io"

	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// localClient is an InferenceServiceClient that calls the server in the
// same process, so REST requests skip a loopback gRPC round trip and keep
// Go errors intact (with their OpenAI fields).
type localClient struct {
	srv routerv1.InferenceServiceServer
}

var _ routerv1.InferenceServiceClient = localClient{}

// incoming turns the metadata grpc-gateway derived from HTTP headers into
// what a server handler reads, and clears it as outgoing metadata so it is
// not forwarded to the adapter.
func incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewOutgoingContext(metadata.NewIncomingContext(ctx, md), nil)
}

func (c localClient) CreateChatCompletion(ctx context.Context, in *routerv1.CreateChatCompletionRequest, _ ...grpc.CallOption) (*routerv1.CreateChatCompletionResponse, error) {
	return c.srv.CreateChatCompletion(incoming(ctx), in)
}

func (c localClient) ListModels(ctx context.Context, in *routerv1.ListModelsRequest, _ ...grpc.CallOption) (*routerv1.ListModelsResponse, error) {
	return c.srv.ListModels(incoming(ctx), in)
}

func (c localClient) CreateEmbeddings(ctx context.Context, in *routerv1.CreateEmbeddingsRequest, _ ...grpc.CallOption) (*routerv1.CreateEmbeddingsResponse, error) {
	return c.srv.CreateEmbeddings(incoming(ctx), in)
}

func (c localClient) CreateCompletion(ctx context.Context, in *routerv1.CreateCompletionRequest, _ ...grpc.CallOption) (*routerv1.CreateCompletionResponse, error) {
	return c.srv.CreateCompletion(incoming(ctx), in)
}

func (c localClient) GetModel(ctx context.Context, in *routerv1.GetModelRequest, _ ...grpc.CallOption) (*routerv1.GetModelResponse, error) {
	return c.srv.GetModel(incoming(ctx), in)
}

func (c localClient) StreamChatCompletion(ctx context.Context, in *routerv1.StreamChatCompletionRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[routerv1.StreamChatCompletionResponse], error) {
	return startLocal(ctx, func(s *localStream[routerv1.StreamChatCompletionResponse]) error {
		return c.srv.StreamChatCompletion(in, s)
	})
}

func (c localClient) StreamCompletion(ctx context.Context, in *routerv1.StreamCompletionRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[routerv1.StreamCompletionResponse], error) {
	return startLocal(ctx, func(s *localStream[routerv1.StreamCompletionResponse]) error {
		return c.srv.StreamCompletion(in, s)
	})
}

// startLocal runs a server stream handler in a goroutine and returns once
// it has sent its first message or ended. A failure before the first
// message is therefore returned here, and the gateway answers it as a
// plain HTTP error with the right status rather than as an event in a 200
// stream.
func startLocal[T any](ctx context.Context, handler func(*localStream[T]) error) (*localStream[T], error) {
	s := &localStream[T]{ctx: incoming(ctx), msgs: make(chan *T), done: make(chan struct{})}
	go func() {
		// Ends when the handler returns; Send fails once ctx is done, so
		// an abandoned stream cannot block it.
		s.err = handler(s)
		close(s.done)
	}()
	select {
	case s.first = <-s.msgs:
		return s, nil
	case <-s.done:
		if s.err != nil {
			return nil, s.err
		}
		return s, nil
	}
}

// localStream is both ends of one in-process server stream. Sends are
// unbuffered: the handler runs at the pace of the HTTP client.
type localStream[T any] struct {
	ctx   context.Context
	msgs  chan *T
	done  chan struct{}
	err   error // the handler's result, readable after done is closed
	first *T
}

// Send is the server end.
func (s *localStream[T]) Send(m *T) error {
	select {
	case s.msgs <- m:
		return nil
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// Recv is the client end.
func (s *localStream[T]) Recv() (*T, error) {
	if m := s.first; m != nil {
		s.first = nil
		return m, nil
	}
	select {
	case m := <-s.msgs:
		return m, nil
	case <-s.done:
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
}

func (s *localStream[T]) Context() context.Context     { return s.ctx }
func (s *localStream[T]) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (s *localStream[T]) Trailer() metadata.MD         { return nil }
func (s *localStream[T]) CloseSend() error             { return nil }
func (s *localStream[T]) SetHeader(metadata.MD) error  { return nil }
func (s *localStream[T]) SendHeader(metadata.MD) error { return nil }
func (s *localStream[T]) SetTrailer(metadata.MD)       {}

func (s *localStream[T]) SendMsg(m any) error {
	return s.Send(m.(*T))
}

func (s *localStream[T]) RecvMsg(m any) error {
	msg, err := s.Recv()
	if err != nil {
		return err
	}
	dst := m.(proto.Message)
	proto.Reset(dst)
	proto.Merge(dst, any(msg).(proto.Message))
	return nil
}
