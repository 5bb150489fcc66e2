package ollamabridge

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/silence"
)

// Bridge answers Ollama API requests through a node's OpenAI API.
type Bridge struct {
	oa        API
	nodeID    string
	kind      nodev1.Kind
	apiKey    bool
	modelType nodev1.ModelType
}

// New returns a bridge over node's API in OpenAI's terms, for a request
// for a model of modelType (what the node's probe found).
func New(oa API, node *nodev1.Node, modelType nodev1.ModelType) *Bridge {
	return &Bridge{oa: oa, nodeID: node.GetId(), kind: node.GetKind(), apiKey: node.GetApiKeyEnv() != "", modelType: modelType}
}

// API is a node's API in OpenAI's terms, as the adapter speaks it (the
// OpenAI-compatible client, or a translation such as Anthropic's).
type API interface {
	Chat(context.Context, *openaiv1.ChatCompletionRequest) (*openaiv1.ChatCompletion, error)
	ChatFolded(ctx context.Context, req *openaiv1.ChatCompletionRequest, firstToken, idle time.Duration) (*openaiv1.ChatCompletion, error)
	ChatStream(context.Context, *openaiv1.ChatCompletionRequest, func(*openaiv1.ChatCompletionChunk) error) error
	Embed(context.Context, *openaiv1.EmbeddingRequest) (*openaiv1.EmbeddingList, error)
	ListModels(context.Context) (*openaiv1.ModelList, error)
}

// Completer is a node's legacy prompt completions API (/v1/completions),
// which OpenAI-compatible nodes have and Anthropic's Messages API has not:
// what /api/generate uses to send a prompt untemplated.
type Completer interface {
	Complete(context.Context, *openaiv1.CompletionRequest) (*openaiv1.Completion, error)
	CompleteFolded(ctx context.Context, req *openaiv1.CompletionRequest, firstToken, idle time.Duration) (*openaiv1.Completion, error)
	CompleteStream(context.Context, *openaiv1.CompletionRequest, func(*openaiv1.Completion) error) error
}

// Serve answers body, a request for endpoint, calling send with each
// Ollama JSON object of the answer. firstToken (when > 0) bounds the wait
// for the node's first token of a chat or generate; idle, the silences of
// one folded into a single object ("stream": false).
func (b *Bridge) Serve(ctx context.Context, endpoint adapterv1.OllamaEndpoint, body []byte, firstToken, idle time.Duration, send func([]byte) error) error {
	switch endpoint {
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT:
		var req chatRequest
		if err := decode(body, &req); err != nil {
			return apierror.Invalid("", "%w", err)
		}
		return b.chat(ctx, &req, false, firstToken, idle, send)
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE:
		var req generateRequest
		if err := decode(body, &req); err != nil {
			return apierror.Invalid("", "%w", err)
		}
		return b.generate(ctx, &req, firstToken, idle, send)
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED, adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS:
		return b.embed(ctx, endpoint == adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS, body, send)
	case adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW:
		return b.show(ctx, body, send)
	}
	return apierror.Invalid("", "unsupported Ollama endpoint %s", endpoint)
}

// chat runs a chat (or a generate turned chat) and answers in the shape
// of /api/chat, or /api/generate when generate is set.
func (b *Bridge) chat(ctx context.Context, req *chatRequest, generate bool, firstToken, idle time.Duration, send func([]byte) error) error {
	oreq, err := req.openAI()
	if err != nil {
		return apierror.Invalid("", "%w", err)
	}
	w := &writer{model: req.Model, generate: generate, start: time.Now(), send: send}
	if !slices.ContainsFunc(req.Messages, func(m message) bool { return m.Role != "system" }) {
		// Nothing to answer: Ollama only loads the model and says so (the
		// ollama CLI sends this before a session). A node with its
		// models always loaded has nothing to do.
		o := w.object("", nil)
		o.Done, o.DoneReason = true, "load"
		return w.emit(o)
	}
	if req.Stream != nil && !*req.Stream {
		var cc *openaiv1.ChatCompletion
		if firstToken > 0 {
			cc, err = b.oa.ChatFolded(ctx, oreq, firstToken, idle)
		} else {
			cc, err = b.oa.Chat(ctx, oreq)
		}
		if err != nil {
			return err
		}
		return w.whole(cc)
	}
	oreq.Stream = true
	oreq.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	// The router watches the silences of a streamed answer it relays:
	// here only the first token is bounded.
	wctx, watch, stop := silence.Start(ctx, firstToken, 0)
	defer stop()
	err = b.oa.ChatStream(wctx, oreq, func(chunk *openaiv1.ChatCompletionChunk) error {
		watch.Arrived()
		return w.chunk(chunk)
	})
	if err != nil {
		return silence.NodeError(ctx, wctx, b.nodeID, firstToken, 0, err)
	}
	return w.finish()
}

