package ollamabridge

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/silence"
)

// generate answers /api/generate. A plain prompt becomes a chat, which
// the node formats with the model's template. raw (the prompt is already
// formatted) and suffix (fill in the middle) need the prompt as it is, so
// they go to the node's legacy completions API. Fields the node cannot
// honour are refused, never dropped: template (the node applies its own)
// and context (Ollama's deprecated token-id history).
func (b *Bridge) generate(ctx context.Context, req *generateRequest, firstToken, idle time.Duration, send func([]byte) error) error {
	if req.Template != "" {
		return b.unsupported("template", "they format prompts with the model's own template; send the prompt formatted, with \"raw\": true")
	}
	if hasContext(req.Context) {
		return b.unsupported("context", "it is deprecated in Ollama; send the conversation to /api/chat")
	}
	if !req.Raw && req.Suffix == "" {
		return b.chat(ctx, req.chat(), true, firstToken, idle, send)
	}
	field := "raw"
	if req.Suffix != "" {
		field = "suffix"
	}
	completer, ok := b.oa.(Completer)
	switch {
	case !ok:
		return b.unsupported(field, "their API has chat only, no prompt completions")
	case req.Suffix != "" && b.kind != nodev1.Kind_KIND_OPENAI:
		// vLLM and llama-server refuse suffix in /v1/completions (llama-server
		// serves fill-in-the-middle on its own /infill only); LM Studio does
		// not document it.
		return b.unsupported("suffix", "their /v1/completions does not take it")
	case len(req.Images) > 0:
		return b.unsupported("images with "+field, "prompt completions take text only")
	case len(req.Format) > 0 && string(req.Format) != "null" && string(req.Format) != `""`:
		return b.unsupported("format with "+field, "prompt completions have no response format")
	case req.System != "" && !req.Raw:
		return b.unsupported("system with suffix", "prompt completions have no system prompt")
	}
	// With raw, Ollama itself sends the prompt alone, without the system
	// prompt; so does the bridge.
	w := &writer{model: req.Model, generate: true, start: time.Now(), send: send}
	if req.Prompt == "" && req.Suffix == "" {
		o := w.object("", nil) // nothing to answer: Ollama only loads the model
		o.Done, o.DoneReason = true, "load"
		return w.emit(o)
	}
	creq := req.completion()
	if req.Stream != nil && !*req.Stream {
		var out *openaiv1.Completion
		var err error
		if firstToken > 0 {
			out, err = completer.CompleteFolded(ctx, creq, firstToken, idle)
		} else {
			out, err = completer.Complete(ctx, creq)
		}
		if err != nil {
			return err
		}
		return w.whole(chatCompletion(out))
	}
	creq.Stream = true
	creq.StreamOptions = &openaiv1.StreamOptions{IncludeUsage: true}
	wctx, watch, stop := silence.Start(ctx, firstToken, 0)
	defer stop()
	err := completer.CompleteStream(wctx, creq, func(c *openaiv1.Completion) error {
		watch.Arrived()
		return w.chunk(chatChunk(c))
	})
	if err != nil {
		return silence.NodeError(ctx, wctx, b.nodeID, firstToken, 0, err)
	}
	return w.finish()
}

// unsupported refuses a request field the node's kind cannot honour.
func (b *Bridge) unsupported(field, why string) error {
	return apierror.Invalid(strings.Fields(field)[0], "%s is not supported on %s nodes (node %s): %s", field, kindName(b.kind), b.nodeID, why).WithNode(b.nodeID)
}

// kindName is the kind as the node configuration spells it ("vllm").
func kindName(k nodev1.Kind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

// hasContext reports whether a generate request's context holds tokens
// (null and [] are what clients send when there is none).
func hasContext(raw json.RawMessage) bool {
	var ids []json.RawMessage
	if len(raw) == 0 || string(raw) == "null" {
		return false
	}
	return json.Unmarshal(raw, &ids) != nil || len(ids) > 0
}

// completion is the legacy completions request for a raw or suffix
// generate: the prompt as it is, with the options completions take.
func (g *generateRequest) completion() *openaiv1.CompletionRequest {
	o := g.Options
	out := &openaiv1.CompletionRequest{Model: g.Model, Prompt: []string{g.Prompt}, Suffix: g.Suffix,
		Temperature: o.Temperature, TopP: o.TopP, Seed: o.Seed, MaxTokens: o.NumPredict, Stop: o.Stop,
		PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty}
	if out.MaxTokens != nil && *out.MaxTokens <= 0 {
		out.MaxTokens = nil // Ollama's -1 and 0: no limit
	}
	return out
}

// chatChunk is a streamed completion as the chat chunk the writer takes.
func chatChunk(c *openaiv1.Completion) *openaiv1.ChatCompletionChunk {
	out := &openaiv1.ChatCompletionChunk{Usage: c.GetUsage()}
	for _, ch := range c.GetChoices() {
		text := ch.GetText()
		out.Choices = append(out.Choices, &openaiv1.ChunkChoice{Index: ch.GetIndex(),
			Delta: &openaiv1.ChunkDelta{Content: &text}, FinishReason: ch.GetFinishReason()})
	}
	return out
}

// chatCompletion is a whole completion as the chat completion the writer
// takes.
func chatCompletion(c *openaiv1.Completion) *openaiv1.ChatCompletion {
	out := &openaiv1.ChatCompletion{Usage: c.GetUsage()}
	for _, ch := range c.GetChoices() {
		text := ch.GetText()
		out.Choices = append(out.Choices, &openaiv1.ChatCompletionChoice{Index: ch.GetIndex(),
			Message: &openaiv1.ResponseMessage{Role: "assistant", Content: &text}, FinishReason: ch.GetFinishReason()})
	}
	return out
}
