// Package ollamabridge serves Ollama's native API on nodes that only speak
// the OpenAI-compatible one (vLLM, llama.cpp, LM Studio, OpenAI): it turns
// an /api/chat, /api/generate, /api/embed, /api/embeddings or /api/show
// request into the OpenAI request, and the OpenAI answer (streamed chunk by
// chunk) into Ollama's objects. Ollama nodes never come here: they get the
// request as it came (package ollama).
package ollamabridge

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
)

// options are the Ollama model options an OpenAI request can carry.
type options struct {
	Temperature      *float64 `json:"temperature"`
	TopP             *float64 `json:"top_p"`
	Seed             *int64   `json:"seed"`
	NumPredict       *int32   `json:"num_predict"`
	Stop             []string `json:"stop"`
	PresencePenalty  *float64 `json:"presence_penalty"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
}

type toolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     *int            `json:"index,omitempty"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking,omitempty"`
	Images     []string   `json:"images,omitempty"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolName   string     `json:"tool_name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// chatRequest is Ollama's /api/chat body (and what /api/generate becomes).
type chatRequest struct {
	Model    string          `json:"model"`
	Messages []message       `json:"messages"`
	Tools    []tool          `json:"tools"`
	Format   json.RawMessage `json:"format"`
	Options  options         `json:"options"`
	Stream   *bool           `json:"stream"`
}

// generateRequest is Ollama's /api/generate body.
type generateRequest struct {
	Model   string          `json:"model"`
	Prompt  string          `json:"prompt"`
	Suffix  string          `json:"suffix"`
	System  string          `json:"system"`
	Images  []string        `json:"images"`
	Format  json.RawMessage `json:"format"`
	Options options         `json:"options"`
	Stream  *bool           `json:"stream"`
	// Raw sends the prompt as it is, already formatted for the model.
	Raw bool `json:"raw"`
	// Template and Context are refused (see generate); they are read to
	// know that they were sent.
	Template string          `json:"template"`
	Context  json.RawMessage `json:"context"`
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

// chat converts an Ollama chat request to OpenAI's.
func (r *chatRequest) openAI() (*openaiv1.ChatCompletionRequest, error) {
	out := &openaiv1.ChatCompletionRequest{
		Model: r.Model, Temperature: r.Options.Temperature, TopP: r.Options.TopP, Seed: r.Options.Seed,
		MaxTokens: r.Options.NumPredict, Stop: r.Options.Stop,
		PresencePenalty: r.Options.PresencePenalty, FrequencyPenalty: r.Options.FrequencyPenalty,
	}
	if out.MaxTokens != nil && *out.MaxTokens <= 0 {
		out.MaxTokens = nil // Ollama's -1 and 0: no limit
	}
	var pending []*openaiv1.ToolCall // calls of the last assistant message not yet answered
	for i, m := range r.Messages {
		om := &openaiv1.ChatMessage{Role: m.Role, Name: m.ToolName}
		if len(m.Images) == 0 {
			om.Content = &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: m.Content}}
		} else {
			parts := []*openaiv1.ContentPart{{Type: "text", Text: m.Content}}
			for _, img := range m.Images {
				parts = append(parts, &openaiv1.ContentPart{Type: "image_url", ImageUrl: &openaiv1.ImageURL{Url: "data:" + imageType(img) + ";base64," + img}})
			}
			om.Content = &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{Parts: &openaiv1.ContentParts{Parts: parts}}}
		}
		for j, tc := range m.ToolCalls {
			args := string(tc.Function.Arguments)
			if args == "" || args == "null" {
				args = "{}"
			}
			id := tc.ID
			if id == "" {
				id = fmt.Sprintf("call_%d_%d", i, j)
			}
			om.ToolCalls = append(om.ToolCalls, &openaiv1.ToolCall{Id: id, Type: "function",
				Function: &openaiv1.FunctionCall{Name: tc.Function.Name, Arguments: args}})
		}
		switch {
		case m.Role == "tool" && m.ToolCallID != "":
			om.ToolCallId = m.ToolCallID
			pending = slices.DeleteFunc(pending, func(tc *openaiv1.ToolCall) bool { return tc.GetId() == m.ToolCallID })
		case m.Role == "tool":
			var ok bool
			if om.ToolCallId, pending, ok = answer(pending, m.ToolName); !ok {
				return nil, fmt.Errorf("messages[%d]: a tool result (tool_name %q) must answer a call of the assistant message before it (or name it in tool_call_id)", i, apierror.Clip(m.ToolName))
			}
		case len(om.ToolCalls) > 0:
			pending = slices.Clone(om.ToolCalls)
		}
		out.Messages = append(out.Messages, om)
	}
	for i, t := range r.Tools {
		var params string
		if len(t.Function.Parameters) > 0 && string(t.Function.Parameters) != "null" {
			var err error
			if params, err = openaijson.JSONObject(t.Function.Parameters); err != nil {
				return nil, fmt.Errorf("tools[%d].function.parameters must be a JSON Schema object: %w", i, err)
			}
		}
		typ := t.Type
		if typ == "" {
			typ = "function"
		}
		out.Tools = append(out.Tools, &openaiv1.Tool{Type: typ, Function: &openaiv1.FunctionDefinition{
			Name: t.Function.Name, Description: t.Function.Description, ParametersJson: params}})
	}
	rf, err := responseFormat(r.Format)
	if err != nil {
		return nil, err
	}
	out.ResponseFormat = rf
	return out, nil
}

