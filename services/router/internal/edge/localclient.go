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

// StreamChatCompletion runs the server handler in a goroutine and returns
// once it has sent its first chunk or ended. A failure before the first
// chunk is therefore returned here, and the gateway answers it as a plain
// HTTP error with the right status rather than as an event in a 200 stream.
func (c localClient) StreamChatCompletion(ctx context.Context, in *routerv1.StreamChatCompletionRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[routerv1.StreamChatCompletionResponse], error) {
	s := &localStream{ctx: incoming(ctx), msgs: make(chan *routerv1.StreamChatCompletionResponse), done: make(chan struct{})}
	go func() {
		// Ends when the handler returns; Send fails once ctx is done, so
		// an abandoned stream cannot block it.
		s.err = c.srv.StreamChatCompletion(in, s)
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
type localStream struct {
	ctx   context.Context
	msgs  chan *routerv1.StreamChatCompletionResponse
	done  chan struct{}
	err   error // the handler's result, readable after done is closed
	first *routerv1.StreamChatCompletionResponse
}

// Send is the server end.
func (s *localStream) Send(m *routerv1.StreamChatCompletionResponse) error {
	select {
	case s.msgs <- m:
		return nil
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// Recv is the client end.
func (s *localStream) Recv() (*routerv1.StreamChatCompletionResponse, error) {
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

func (s *localStream) Context() context.Context     { return s.ctx }
func (s *localStream) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (s *localStream) Trailer() metadata.MD         { return nil }
func (s *localStream) CloseSend() error             { return nil }
func (s *localStream) SetHeader(metadata.MD) error  { return nil }
func (s *localStream) SendHeader(metadata.MD) error { return nil }
func (s *localStream) SetTrailer(metadata.MD)       {}
func (s *localStream) SendMsg(m any) error {
	return s.Send(m.(*routerv1.StreamChatCompletionResponse))
}
func (s *localStream) RecvMsg(m any) error {
	msg, err := s.Recv()
	if err != nil {
		return err
	}
	dst := m.(*routerv1.StreamChatCompletionResponse)
	proto.Reset(dst)
	proto.Merge(dst, msg)
	return nil
}