// writer turns OpenAI chunks into Ollama stream objects.
type writer struct {
	model      string
	generate   bool
	start      time.Time
	firstToken time.Time
	send       func([]byte) error

	pieces int64 // chunks that carried output
	sent   int   // objects sent
	calls  []*openaiv1.ToolCall
	reason string
	usage  *openaiv1.Usage
}

type outMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Thinking is a thinking model's reasoning (the node's
	// reasoning_content), as Ollama's own thinking models send it.
	Thinking  string     `json:"thinking,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

// object is one Ollama chat or generate object; for generate, Message is
// nil and Response is written.
type object struct {
	Model              string      `json:"model"`
	CreatedAt          string      `json:"created_at"`
	Message            *outMessage `json:"message,omitempty"`
	Response           *string     `json:"response,omitempty"`
	Thinking           string      `json:"thinking,omitempty"` // generate's reasoning
	Done               bool        `json:"done"`
	DoneReason         string      `json:"done_reason,omitempty"`
	TotalDuration      int64       `json:"total_duration,omitempty"`
	LoadDuration       *int64      `json:"load_duration,omitempty"`
	PromptEvalCount    *int64      `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration *int64      `json:"prompt_eval_duration,omitempty"`
	EvalCount          *int64      `json:"eval_count,omitempty"`
	EvalDuration       *int64      `json:"eval_duration,omitempty"`
}

func (w *writer) object(text string, calls []toolCall) object {
	o := object{Model: w.model, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	if w.generate {
		o.Response = &text
	} else {
		o.Message = &outMessage{Role: "assistant", Content: text, ToolCalls: calls}
	}
	return o
}

// withThinking sets o's reasoning where Ollama puts it: the message's
// thinking for chat, the object's for generate.
func withThinking(o object, thinking string) object {
	if o.Message != nil {
		o.Message.Thinking = thinking
	} else {
		o.Thinking = thinking
	}
	return o
}

func (w *writer) emit(o object) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	w.sent++
	return w.send(b)
}

