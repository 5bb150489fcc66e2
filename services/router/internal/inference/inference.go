// Package inference implements llmesh.router.v1.InferenceService, the
// public API served over native gRPC and, through the edge, REST. It
// validates requests, shapes answers the way OpenAI does and leaves the
// choice of node to routing.
package inference

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/routing"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Service is the InferenceService server.
type Service struct {
	routerv1.UnimplementedInferenceServiceServer
	routing *routing.Router
	table   *nodetable.Table
	routes  *modelroutes.Table
}

// New returns the service. routes are the model aliases routing resolves,
// listed with the models; nil means none.
func New(r *routing.Router, t *nodetable.Table, routes *modelroutes.Table) *Service {
	if routes == nil {
		routes = &modelroutes.Table{}
	}
	return &Service{routing: r, table: t, routes: routes}
}

// CreateChatCompletion answers a chat in one response.
func (s *Service) CreateChatCompletion(ctx context.Context, in *routerv1.CreateChatCompletionRequest) (*routerv1.CreateChatCompletionResponse, error) {
	req := in.GetRequest()
	if err := validateChat(req); err != nil {
		return nil, err
	}
	if req.GetStream() {
		// The upstream call is always unary here; the REST edge sends
		// stream:true to StreamChatCompletion.
		req = proto.CloneOf(req)
		req.Stream = false
		req.StreamOptions = nil
	}
	out, err := s.routing.Chat(withSession(ctx, req.GetUser()), req)
	if err != nil {
		return nil, err
	}
	return &routerv1.CreateChatCompletionResponse{Completion: out}, nil
}

// StreamChatCompletion answers a chat as chunks.
func (s *Service) StreamChatCompletion(in *routerv1.StreamChatCompletionRequest, stream grpc.ServerStreamingServer[routerv1.StreamChatCompletionResponse]) error {
	req := in.GetRequest()
	if err := validateChat(req); err != nil {
		return err
	}
	if !req.GetStream() {
		req = proto.CloneOf(req)
		req.Stream = true
	}
	return s.routing.ChatStream(withSession(stream.Context(), req.GetUser()), req, func(c *openaiv1.ChatCompletionChunk) error {
		return stream.Send(&routerv1.StreamChatCompletionResponse{Chunk: c})
	})
}

// ListModels lists the models that up nodes serve.
func (s *Service) ListModels(context.Context, *routerv1.ListModelsRequest) (*routerv1.ListModelsResponse, error) {
	models := s.table.Snapshot().Models()
	list := &openaiv1.ModelList{Object: "list", Data: make([]*openaiv1.Model, 0, len(models))}
	for _, m := range models {
		owner := m.GetOwnedBy()
		if owner == "" {
			owner = "llmesh"
		}
		list.Data = append(list.Data, &openaiv1.Model{Id: m.GetId(), Object: "model", Created: m.GetCreated(), OwnedBy: owner})
	}
	// Aliases are listed when what they stand for is served.
	served := map[string]bool{}
	for _, m := range models {
		served[m.GetId()] = true
		for _, a := range m.GetAliases() {
			served[a] = true
		}
	}
	for _, alias := range s.routes.Aliases() {
		if served[s.routes.Resolve(alias).Model] {
			list.Data = append(list.Data, &openaiv1.Model{Id: alias, Object: "model", OwnedBy: "llmesh-alias"})
		}
	}
	return &routerv1.ListModelsResponse{Models: list}, nil
}

// GetModel describes one served model (or alias).
func (s *Service) GetModel(ctx context.Context, in *routerv1.GetModelRequest) (*routerv1.GetModelResponse, error) {
	if in.GetModel() == "" {
		return nil, apierror.Invalid("model", "you must provide a model name")
	}
	list, err := s.ListModels(ctx, &routerv1.ListModelsRequest{})
	if err != nil {
		return nil, err
	}
	for _, m := range list.GetModels().GetData() {
		if m.GetId() == in.GetModel() {
			return &routerv1.GetModelResponse{Model: m}, nil
		}
	}
	for _, m := range s.table.Snapshot().Models() {
		if slices.Contains(m.GetAliases(), in.GetModel()) {
			owner := m.GetOwnedBy()
			if owner == "" {
				owner = "llmesh"
			}
			return &routerv1.GetModelResponse{Model: &openaiv1.Model{Id: in.GetModel(), Object: "model", Created: m.GetCreated(), OwnedBy: owner}}, nil
		}
	}
	return nil, apierror.ModelNotFound(in.GetModel())
}