// imageType is the media type of a base64 image as Ollama takes them (any
// format, no type given): what its first bytes say, PNG when they say
// nothing known. Some APIs check the type against the bytes.
func imageType(b64 string) string {
	head, _ := base64.StdEncoding.DecodeString(b64[:min(len(b64), 64)&^3])
	if t := http.DetectContentType(head); strings.HasPrefix(t, "image/") {
		return t
	}
	return "image/png"
}

// answer matches a tool result to the earliest unanswered call of the
// named tool (any tool when name is empty), so each result gets its own
// call's id — OpenAI-compatible servers require it. It returns the id and
// the calls still unanswered.
func answer(pending []*openaiv1.ToolCall, name string) (string, []*openaiv1.ToolCall, bool) {
	for i, tc := range pending {
		if name == "" || tc.GetFunction().GetName() == name {
			return tc.GetId(), slices.Delete(slices.Clone(pending), i, i+1), true
		}
	}
	return "", pending, false
}

// responseFormat maps Ollama's format ("json" or a JSON schema) to
// OpenAI's response_format.
func responseFormat(raw json.RawMessage) (*openaiv1.ResponseFormat, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "json" {
			return nil, fmt.Errorf("format must be \"json\" or a JSON schema, not %q", apierror.Clip(s))
		}
		return &openaiv1.ResponseFormat{Type: "json_object"}, nil
	}
	// The schema's text goes on as it is: its key order is the order the
	// model writes the answer's fields in.
	schema, err := openaijson.JSONObject(raw)
	if err != nil {
		return nil, fmt.Errorf("format must be \"json\" or a JSON schema object")
	}
	return &openaiv1.ResponseFormat{Type: "json_schema", JsonSchema: &openaiv1.JSONSchema{Name: "format", SchemaJson: schema}}, nil
}

// chat is what a generate request asks, as a chat: the system prompt and
// the prompt (with its images) as one user message.
func (g *generateRequest) chat() *chatRequest {
	c := &chatRequest{Model: g.Model, Format: g.Format, Options: g.Options, Stream: g.Stream}
	if g.System != "" {
		c.Messages = append(c.Messages, message{Role: "system", Content: g.System})
	}
	if g.Prompt != "" || len(g.Images) > 0 {
		c.Messages = append(c.Messages, message{Role: "user", Content: g.Prompt, Images: g.Images})
	}
	return c
}
