package anthropic

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// DefaultMaxTokens is max_tokens when the OpenAI request sets none: the
// Messages API requires it, OpenAI's does not.
const DefaultMaxTokens = 4096

// messagesRequest is the body of POST /v1/messages.
type messagesRequest struct {
	Model         string       `json:"model"`
	MaxTokens     int32        `json:"max_tokens"`
	System        string       `json:"system,omitempty"`
	Messages      []message    `json:"messages"`
	StopSequences []string     `json:"stop_sequences,omitempty"`
	Temperature   *float64     `json:"temperature,omitempty"`
	TopP          *float64     `json:"top_p,omitempty"`
	Stream        bool         `json:"stream,omitempty"`
	Tools         []tool       `json:"tools,omitempty"`
	ToolChoice    *toolChoice  `json:"tool_choice,omitempty"`
	Metadata      *requestMeta `json:"metadata,omitempty"`
}

type requestMeta struct {
	UserID string `json:"user_id,omitempty"`
}

type message struct {
	Role    string  `json:"role"` // user | assistant
	Content []block `json:"content"`
}

// block is a content block, in requests and answers.
type block struct {
	Type string `json:"type"` // text | image | tool_use | tool_result | thinking

	Text     string `json:"text,omitempty"`
	Thinking string `json:"thinking,omitempty"` // answers only

	Source *imageSource `json:"source,omitempty"`

	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`

	ToolUseID string  `json:"tool_use_id,omitempty"`
	Content   []block `json:"content,omitempty"`
}

type imageSource struct {
	Type      string `json:"type"` // base64 | url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"` // auto | any | tool | none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// messageResponse is a whole message (POST /v1/messages without stream,
// and the skeleton in a stream's message_start).
type messageResponse struct {
	ID         string  `json:"id"`
	Model      string  `json:"model"`
	Role       string  `json:"role"`
	Content    []block `json:"content"`
	StopReason string  `json:"stop_reason"`
	Usage      usage   `json:"usage"`
}

type usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// promptTokens counts every input token, cached or not, as OpenAI's
// prompt_tokens does.
func (u usage) promptTokens() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// badRequest is a request the Messages API cannot express.
type badRequest struct{ msg, param string }

func (e *badRequest) Error() string { return e.msg }

// toMessages translates an OpenAI chat request: system and developer
// messages become the system prompt, tool results become user turns with
// tool_result blocks, assistant tool calls become tool_use blocks, and
// consecutive turns of one role are merged (the API wants them to
// alternate).
func toMessages(req *openaiv1.ChatCompletionRequest, stream bool) (*messagesRequest, error) {
	if req.N != nil && req.GetN() != 1 {
		return nil, &badRequest{"anthropic nodes answer with one choice; n must be 1", "n"}
	}
	if t := req.GetResponseFormat().GetType(); t != "" && t != "text" {
		// Quietly answering in prose would break a client that parses it.
		return nil, &badRequest{fmt.Sprintf("anthropic nodes cannot be held to response_format %q; describe the format in the prompt instead", apierror.Clip(t)), "response_format"}
	}
	out := &messagesRequest{Model: req.GetModel(), MaxTokens: DefaultMaxTokens, Stream: stream}
	sampling(req, out)
	switch {
	case req.MaxCompletionTokens != nil:
		out.MaxTokens = req.GetMaxCompletionTokens()
	case req.MaxTokens != nil:
		out.MaxTokens = req.GetMaxTokens()
	}
	if out.MaxTokens <= 0 {
		return nil, &badRequest{"max_tokens must be at least 1", "max_tokens"}
	}
	if req.GetUser() != "" {
		out.Metadata = &requestMeta{UserID: req.GetUser()}
	}
	var system []string
	for i, m := range req.GetMessages() {
		param := fmt.Sprintf("messages[%d]", i)
		var turn message
		switch m.GetRole() {
		case "system", "developer":
			if t := text(m.GetContent()); t != "" {
				system = append(system, t)
			}
			continue
		case "user":
			blocks, err := contentBlocks(m.GetContent(), param)
			if err != nil {
				return nil, err
			}
			turn = message{Role: "user", Content: blocks}
		case "assistant":
			blocks, err := contentBlocks(m.GetContent(), param)
			if err != nil {
				return nil, err
			}
			for j, tc := range m.GetToolCalls() {
				input, err := toolInput(tc.GetFunction().GetArguments())
				if err != nil {
					return nil, &badRequest{fmt.Sprintf("%s.tool_calls[%d].function.arguments: %v", param, j, err), param}
				}
				blocks = append(blocks, block{Type: "tool_use", ID: tc.GetId(), Name: tc.GetFunction().GetName(), Input: input})
			}
			turn = message{Role: "assistant", Content: blocks}
		case "tool":
			if m.GetToolCallId() == "" {
				return nil, &badRequest{param + ".tool_call_id is required for a tool message", param + ".tool_call_id"}
			}
			res := block{Type: "tool_result", ToolUseID: m.GetToolCallId()}
			if t := text(m.GetContent()); t != "" {
				res.Content = []block{{Type: "text", Text: t}}
			}
			turn = message{Role: "user", Content: []block{res}}
		default:
			return nil, &badRequest{fmt.Sprintf("%s.role %q: want system, developer, user, assistant or tool", param, apierror.Clip(m.GetRole())), param + ".role"}
		}
		if len(turn.Content) == 0 {
			continue // an empty turn is not allowed and says nothing
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == turn.Role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, turn.Content...)
			continue
		}
		out.Messages = append(out.Messages, turn)
	}
	if len(out.Messages) == 0 {
		return nil, &badRequest{"messages must hold at least one user or assistant message", "messages"}
	}
	out.System = strings.Join(system, "\n\n")
	if err := addTools(out, req); err != nil {
		return nil, err
	}
	return out, nil
}

