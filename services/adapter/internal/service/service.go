// Package service is the AdapterService gRPC server: it validates each
// call, picks the wire format for the node's kind and returns node
// failures as *apierror.Error so the status carries their ErrorInfo.
package service

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/anthropic"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Server implements adapterv1.AdapterServiceServer.
type Server struct {
	adapterv1.UnimplementedAdapterServiceServer
	log    *slog.Logger
	pool   *nodeconn.Pool
	prober *probe.Prober
}

// New returns a server that reaches nodes through pool and probes them
// with prober.
func New(log *slog.Logger, pool *nodeconn.Pool, prober *probe.Prober) *Server {
	return &Server{log: log.With("component", "adapter"), pool: pool, prober: prober}
}

// Chat implements AdapterService.Chat.
func (s *Server) Chat(ctx context.Context, req *adapterv1.ChatRequest) (*adapterv1.ChatResponse, error) {
	start := time.Now()
	client, err := s.client(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return nil, err
	}
	var cc *openaiv1.ChatCompletion
	if t := req.GetFirstTokenTimeout(); t != nil && t.AsDuration() > 0 {
		cc, err = client.ChatFolded(ctx, req.GetRequest(), t.AsDuration())
	} else {
		cc, err = client.Chat(ctx, req.GetRequest())
	}
	s.done(ctx, "Chat", req.GetNode(), req.GetRequest().GetModel(), start, err)
	if err != nil {
		return nil, err
	}
	return &adapterv1.ChatResponse{Completion: cc}, nil
}

// ChatStream implements AdapterService.ChatStream.
func (s *Server) ChatStream(req *adapterv1.ChatStreamRequest, stream grpc.ServerStreamingServer[adapterv1.ChatStreamResponse]) error {
	start := time.Now()
	client, err := s.client(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	err = client.ChatStream(ctx, req.GetRequest(), func(chunk *openaiv1.ChatCompletionChunk) error {
		return stream.Send(&adapterv1.ChatStreamResponse{Chunk: chunk})
	})
	s.done(ctx, "ChatStream", req.GetNode(), req.GetRequest().GetModel(), start, err)
	return err
}

// Embed implements AdapterService.Embed.
func (s *Server) Embed(ctx context.Context, req *adapterv1.EmbedRequest) (*adapterv1.EmbedResponse, error) {
	start := time.Now()
	client, err := s.client(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return nil, err
	}
	list, err := client.Embed(ctx, req.GetRequest())
	s.done(ctx, "Embed", req.GetNode(), req.GetRequest().GetModel(), start, err)
	if err != nil {
		return nil, err
	}
	return &adapterv1.EmbedResponse{Embeddings: list}, nil
}

// Probe implements AdapterService.Probe. A node that is down is a
// response with up=false; only a malformed request is an error.
func (s *Server) Probe(ctx context.Context, req *adapterv1.ProbeRequest) (*adapterv1.ProbeResponse, error) {
	if err := validateNode(req.GetNode()); err != nil {
		return nil, err
	}
	res, err := s.prober.Probe(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	s.log.DebugContext(ctx, "probed", "node", req.GetNode().GetId(), "up", res.GetUp(),
		"reason", res.GetReason(), "latency", time.Duration(res.GetLatencyMicros())*time.Microsecond)
	return &adapterv1.ProbeResponse{Result: res}, nil
}

// chatClient is a node's chat and embeddings API in OpenAI's terms.
type chatClient interface {
	Chat(context.Context, *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error)
	ChatFolded(context.Context, *openaiv1.ChatCompletionRequest, time.Duration) (*openaiv1.ChatCompletion, error)
	ChatStream(context.Context, *openaiv1.ChatCompletionRequest, func(*openaiv1.ChatCompletionChunk) error) error
	Embed(context.Context, *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error)
}

// client validates a call and returns the client for its node: Anthropic
// nodes through the Messages API translation, every other kind through
// its OpenAI-compatible API (Ollama on /v1).
func (s *Server) client(n *nodev1.Node, hasRequest bool, model string) (chatClient, error) {
	if err := validateNode(n); err != nil {
		return nil, err
	}
	switch {
	case !hasRequest:
		return nil, invalid("request is required", "")
	case model == "":
		return nil, invalid("request.model is required", "model")
	}
	conn, err := s.pool.Client(n)
	if err != nil {
		return nil, err
	}
	if n.GetKind() == nodev1.Kind_KIND_ANTHROPIC {
		return anthropic.New(conn), nil
	}
	return openaicompat.New(conn), nil
}

func validateNode(n *nodev1.Node) error {
	switch {
	case n == nil:
		return invalid("node is required", "")
	case n.GetId() == "":
		return invalid("node.id is required", "")
	case n.GetKind() == nodev1.Kind_KIND_UNSPECIFIED:
		return invalid("node.kind is required", "")
	case nodev1.Kind_name[int32(n.GetKind())] == "":
		return invalid("node.kind "+n.GetKind().String()+" is not supported", "")
	}
	if _, err := nodeconn.ParseBaseURL(n.GetBaseUrl()); err != nil {
		return &apierror.Error{Code: codes.InvalidArgument, Message: "node." + err.Error(), Type: "invalid_request_error", Node: n.GetId()}
	}
	return nil
}

func invalid(msg, param string) error {
	return &apierror.Error{Code: codes.InvalidArgument, Message: msg, Type: "invalid_request_error", Param: param}
}

// done logs the outcome of a node call: failures at info level (they are
// the node's or the client's, not the adapter's), successes at debug.
func (s *Server) done(ctx context.Context, rpc string, n *nodev1.Node, model string, start time.Time, err error) {
	attrs := []any{"rpc", rpc, "node", n.GetId(), "kind", probe.KindName(n.GetKind()), "model", model, "elapsed", time.Since(start)}
	if err == nil {
		s.log.DebugContext(ctx, "node call", attrs...)
		return
	}
	e, _ := apierror.FromError(err)
	s.log.InfoContext(ctx, "node call failed", append(attrs, "code", e.Code.String(), "http_status", e.HTTPStatus, "err", e.Message)...)
}
