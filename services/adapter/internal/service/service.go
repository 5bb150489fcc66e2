// Package service is the AdapterService gRPC server: it validates each
// call, picks the wire format for the node's kind and returns node
// failures as *apierror.Error so the status carries their ErrorInfo.
package service

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/anthropic"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/ollama"
	"github.com/llmesh/llmesh/services/adapter/internal/ollamabridge"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/nodespec"
	"github.com/llmesh/llmesh/services/meshkit/silence"
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
	limits := req.GetTimeouts()
	ctx = nodeconn.WithConnectTimeout(ctx, limits.GetConnect().AsDuration())
	var timing silence.Timing
	ctx = silence.WithTiming(ctx, &timing)
	var cc *openaiv1.ChatCompletion
	if first := limits.GetFirstToken().AsDuration(); first > 0 {
		cc, err = client.ChatFolded(ctx, req.GetRequest(), first, limits.GetIdle().AsDuration())
	} else {
		cc, err = client.Chat(ctx, req.GetRequest())
	}
	s.done(ctx, "Chat", req.GetNode(), req.GetRequest().GetModel(), start, err)
	if err != nil {
		return nil, err
	}
	return &adapterv1.ChatResponse{Completion: cc, FirstToken: sinceStart(&timing, start)}, nil
}

// ChatStream implements AdapterService.ChatStream.
func (s *Server) ChatStream(req *adapterv1.ChatStreamRequest, stream grpc.ServerStreamingServer[adapterv1.ChatStreamResponse]) error {
	start := time.Now()
	client, err := s.client(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return err
	}
	ctx := nodeconn.WithConnectTimeout(stream.Context(), req.GetTimeouts().GetConnect().AsDuration())
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
	ctx = nodeconn.WithConnectTimeout(ctx, req.GetTimeouts().GetConnect().AsDuration())
	// The node answers when the whole batch is done: the first-token
	// bound is the wait for its response.
	ctx = nodeconn.WithResponseTimeout(ctx, req.GetTimeouts().GetFirstToken().AsDuration())
	list, err := client.Embed(ctx, req.GetRequest())
	s.done(ctx, "Embed", req.GetNode(), req.GetRequest().GetModel(), start, err)
	if err != nil {
		return nil, err
	}
	return &adapterv1.EmbedResponse{Embeddings: list}, nil
}

// Complete implements AdapterService.Complete.
func (s *Server) Complete(ctx context.Context, req *adapterv1.CompleteRequest) (*adapterv1.CompleteResponse, error) {
	start := time.Now()
	client, err := s.completionClient(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return nil, err
	}
	ctx = nodeconn.WithConnectTimeout(ctx, req.GetTimeouts().GetConnect().AsDuration())
	var timing silence.Timing
	ctx = silence.WithTiming(ctx, &timing)
	var out *openaiv1.Completion
	if first := req.GetTimeouts().GetFirstToken().AsDuration(); first > 0 {
		out, err = client.CompleteFolded(ctx, req.GetRequest(), first, req.GetTimeouts().GetIdle().AsDuration())
	} else {
		out, err = client.Complete(ctx, req.GetRequest())
	}
	s.done(ctx, "Complete", req.GetNode(), req.GetRequest().GetModel(), start, err)
	if err != nil {
		return nil, err
	}
	return &adapterv1.CompleteResponse{Completion: out, FirstToken: sinceStart(&timing, start)}, nil
}

// sinceStart is how long after start the first token recorded in timing
// came; nil when none was seen (a node answered in one piece).
func sinceStart(timing *silence.Timing, start time.Time) *durationpb.Duration {
	first, ok := timing.First()
	if !ok {
		return nil
	}
	return durationpb.New(first.Sub(start))
}

// CompleteStream implements AdapterService.CompleteStream.
func (s *Server) CompleteStream(req *adapterv1.CompleteStreamRequest, stream grpc.ServerStreamingServer[adapterv1.CompleteStreamResponse]) error {
	start := time.Now()
	client, err := s.completionClient(req.GetNode(), req.GetRequest() != nil, req.GetRequest().GetModel())
	if err != nil {
		return err
	}
	ctx := nodeconn.WithConnectTimeout(stream.Context(), req.GetTimeouts().GetConnect().AsDuration())
	err = client.CompleteStream(ctx, req.GetRequest(), func(chunk *openaiv1.Completion) error {
		return stream.Send(&adapterv1.CompleteStreamResponse{Chunk: chunk})
	})
	s.done(ctx, "CompleteStream", req.GetNode(), req.GetRequest().GetModel(), start, err)
	return err
}

// ollamaPaths are the native paths of the Ollama endpoints.
var ollamaPaths = map[adapterv1.OllamaEndpoint]string{
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT:       ollama.PathChat,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE:   ollama.PathGenerate,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED:      ollama.PathEmbed,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS: ollama.PathEmbeddings,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW:       ollama.PathShow,
}

