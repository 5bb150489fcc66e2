package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/sse"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// streamEvent is any event of a Messages stream; which fields are set
// depends on its type.
type streamEvent struct {
	Type         string           `json:"type"`
	Message      *messageResponse `json:"message"`       // message_start
	Index        int              `json:"index"`         // content_block_*
	ContentBlock *block           `json:"content_block"` // content_block_start
	Delta        *struct {
		Type        string `json:"type"`         // text_delta | input_json_delta | thinking_delta | …
		Text        string `json:"text"`         // text_delta
		Thinking    string `json:"thinking"`     // thinking_delta
		PartialJSON string `json:"partial_json"` // input_json_delta
		StopReason  string `json:"stop_reason"`  // message_delta
	} `json:"delta"`
	Usage *usage `json:"usage"` // message_delta (cumulative output tokens)
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// ChatStream sends a streamed chat and calls send with each
// chat.completion.chunk translated from the Messages events as they
// arrive: message_start → the role chunk, text deltas → content, thinking
// blocks and deltas → reasoning_content, tool_use
// blocks and their input_json deltas → tool_calls deltas, message_delta →
// the finish chunk, message_stop → the usage chunk (when the request's
// stream_options ask for it). It returns nil after message_stop.
func (c *Client) ChatStream(ctx context.Context, req *openaiv1.ChatCompletionRequest, send func(*openaiv1.ChatCompletionChunk) error) error {
	body, err := c.translate(req, true)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, MessagesPath, nil, body, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return apierror.BadAnswer(c.conn.NodeID(), "the node answered a stream with %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	t := &translator{created: c.now().Unix(), includeUsage: req.GetStreamOptions().GetIncludeUsage(), tools: map[int]int32{}, argued: map[int]bool{}}
	events := sse.NewReader(resp.Body)
	for {
		ev, err := events.Next()
		switch {
		case errors.Is(err, io.EOF):
			return c.conn.BrokenOff(ctx, "the stream ended before message_stop")
		case errors.Is(err, sse.ErrTooLarge):
			return c.broken(ctx, err.Error())
		case err != nil:
			return c.conn.BodyError(ctx, err)
		}
		if len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		var se streamEvent
		if err := json.Unmarshal(ev.Data, &se); err != nil {
			return apierror.BadAnswer(c.conn.NodeID(), "the node sent an invalid %s event: %w", ev.Type, err)
		}
		if se.Type == "error" || ev.Type == "error" {
			if se.Error == nil {
				return c.eventError("", "")
			}
			return c.eventError(se.Error.Type, se.Error.Message)
		}
		chunks, done := t.translate(&se)
		for _, ch := range chunks {
			if err := send(ch); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

func (c *Client) broken(ctx context.Context, why string) error {
	if err := ctx.Err(); err != nil {
		return c.conn.BodyError(ctx, err)
	}
	return apierror.Unavailable(c.conn.NodeID(), "%s", why)
}

// translator turns one stream's events into chunks.
type translator struct {
	id, model    string
	created      int64
	includeUsage bool
	usage        usage
	tools        map[int]int32 // content block index → tool call index
	argued       map[int]bool  // tool blocks that sent arguments
}

func (t *translator) chunk(delta *openaiv1.ChunkDelta, finish string) *openaiv1.ChatCompletionChunk {
	return &openaiv1.ChatCompletionChunk{Id: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model,
		Choices: []*openaiv1.ChunkChoice{{Index: 0, Delta: delta, FinishReason: finish}}}
}

// translate is the chunks one event makes, and whether the stream is done.
func (t *translator) translate(se *streamEvent) ([]*openaiv1.ChatCompletionChunk, bool) {
	switch se.Type {
	case "message_start":
		if m := se.Message; m != nil {
			t.id, t.model, t.usage = m.ID, m.Model, m.Usage
		}
		empty := ""
		return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{Role: "assistant", Content: &empty}, "")}, false
	case "content_block_start":
		b := se.ContentBlock
		switch {
		case b == nil:
		case b.Type == "text" && b.Text != "":
			text := b.Text
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{Content: &text}, "")}, false
		case b.Type == "thinking" && b.Thinking != "":
			text := b.Thinking
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{ReasoningContent: &text}, "")}, false
		case b.Type == "tool_use":
			idx := int32(len(t.tools))
			t.tools[se.Index] = idx
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{
				Index: idx, Id: b.ID, Type: "function", Function: &openaiv1.FunctionCall{Name: b.Name},
			}}}, "")}, false
		}
	case "content_block_delta":
		d := se.Delta
		switch {
		case d == nil:
		case d.Type == "text_delta" && d.Text != "":
			text := d.Text
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{Content: &text}, "")}, false
		case d.Type == "thinking_delta" && d.Thinking != "":
			text := d.Thinking
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{ReasoningContent: &text}, "")}, false
		case d.Type == "input_json_delta" && d.PartialJSON != "":
			idx, ok := t.tools[se.Index]
			if !ok {
				return nil, false
			}
			t.argued[se.Index] = true
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{
				Index: idx, Function: &openaiv1.FunctionCall{Arguments: d.PartialJSON},
			}}}, "")}, false
		}
	case "content_block_stop":
		// A tool without parameters streams no argument at all, where
		// OpenAI's clients expect JSON: an empty object.
		if idx, ok := t.tools[se.Index]; ok && !t.argued[se.Index] {
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{ToolCalls: []*openaiv1.ToolCall{{
				Index: idx, Function: &openaiv1.FunctionCall{Arguments: "{}"},
			}}}, "")}, false
		}
	case "message_delta":
		if se.Usage != nil {
			t.usage.OutputTokens = se.Usage.OutputTokens
			if se.Usage.InputTokens > 0 {
				t.usage.InputTokens = se.Usage.InputTokens
			}
		}
		if se.Delta != nil && se.Delta.StopReason != "" {
			return []*openaiv1.ChatCompletionChunk{t.chunk(&openaiv1.ChunkDelta{}, finishReason(se.Delta.StopReason))}, false
		}
	case "message_stop":
		if !t.includeUsage {
			return nil, true
		}
		return []*openaiv1.ChatCompletionChunk{{Id: t.id, Object: "chat.completion.chunk", Created: t.created, Model: t.model,
			Choices: []*openaiv1.ChunkChoice{}, Usage: toUsage(t.usage)}}, true
	}
	// ping, signature deltas, redacted thinking and unknown events carry
	// nothing an OpenAI client reads.
	return nil, false
}
