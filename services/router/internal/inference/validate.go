package inference

import (
	"fmt"
	"regexp"
	"strconv"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// OpenAI's limits, checked here so that a request a node would run with
// values OpenAI refuses gets the same 400 OpenAI gives, whichever node
// would have answered.
const (
	maxStop        = 4    // stop sequences
	maxTopLogprobs = 20   // chat top_logprobs
	maxLogprobs    = 5    // legacy completions logprobs
	maxBestOf      = 20   // legacy completions best_of
	maxTools       = 128  // tools in one request
	maxInputs      = 2048 // embedding inputs in one request
	maxLogitBias   = 100  // |bias| of a logit_bias entry
)

// namePattern is what OpenAI allows as a function or json_schema name.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// partsByRole are the content part types each role may send; only a user
// sends images and audio.
var textOnly = map[string]bool{"text": true}

var partsByRole = map[string]map[string]bool{
	"system": textOnly, "developer": textOnly, "assistant": textOnly, "tool": textOnly,
	"user": partTypes,
}

// validateMessage checks one message as OpenAI does: system, developer,
// user and tool messages have content (a string, or a non-empty array of
// the parts their role may send); an assistant message has content,
// tool_calls or a refusal; tool_calls are an assistant's, each a named
// function call with an id; a tool message answers a call by its
// tool_call_id.
func validateMessage(i int, m *openaiv1.ChatMessage) error {
	at := func(field string) string { return fmt.Sprintf("messages[%d].%s", i, field) }
	role := m.GetRole()
	content := m.GetContent()
	if content.GetKind() == nil {
		content = nil // a oneof with nothing set (native gRPC) is no content
	}
	if parts, ok := content.GetKind().(*openaiv1.MessageContent_Parts); ok {
		list := parts.Parts.GetParts()
		if len(list) == 0 {
			return apierror.Invalid(at("content"), "content must be a string or a non-empty array of content parts, not an empty array")
		}
		for j, p := range list {
			if err := validatePart(fmt.Sprintf("messages[%d].content[%d]", i, j), role, p); err != nil {
				return err
			}
		}
	}
	switch role {
	case "assistant":
		if content == nil && len(m.GetToolCalls()) == 0 && m.GetRefusal() == "" {
			return apierror.Invalid(at("content"), "an assistant message needs content unless it has tool_calls")
		}
		for j, tc := range m.GetToolCalls() {
			p := func(field string) string { return fmt.Sprintf("messages[%d].tool_calls[%d].%s", i, j, field) }
			switch {
			case tc.GetId() == "":
				return apierror.Invalid(p("id"), "a tool call needs an id")
			case tc.GetType() != "function":
				return apierror.Invalid(p("type"), "tool call type must be \"function\", not %q", apierror.Clip(tc.GetType()))
			case tc.GetFunction().GetName() == "":
				return apierror.Invalid(p("function.name"), "a tool call needs a function name")
			}
		}
		return nil
	case "tool":
		if m.GetToolCallId() == "" {
			return apierror.Invalid(at("tool_call_id"), "a tool message needs the tool_call_id of the call it answers")
		}
	}
	if len(m.GetToolCalls()) > 0 {
		return apierror.Invalid(at("tool_calls"), "only an assistant message has tool_calls, not a %s message", role)
	}
	if content == nil {
		return apierror.Invalid(at("content"), "a %s message needs content (a string or an array of content parts), not null", role)
	}
	return nil
}

// validatePart checks a content part's payload and that the role may send
// its type.
func validatePart(at, role string, p *openaiv1.ContentPart) error {
	if !partsByRole[role][p.GetType()] {
		return apierror.Invalid(at+".type", "a %s message may send text parts only, not %q", role, apierror.Clip(p.GetType()))
	}
	switch p.GetType() {
	case "image_url":
		if p.GetImageUrl().GetUrl() == "" {
			return apierror.Invalid(at+".image_url.url", "an image_url part needs image_url.url")
		}
		switch d := p.GetImageUrl().GetDetail(); d {
		case "", "auto", "low", "high":
		default:
			return apierror.Invalid(at+".image_url.detail", "image_url.detail must be auto, low or high, not %q", apierror.Clip(d))
		}
	case "input_audio":
		a := p.GetInputAudio()
		if a.GetData() == "" {
			return apierror.Invalid(at+".input_audio.data", "an input_audio part needs input_audio.data")
		}
		switch a.GetFormat() {
		case "wav", "mp3":
		default:
			return apierror.Invalid(at+".input_audio.format", "input_audio.format must be wav or mp3, not %q", apierror.Clip(a.GetFormat()))
		}
	}
	return nil
}

// validateChatOptions checks the chat request's other fields against
// OpenAI's rules.
func validateChatOptions(req *openaiv1.ChatCompletionRequest) error {
	if err := validateStopAndBias(req.GetStop(), req.GetLogitBias()); err != nil {
		return err
	}
	if req.TopLogprobs != nil {
		switch {
		case req.GetTopLogprobs() < 0 || req.GetTopLogprobs() > maxTopLogprobs:
			return apierror.Invalid("top_logprobs", "top_logprobs must be between 0 and %d", maxTopLogprobs)
		case !req.GetLogprobs():
			return apierror.Invalid("top_logprobs", "top_logprobs needs logprobs: true")
		}
	}
	if len(req.GetTools()) > maxTools {
		return apierror.Invalid("tools", "at most %d tools, not %d", maxTools, len(req.GetTools()))
	}
	for i, t := range req.GetTools() {
		switch {
		case t.GetType() != "function":
			return apierror.Invalid(fmt.Sprintf("tools[%d].type", i), "tool type must be \"function\", not %q", apierror.Clip(t.GetType()))
		case !namePattern.MatchString(t.GetFunction().GetName()):
			return apierror.Invalid(fmt.Sprintf("tools[%d].function.name", i), "a function name is 1 to 64 letters, digits, _ or -, not %q", apierror.Clip(t.GetFunction().GetName()))
		}
	}
	if req.ParallelToolCalls != nil && len(req.GetTools()) == 0 {
		return apierror.Invalid("parallel_tool_calls", "parallel_tool_calls is only allowed when tools are specified")
	}
	if rf := req.GetResponseFormat(); rf != nil {
		switch rf.GetType() {
		case "text", "json_object":
		case "json_schema":
			if rf.GetJsonSchema() == nil {
				return apierror.Invalid("response_format.json_schema", "response_format of type json_schema needs json_schema")
			}
			if name := rf.GetJsonSchema().GetName(); !namePattern.MatchString(name) {
				return apierror.Invalid("response_format.json_schema.name", "a json_schema name is 1 to 64 letters, digits, _ or -, not %q", apierror.Clip(name))
			}
		default:
			return apierror.Invalid("response_format.type", "response_format.type must be text, json_object or json_schema, not %q", apierror.Clip(rf.GetType()))
		}
	}
	return nil
}

// validateCompletionOptions checks a legacy completion request's other
// fields against OpenAI's rules.
func validateCompletionOptions(req *openaiv1.CompletionRequest, streamed bool) error {
	if err := validateStopAndBias(req.GetStop(), req.GetLogitBias()); err != nil {
		return err
	}
	if req.Logprobs != nil && (req.GetLogprobs() < 0 || req.GetLogprobs() > maxLogprobs) {
		return apierror.Invalid("logprobs", "logprobs must be between 0 and %d", maxLogprobs)
	}
	if req.BestOf != nil {
		n := int32(1)
		if req.N != nil {
			n = req.GetN()
		}
		switch {
		case req.GetBestOf() < 1 || req.GetBestOf() > maxBestOf:
			return apierror.Invalid("best_of", "best_of must be between 1 and %d", maxBestOf)
		case req.GetBestOf() < n:
			return apierror.Invalid("best_of", "best_of must be at least n (%d)", n)
		case streamed && req.GetBestOf() > 1:
			return apierror.Invalid("best_of", "a streamed completion cannot use best_of greater than 1")
		}
	}
	return nil
}

// validateStopAndBias checks what chat and legacy completions share: at
// most four stop sequences, and logit_bias keyed by token ids with biases
// from -100 to 100.
func validateStopAndBias(stop []string, bias map[string]float64) error {
	if len(stop) > maxStop {
		return apierror.Invalid("stop", "at most %d stop sequences, not %d", maxStop, len(stop))
	}
	for k, v := range bias {
		if id, err := strconv.ParseUint(k, 10, 63); err != nil || strconv.FormatUint(id, 10) != k {
			return apierror.Invalid("logit_bias", "logit_bias keys are token ids, not %q", apierror.Clip(k))
		}
		if v < -maxLogitBias || v > maxLogitBias || v != v {
			return apierror.Invalid("logit_bias", "logit_bias values must be between -%d and %d", maxLogitBias, maxLogitBias)
		}
	}
	return nil
}