// oneObject are the Ollama endpoints that answer with one object when the
// node is done, rather than a stream of tokens.
var oneObject = map[adapterv1.OllamaEndpoint]bool{
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED:      true,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS: true,
	adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW:       true,
}

// Ollama implements AdapterService.Ollama: Ollama nodes get the request
// on their native API as it came; other kinds through the bridge to their
// OpenAI-compatible API.
func (s *Server) Ollama(req *adapterv1.OllamaRequest, stream grpc.ServerStreamingServer[adapterv1.OllamaResponse]) error {
	start := time.Now()
	if err := validateNode(req.GetNode()); err != nil {
		return err
	}
	path, ok := ollamaPaths[req.GetEndpoint()]
	if !ok {
		return apierror.Invalid("endpoint", "endpoint %s is not supported", req.GetEndpoint())
	}
	var model struct {
		Model string `json:"model"`
		Name  string `json:"name"` // /api/show's older name
	}
	if err := json.Unmarshal(req.GetBody(), &model); err != nil {
		return apierror.Invalid("body", "body is not a JSON object: %w", err)
	}
	if model.Model == "" && model.Name == "" {
		return apierror.Invalid("model", "body.model is required")
	}
	conn, err := s.pool.Client(req.GetNode())
	if err != nil {
		return err
	}
	ctx := nodeconn.WithConnectTimeout(stream.Context(), req.GetTimeouts().GetConnect().AsDuration())
	send := func(obj []byte) error { return stream.Send(&adapterv1.OllamaResponse{Object: obj}) }
	firstToken, idle := req.GetTimeouts().GetFirstToken().AsDuration(), req.GetTimeouts().GetIdle().AsDuration()
	if oneObject[req.GetEndpoint()] {
		// Answered in one piece when done: the first-token bound is the
		// wait for the node's response (a chat or generate watches its
		// first token instead).
		ctx = nodeconn.WithResponseTimeout(ctx, firstToken)
	}
	if req.GetNode().GetKind() == nodev1.Kind_KIND_OLLAMA {
		err = ollama.New(conn).Native(ctx, path, req.GetBody(), firstToken, idle, send)
	} else {
		err = ollamabridge.New(api(conn), req.GetNode(), req.GetModelType()).Serve(ctx, req.GetEndpoint(), req.GetBody(), firstToken, idle, send)
	}
	s.done(ctx, "Ollama "+path, req.GetNode(), model.Model+model.Name, start, err)
	return err
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

// client validates a call and returns the client for its node: Anthropic
// nodes through the Messages API translation, every other kind through
// its OpenAI-compatible API (Ollama on /v1).
func (s *Server) client(n *nodev1.Node, hasRequest bool, model string) (ollamabridge.API, error) {
	if err := validateNode(n); err != nil {
		return nil, err
	}
	switch {
	case !hasRequest:
		return nil, apierror.Invalid("", "request is required")
	case model == "":
		return nil, apierror.Invalid("model", "request.model is required")
	}
	conn, err := s.pool.Client(n)
	if err != nil {
		return nil, err
	}
	return api(conn), nil
}

// api is conn's node's API in OpenAI's terms: Anthropic nodes through the
// Messages API translation, every other kind its OpenAI-compatible API.
func api(conn *nodeconn.Client) ollamabridge.API {
	if conn.Kind() == nodev1.Kind_KIND_ANTHROPIC {
		return anthropic.New(conn)
	}
	return openaicompat.New(conn)
}

// completionClient is client for legacy completions, which only the
// OpenAI-compatible API has.
func (s *Server) completionClient(n *nodev1.Node, hasRequest bool, model string) (*openaicompat.Client, error) {
	c, err := s.client(n, hasRequest, model)
	if err != nil {
		return nil, err
	}
	oc, ok := c.(*openaicompat.Client)
	if !ok {
		return nil, apierror.Invalid("model", "node %s (kind %s) has no legacy completions API; use chat completions", n.GetId(), probe.KindName(n.GetKind())).WithNode(n.GetId())
	}
	return oc, nil
}

func validateNode(n *nodev1.Node) error {
	switch {
	case n == nil:
		return apierror.Invalid("", "node is required")
	case n.GetId() == "":
		return apierror.Invalid("", "node.id is required")
	case n.GetKind() == nodev1.Kind_KIND_UNSPECIFIED:
		return apierror.Invalid("", "node.kind is required")
	case nodev1.Kind_name[int32(n.GetKind())] == "":
		return apierror.Invalid("", "node.kind %s is not supported", n.GetKind())
	}
	if err := nodespec.Validate(n); err != nil {
		return apierror.Invalid("", "node %s: %s", n.GetId(), nodeconn.OneLine(err)).WithNode(n.GetId())
	}
	return nil
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