// inputSchema is a tool's parameters as an input_schema: the client's JSON
// text with its key order kept (a model fills arguments in that order),
// and "type":"object" put first when missing — OpenAI takes {} for "no
// parameters", an input_schema must say it is an object.
func inputSchema(params string) (json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(params), &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, typed := top["type"]; typed {
		return json.RawMessage(params), nil
	}
	rest := strings.TrimSpace(strings.TrimSpace(params)[1:]) // after '{'
	if rest == "}" {
		return json.RawMessage(`{"type":"object"}`), nil
	}
	return json.RawMessage(`{"type":"object",` + rest), nil
}

// addTools translates function tools and tool_choice.
func addTools(out *messagesRequest, req *openaiv1.ChatCompletionRequest) error {
	for i, t := range req.GetTools() {
		if t.GetType() != "" && t.GetType() != "function" {
			return &badRequest{fmt.Sprintf("tools[%d].type %q: anthropic nodes take function tools only", i, apierror.Clip(t.GetType())), "tools"}
		}
		schema := json.RawMessage(`{"type":"object"}`)
		if p := t.GetFunction().GetParametersJson(); p != "" {
			var err error
			if schema, err = inputSchema(p); err != nil {
				return &badRequest{fmt.Sprintf("tools[%d].function.parameters: %v", i, err), "tools"}
			}
		}
		out.Tools = append(out.Tools, tool{Name: t.GetFunction().GetName(), Description: t.GetFunction().GetDescription(), InputSchema: schema})
	}
	tc := req.GetToolChoice()
	switch {
	case tc.GetFunctionName() != "":
		out.ToolChoice = &toolChoice{Type: "tool", Name: tc.GetFunctionName()}
	case tc.GetMode() == "required":
		out.ToolChoice = &toolChoice{Type: "any"}
	case tc.GetMode() == "none":
		out.ToolChoice = &toolChoice{Type: "none"}
	case tc.GetMode() == "auto" || (len(out.Tools) > 0 && req.ParallelToolCalls != nil):
		out.ToolChoice = &toolChoice{Type: "auto"}
	case tc.GetMode() != "":
		return &badRequest{fmt.Sprintf("tool_choice %q: want auto, required, none or a function", apierror.Clip(tc.GetMode())), "tool_choice"}
	}
	if out.ToolChoice != nil && req.ParallelToolCalls != nil && !req.GetParallelToolCalls() && out.ToolChoice.Type != "none" {
		out.ToolChoice.DisableParallelToolUse = true
	}
	return nil
}

// text is a message's text: the string, or its text parts joined.
func text(c *openaiv1.MessageContent) string {
	if c.GetParts() == nil {
		return c.GetText()
	}
	var parts []string
	for _, p := range c.GetParts().GetParts() {
		if p.GetType() == "text" {
			parts = append(parts, p.GetText())
		}
	}
	return strings.Join(parts, "\n")
}