func (w *writer) chunk(c *openaiv1.ChatCompletionChunk) error {
	if c.GetUsage() != nil {
		w.usage = c.GetUsage()
	}
	for _, ch := range c.GetChoices() {
		if ch.GetIndex() != 0 {
			continue // Ollama has one answer per request
		}
		if r := ch.GetFinishReason(); r != "" {
			w.reason = r
		}
		d := ch.GetDelta()
		for _, tc := range d.GetToolCalls() {
			w.calls = mergeCall(w.calls, tc)
		}
		thinking := d.GetReasoningContent()
		if d.GetContent() == "" && thinking == "" && (w.sent == 0 || len(d.GetToolCalls()) > 0) {
			// The node answered (its first chunk, or a fragment of a tool
			// call, which Ollama sends whole at the end): an empty object
			// says so, so the router does not take the node for silent.
			if err := w.emit(w.object("", nil)); err != nil {
				return err
			}
		}
		if d.GetContent() == "" && thinking == "" && len(d.GetToolCalls()) == 0 {
			continue
		}
		if w.pieces == 0 {
			w.firstToken = time.Now()
		}
		w.pieces++
		if d.GetContent() != "" || thinking != "" {
			if err := w.emit(withThinking(w.object(d.GetContent(), nil), thinking)); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish sends the gathered tool calls (Ollama sends calls whole, not in
// fragments) and the done object.
func (w *writer) finish() error {
	if len(w.calls) > 0 && !w.generate {
		if err := w.emit(w.object("", ollamaCalls(w.calls))); err != nil {
			return err
		}
	}
	return w.emit(w.done(""))
}

func (w *writer) done(text string) object {
	o := w.object(text, nil)
	o.Done = true
	o.DoneReason = doneReason(w.reason)
	end := time.Now()
	o.TotalDuration = max(int64(end.Sub(w.start)), 1)
	zero := int64(0)
	o.LoadDuration = &zero
	first := w.firstToken
	if first.IsZero() {
		first = end
	}
	promptDur, evalDur := int64(first.Sub(w.start)), int64(end.Sub(first))
	o.PromptEvalDuration, o.EvalDuration = &promptDur, &evalDur
	prompt, eval := int64(0), w.pieces
	if u := w.usage; u != nil {
		prompt = u.GetPromptTokens()
		if u.GetCompletionTokens() > 0 {
			eval = u.GetCompletionTokens()
		}
	}
	o.PromptEvalCount, o.EvalCount = &prompt, &eval
	return o
}

// whole answers a non-streamed request: one done object with the text.
func (w *writer) whole(cc *openaiv1.ChatCompletion) error {
	var text, thinking string
	var calls []*openaiv1.ToolCall
	for _, ch := range cc.GetChoices() {
		if ch.GetIndex() == 0 {
			text = ch.GetMessage().GetContent()
			thinking = ch.GetMessage().GetReasoningContent()
			calls = ch.GetMessage().GetToolCalls()
			w.reason = ch.GetFinishReason()
		}
	}
	w.usage = cc.GetUsage()
	if text != "" || thinking != "" || len(calls) > 0 {
		w.pieces = 1
		w.firstToken = w.start
	}
	o := withThinking(w.done(text), thinking)
	if len(calls) > 0 && o.Message != nil {
		o.Message.ToolCalls = ollamaCalls(calls)
	}
	return w.emit(o)
}

// doneReason is Ollama's done_reason for an OpenAI finish_reason: a tool
// call ends with "stop" in Ollama.
func doneReason(finish string) string {
	switch finish {
	case "", "tool_calls", "function_call":
		return "stop"
	}
	return finish
}

func mergeCall(calls []*openaiv1.ToolCall, frag *openaiv1.ToolCall) []*openaiv1.ToolCall {
	for _, tc := range calls {
		if tc.GetIndex() == frag.GetIndex() {
			if frag.GetId() != "" {
				tc.Id = frag.GetId()
			}
			if n := frag.GetFunction().GetName(); n != "" {
				tc.Function.Name = n
			}
			tc.Function.Arguments += frag.GetFunction().GetArguments()
			return calls
		}
	}
	return append(calls, &openaiv1.ToolCall{Index: frag.GetIndex(), Id: frag.GetId(),
		Function: &openaiv1.FunctionCall{Name: frag.GetFunction().GetName(), Arguments: frag.GetFunction().GetArguments()}})
}

// ollamaCalls are OpenAI tool calls in Ollama's form: arguments as a JSON
// object rather than a string holding one.
func ollamaCalls(calls []*openaiv1.ToolCall) []toolCall {
	out := make([]toolCall, 0, len(calls))
	for i, c := range calls {
		var tc toolCall
		tc.ID = c.GetId()
		idx := i
		tc.Function.Index = &idx
		tc.Function.Name = c.GetFunction().GetName()
		args := []byte(c.GetFunction().GetArguments())
		if !json.Valid(args) || len(args) == 0 {
			args, _ = json.Marshal(map[string]string{"_raw": c.GetFunction().GetArguments()})
		}
		tc.Function.Arguments = args
		out = append(out, tc)
	}
	return out
}

type embedRequest struct {
	Model      string          `json:"model"`
	Input      json.RawMessage `json:"input"`
	Prompt     string          `json:"prompt"` // legacy /api/embeddings
	Dimensions *int32          `json:"dimensions"`
}

func (b *Bridge) embed(ctx context.Context, legacy bool, body []byte, send func([]byte) error) error {
	var req embedRequest
	if err := decode(body, &req); err != nil {
		return apierror.Invalid("", "%w", err)
	}
	var texts []string
	switch {
	case legacy:
		texts = []string{req.Prompt}
	case len(req.Input) == 0 || string(req.Input) == "null":
		return apierror.Invalid("", "input is required")
	default:
		var one string
		if json.Unmarshal(req.Input, &one) == nil {
			texts = []string{one}
		} else if err := json.Unmarshal(req.Input, &texts); err != nil {
			return apierror.Invalid("", "input must be a string or an array of strings")
		}
	}
	start := time.Now()
	list, err := b.oa.Embed(ctx, &openaiv1.EmbeddingRequest{Model: req.Model, Dimensions: req.Dimensions,
		Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: texts}}}})
	if err != nil {
		return err
	}
	data := slices.Clone(list.GetData())
	slices.SortFunc(data, func(a, b *openaiv1.Embedding) int { return int(a.GetIndex() - b.GetIndex()) })
	vecs := make([][]float32, len(data))
	for i, e := range data {
		vecs[i] = e.GetEmbedding()
		if vecs[i] == nil {
			vecs[i] = []float32{}
		}
	}
	var out any
	if legacy {
		var v []float32
		if len(vecs) > 0 {
			v = vecs[0]
		}
		out = struct {
			Embedding []float32 `json:"embedding"`
		}{v}
	} else {
		out = struct {
			Model           string      `json:"model"`
			Embeddings      [][]float32 `json:"embeddings"`
			TotalDuration   int64       `json:"total_duration"`
			LoadDuration    int64       `json:"load_duration"`
			PromptEvalCount int64       `json:"prompt_eval_count"`
		}{req.Model, vecs, int64(time.Since(start)), 0, list.GetUsage().GetPromptTokens()}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return apierror.BadAnswer(b.nodeID, "encode embeddings: %w", err)
	}
	return send(raw)
}

// show describes a model of a node that has no /api/show: what its model
// list says, which is that the model exists.
func (b *Bridge) show(ctx context.Context, body []byte, send func([]byte) error) error {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if err := decode(body, &req); err != nil {
		return apierror.Invalid("", "%w", err)
	}
	model := req.Model
	if model == "" {
		model = req.Name
	}
	list, err := b.oa.ListModels(ctx)
	if err != nil {
		return err
	}
	var found *openaiv1.Model
	for _, m := range list.GetData() {
		if m.GetId() == model {
			found = m
		}
	}
	if found == nil {
		return apierror.Upstream(b.nodeID, http.StatusNotFound, "model '%s' not found", apierror.Clip(model))
	}
	out := map[string]any{
		"modelfile": "", "parameters": "", "template": "",
		"details": map[string]any{"parent_model": "", "format": "", "family": "", "families": nil,
			"parameter_size": "", "quantization_level": ""},
		"model_info":   map[string]any{"general.owned_by": found.GetOwnedBy()},
		"capabilities": b.capabilities(),
	}
	if found.GetCreated() > 0 {
		out["modified_at"] = time.Unix(found.GetCreated(), 0).UTC().Format(time.RFC3339)
	}
	raw, _ := json.Marshal(out)
	return send(raw)
}

// capabilities are /api/show's capabilities of the model, from what the
// mesh knows: its type from the node's probe, and whether the node's kind
// takes OpenAI tools for every chat model. Cloud APIs do (OpenAI and the
// like behind a key, Anthropic through the Messages translation). Local
// servers are left out because tool calls there depend on how the server
// was started or on the model: vLLM needs --enable-auto-tool-choice and a
// --tool-call-parser, llama-server --jinja and a template with tools, and
// LM Studio falls back to its own prompt for models without tool support;
// a client told "tools" would get an error or a call-less answer instead.
func (b *Bridge) capabilities() []string {
	if b.modelType == nodev1.ModelType_MODEL_TYPE_EMBEDDING {
		return []string{"embedding"}
	}
	caps := []string{"completion"}
	if b.kind == nodev1.Kind_KIND_ANTHROPIC || (b.kind == nodev1.Kind_KIND_OPENAI && b.apiKey) {
		caps = append(caps, "tools")
	}
	return caps
}