// CreateCompletion answers a legacy prompt completion in one response.
func (s *Service) CreateCompletion(ctx context.Context, in *routerv1.CreateCompletionRequest) (*routerv1.CreateCompletionResponse, error) {
	req := in.GetRequest()
	if err := validateCompletion(req, false); err != nil {
		return nil, err
	}
	req = proto.CloneOf(req)
	req.Stream = false
	req.StreamOptions = nil
	out, err := s.routing.Complete(withSession(ctx, req.GetUser()), req)
	if err != nil {
		return nil, err
	}
	return &routerv1.CreateCompletionResponse{Completion: out}, nil
}

// StreamCompletion answers a legacy prompt completion as chunks.
func (s *Service) StreamCompletion(in *routerv1.StreamCompletionRequest, stream grpc.ServerStreamingServer[routerv1.StreamCompletionResponse]) error {
	req := in.GetRequest()
	if err := validateCompletion(req, true); err != nil {
		return err
	}
	req = proto.CloneOf(req)
	req.Stream = true
	return s.routing.CompleteStream(withSession(stream.Context(), req.GetUser()), req, func(c *openaiv1.Completion) error {
		return stream.Send(&routerv1.StreamCompletionResponse{Chunk: c})
	})
}

// CreateEmbeddings embeds the input. Nodes are always asked for floats;
// base64 is produced here, so it works with nodes that only speak floats.
func (s *Service) CreateEmbeddings(ctx context.Context, in *routerv1.CreateEmbeddingsRequest) (*routerv1.CreateEmbeddingsResponse, error) {
	req := in.GetRequest()
	if err := validateEmbeddings(req); err != nil {
		return nil, err
	}
	wantBase64 := req.GetEncodingFormat() == "base64"
	if req.GetEncodingFormat() != "" {
		req = proto.CloneOf(req)
		req.EncodingFormat = ""
	}
	out, err := s.routing.Embed(ctx, req)
	if err != nil {
		return nil, err
	}
	if wantBase64 {
		for _, e := range out.GetData() {
			e.EmbeddingBase64 = float32Bytes(e.GetEmbedding())
			e.Embedding = nil
		}
	}
	return &routerv1.CreateEmbeddingsResponse{Embeddings: out}, nil
}

// SessionHeader is the request header (gRPC metadata key) that names a
// session; without it the request's `user` field does.
const SessionHeader = "x-session-id"