// sampling translates what OpenAI accepts and the Messages API refuses:
// temperature runs 0–2 there and 0–1 here (clamped); newer Claude models
// take temperature or top_p, not both (temperature wins); a stop sequence
// of white space only is refused (dropped).
func sampling(req *openaiv1.ChatCompletionRequest, out *messagesRequest) {
	if t := req.Temperature; t != nil {
		out.Temperature = proto.Float64(min(max(*t, 0), 1))
	} else {
		out.TopP = req.TopP
	}
	for _, s := range req.GetStop() {
		if strings.TrimSpace(s) != "" {
			out.StopSequences = append(out.StopSequences, s)
		}
	}
}

// contentBlocks translates a user or assistant message's content. Text
// of white space only is left out: the Messages API refuses such blocks.
func contentBlocks(c *openaiv1.MessageContent, param string) ([]block, error) {
	if c.GetParts() == nil {
		if strings.TrimSpace(c.GetText()) == "" {
			return nil, nil
		}
		return []block{{Type: "text", Text: c.GetText()}}, nil
	}
	var out []block
	for i, p := range c.GetParts().GetParts() {
		switch p.GetType() {
		case "text":
			if strings.TrimSpace(p.GetText()) != "" {
				out = append(out, block{Type: "text", Text: p.GetText()})
			}
		case "image_url":
			src, err := imageFrom(p.GetImageUrl().GetUrl())
			if err != nil {
				return nil, &badRequest{fmt.Sprintf("%s.content[%d].image_url: %v", param, i, err), param}
			}
			out = append(out, block{Type: "image", Source: src})
		default:
			return nil, &badRequest{fmt.Sprintf("%s.content[%d].type %q: anthropic nodes take text and image_url parts", param, i, apierror.Clip(p.GetType())), param}
		}
	}
	return out, nil
}

// imageFrom is an image source from an OpenAI image URL: a base64 data
// URL or an http(s) URL.
func imageFrom(u string) (*imageSource, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, fmt.Errorf("a data URL must be data:<media type>;base64,<data>")
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return nil, fmt.Errorf("invalid base64 data")
		}
		return &imageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &imageSource{Type: "url", URL: u}, nil
	}
	return nil, fmt.Errorf("url must be an http(s) or data URL")
}

// toolInput is a tool call's arguments as the JSON object tool_use wants.
func toolInput(args string) (json.RawMessage, error) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage(`{}`), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return json.RawMessage(args), nil
}

// finishReason is OpenAI's finish_reason for a stop_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	case "":
		return ""
	default: // end_turn, stop_sequence, pause_turn
		return "stop"
	}
}

// toCompletion translates a whole message.
func toCompletion(m *messageResponse, created time.Time) *openaiv1.ChatCompletion {
	msg := &openaiv1.ResponseMessage{Role: "assistant"}
	var texts, thoughts []string
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "thinking":
			thoughts = append(thoughts, b.Thinking)
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			msg.ToolCalls = append(msg.ToolCalls, &openaiv1.ToolCall{
				Index: int32(len(msg.ToolCalls)), Id: b.ID, Type: "function",
				Function: &openaiv1.FunctionCall{Name: b.Name, Arguments: args},
			})
		}
	}
	if len(texts) > 0 || len(msg.ToolCalls) == 0 {
		t := strings.Join(texts, "")
		msg.Content = &t
	}
	if len(thoughts) > 0 {
		t := strings.Join(thoughts, "")
		msg.ReasoningContent = &t
	}
	return &openaiv1.ChatCompletion{
		Id: m.ID, Object: "chat.completion", Created: created.Unix(), Model: m.Model,
		Choices: []*openaiv1.ChatCompletionChoice{{Index: 0, Message: msg, FinishReason: finishReason(m.StopReason)}},
		Usage:   toUsage(m.Usage),
	}
}

func toUsage(u usage) *openaiv1.Usage {
	p := u.promptTokens()
	out := &openaiv1.Usage{PromptTokens: p, CompletionTokens: u.OutputTokens, TotalTokens: p + u.OutputTokens}
	if u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &openaiv1.PromptTokensDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return out
}