// withSession keeps a session's requests on one node (its KV cache).
func withSession(ctx context.Context, user string) context.Context {
	if v := metadata.ValueFromIncomingContext(ctx, SessionHeader); len(v) > 0 && v[0] != "" {
		return routing.WithSessionKey(ctx, v[0])
	}
	return routing.WithSessionKey(ctx, user)
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// maxChoices is the largest n (OpenAI's own limit).
const maxChoices = 128

func validateChat(req *openaiv1.ChatCompletionRequest) error {
	switch {
	case req == nil:
		return apierror.Invalid("", "request body is required")
	case req.GetModel() == "":
		return apierror.Invalid("model", "you must provide a model parameter")
	case len(req.GetMessages()) == 0:
		return apierror.Invalid("messages", "messages must be a non-empty array")
	}
	for i, m := range req.GetMessages() {
		if m.GetRole() == "function" {
			// The deprecated function-calling API is refused as a whole
			// (the codec refuses functions and function_call).
			return apierror.Invalid(fmt.Sprintf("messages[%d].role", i), `role "function" is deprecated and not supported; answer a tool call with role "tool" and its tool_call_id`)
		}
		if !roles[m.GetRole()] {
			return apierror.Invalid(fmt.Sprintf("messages[%d].role", i), "invalid role %q: want system, developer, user, assistant or tool", apierror.Clip(m.GetRole()))
		}
		for j, p := range m.GetContent().GetParts().GetParts() {
			if !partTypes[p.GetType()] {
				return apierror.Invalid(fmt.Sprintf("messages[%d].content[%d].type", i, j), "unsupported content part type %q: want text, image_url or input_audio", apierror.Clip(p.GetType()))
			}
		}
		if err := validateMessage(i, m); err != nil {
			return err
		}
	}
	if err := validateChatOptions(req); err != nil {
		return err
	}
	if err := validateSchemas(req); err != nil {
		return err
	}
	if err := validateToolChoice(req); err != nil {
		return err
	}
	if err := validateSampling(req); err != nil {
		return err
	}
	if req.MaxTokens != nil && req.GetMaxTokens() < 1 {
		return apierror.Invalid("max_tokens", "max_tokens must be at least 1")
	}
	if req.MaxCompletionTokens != nil && req.GetMaxCompletionTokens() < 1 {
		return apierror.Invalid("max_completion_tokens", "max_completion_tokens must be at least 1")
	}
	if req.N != nil && (req.GetN() < 1 || req.GetN() > maxChoices) {
		return apierror.Invalid("n", "n must be between 1 and %d", maxChoices)
	}
	return nil
}

func validateCompletion(req *openaiv1.CompletionRequest, streamed bool) error {
	switch {
	case req == nil:
		return apierror.Invalid("", "request body is required")
	case req.GetModel() == "":
		return apierror.Invalid("model", "you must provide a model parameter")
	case len(req.GetPrompt()) == 0:
		return apierror.Invalid("prompt", "you must provide a prompt")
	case req.MaxTokens != nil && req.GetMaxTokens() < 0:
		return apierror.Invalid("max_tokens", "max_tokens must not be negative")
	case req.N != nil && (req.GetN() < 1 || req.GetN() > maxChoices):
		return apierror.Invalid("n", "n must be between 1 and %d", maxChoices)
	}
	if err := validateCompletionOptions(req, streamed); err != nil {
		return err
	}
	return validateSampling(req)
}

// partTypes are the content part types a message may carry (the REST
// codec refuses others while decoding; native gRPC requests come here).
var partTypes = map[string]bool{"text": true, "image_url": true, "input_audio": true}

// validateSchemas checks that the response_format schema and tool
// parameters, carried as JSON text, are JSON objects (the REST codec
// checks while decoding; native gRPC clients fill the text themselves).
func validateSchemas(req *openaiv1.ChatCompletionRequest) error {
	check := func(param, text string) error {
		if text == "" {
			return nil
		}
		if _, err := openaijson.JSONObject([]byte(text)); err != nil {
			return apierror.Invalid(param, "%s must be the JSON text of an object: %w", param, err)
		}
		return nil
	}
	if err := check("response_format.json_schema.schema", req.GetResponseFormat().GetJsonSchema().GetSchemaJson()); err != nil {
		return err
	}
	for i, t := range req.GetTools() {
		if err := check(fmt.Sprintf("tools[%d].function.parameters", i), t.GetFunction().GetParametersJson()); err != nil {
			return err
		}
	}
	return nil
}

// validateToolChoice checks tool_choice against tools, as OpenAI does: a
// known mode, and a forced function that the request defines.
func validateToolChoice(req *openaiv1.ChatCompletionRequest) error {
	tc := req.GetToolChoice()
	if tc == nil {
		return nil
	}
	if mode, ok := tc.GetKind().(*openaiv1.ToolChoice_Mode); ok {
		switch mode.Mode {
		case "none", "auto", "required":
		default:
			return apierror.Invalid("tool_choice", "invalid tool_choice %q: want none, auto, required or a function", apierror.Clip(mode.Mode))
		}
		if mode.Mode != "none" && len(req.GetTools()) == 0 {
			return apierror.Invalid("tool_choice", "tool_choice %q is only allowed when tools are specified", mode.Mode)
		}
		return nil
	}
	name := tc.GetFunctionName()
	for _, t := range req.GetTools() {
		if t.GetFunction().GetName() == name {
			return nil
		}
	}
	return apierror.Invalid("tool_choice", "tool_choice names function %q, which is not among the request's tools", apierror.Clip(name))
}

// sampling is what chat and legacy completion requests share of
// OpenAI's sampling settings.
type sampling interface {
	GetTemperature() float64
	GetTopP() float64
	GetPresencePenalty() float64
	GetFrequencyPenalty() float64
}

// validateSampling keeps the sampling settings in OpenAI's ranges, which
// its SDKs' users expect to be enforced whichever node answers.
func validateSampling(req sampling) error {
	checks := []struct {
		param    string
		v        float64
		min, max float64
	}{
		{"temperature", req.GetTemperature(), 0, 2},
		{"top_p", req.GetTopP(), 0, 1},
		{"presence_penalty", req.GetPresencePenalty(), -2, 2},
		{"frequency_penalty", req.GetFrequencyPenalty(), -2, 2},
	}
	for _, c := range checks {
		if c.v < c.min || c.v > c.max || math.IsNaN(c.v) {
			return apierror.Invalid(c.param, "%s must be between %g and %g, not %g", c.param, c.min, c.max, c.v)
		}
	}
	return nil
}

// validateInput refuses embedding input with nothing to embed, as OpenAI
// does: an empty string, an empty array, or an empty string or token array
// inside one.
func validateInput(in *openaiv1.EmbeddingInput) error {
	const msg = "input must not be empty: give a non-empty string, or a non-empty array of non-empty strings or token arrays"
	switch k := in.GetKind().(type) {
	case *openaiv1.EmbeddingInput_Text:
		if k.Text == "" {
			return apierror.Invalid("input", msg)
		}
	case *openaiv1.EmbeddingInput_Texts:
		if len(k.Texts.GetValues()) == 0 || slices.Contains(k.Texts.GetValues(), "") {
			return apierror.Invalid("input", msg)
		}
	case *openaiv1.EmbeddingInput_Tokens:
		if len(k.Tokens.GetValues()) == 0 {
			return apierror.Invalid("input", msg)
		}
		return validTokens(k.Tokens.GetValues())
	case *openaiv1.EmbeddingInput_TokenLists:
		if len(k.TokenLists.GetValues()) == 0 || slices.ContainsFunc(k.TokenLists.GetValues(), func(l *openaiv1.TokenList) bool { return len(l.GetValues()) == 0 }) {
			return apierror.Invalid("input", msg)
		}
		if n := len(k.TokenLists.GetValues()); n > maxInputs {
			return apierror.Invalid("input", "at most %d inputs in one request, not %d", maxInputs, n)
		}
		for _, l := range k.TokenLists.GetValues() {
			if err := validTokens(l.GetValues()); err != nil {
				return err
			}
		}
	}
	if n := len(in.GetTexts().GetValues()); n > maxInputs {
		return apierror.Invalid("input", "at most %d inputs in one request, not %d", maxInputs, n)
	}
	return nil
}

// validTokens refuses negative token ids.
func validTokens(ids []int64) error {
	if slices.ContainsFunc(ids, func(id int64) bool { return id < 0 }) {
		return apierror.Invalid("input", "token ids must not be negative")
	}
	return nil
}

func validateEmbeddings(req *openaiv1.EmbeddingRequest) error {
	switch {
	case req == nil:
		return apierror.Invalid("", "request body is required")
	case req.GetModel() == "":
		return apierror.Invalid("model", "you must provide a model parameter")
	case req.GetInput().GetKind() == nil:
		return apierror.Invalid("input", "input is required")
	}
	if err := validateInput(req.GetInput()); err != nil {
		return err
	}
	if req.Dimensions != nil && req.GetDimensions() < 1 {
		return apierror.Invalid("dimensions", "dimensions must be at least 1, not %d", req.GetDimensions())
	}
	switch f := req.GetEncodingFormat(); f {
	case "", "float", "base64":
	default:
		return apierror.Invalid("encoding_format", "encoding_format must be float or base64, not %q", apierror.Clip(f))
	}
	return nil
}
