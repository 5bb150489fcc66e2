package openaijson

import (
	"slices"
	"strconv"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// Decoding: the router reads a client's request body.

func (d *decoder) chatRequest(m *openaiv1.ChatCompletionRequest) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "model":
			m.Model, err = d.str()
		case "messages":
			m.Messages, err = objects(d, (*decoder).chatMessage)
		case "stream":
			m.Stream, err = d.boolean()
		case "stream_options":
			m.StreamOptions, err = object(d, (*decoder).streamOptions)
		case "max_tokens":
			m.MaxTokens, err = d.optI32()
		case "max_completion_tokens":
			m.MaxCompletionTokens, err = d.optI32()
		case "temperature":
			m.Temperature, err = d.optF64()
		case "top_p":
			m.TopP, err = d.optF64()
		case "n":
			m.N, err = d.optI32()
		case "stop":
			m.Stop, err = d.stop()
		case "seed":
			m.Seed, err = d.optI64()
		case "presence_penalty":
			m.PresencePenalty, err = d.optF64()
		case "frequency_penalty":
			m.FrequencyPenalty, err = d.optF64()
		case "response_format":
			m.ResponseFormat, err = object(d, (*decoder).responseFormat)
		case "tools":
			m.Tools, err = objects(d, (*decoder).tool)
		case "tool_choice":
			m.ToolChoice, err = d.toolChoice()
		case "user":
			m.User, err = d.str()
		case "logprobs":
			m.Logprobs, err = d.optBool()
		case "top_logprobs":
			m.TopLogprobs, err = d.optI32()
		case "logit_bias":
			m.LogitBias, err = d.logitBias()
		case "parallel_tool_calls":
			m.ParallelToolCalls, err = d.optBool()
		case "reasoning_effort":
			m.ReasoningEffort, err = d.str()
		case "functions", "function_call":
			err = d.deprecatedFunctions(key)
		default:
			err = d.skip(0)
		}
		return err
	})
}

// deprecatedFunctions refuses OpenAI's deprecated function-calling fields
// (a request's functions and function_call, a message's function_call)
// unless null. Skipping them would answer a prompt without the functions
// it offered, and mapping them to tools would answer with tool_calls,
// which the clients still sending them do not read.
func (d *decoder) deprecatedFunctions(key []byte) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	if err := d.skip(0); err != nil {
		return err // malformed JSON is reported as such
	}
	return &DecodeError{Msg: "the deprecated " + string(key) + " parameter is not supported; use tools, tool_choice and tool_calls instead"}
}

func (d *decoder) streamOptions(m *openaiv1.StreamOptions) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "include_usage":
			m.IncludeUsage, err = d.boolean()
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) chatMessage(m *openaiv1.ChatMessage) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "role":
			m.Role, err = d.str()
		case "content":
			m.Content, err = d.messageContent()
		case "name":
			m.Name, err = d.str()
		case "tool_calls":
			m.ToolCalls, err = objects(d, (*decoder).toolCall)
		case "tool_call_id":
			m.ToolCallId, err = d.str()
		case "refusal":
			m.Refusal, err = d.str()
		case "function_call":
			err = d.deprecatedFunctions(key)
		default:
			err = d.skip(0)
		}
		return err
	})
}

// messageContent decodes a message's content: a string, an array of parts,
// or null (nil).
func (d *decoder) messageContent() (*openaiv1.MessageContent, error) {
	switch d.next() {
	case '"':
		s, err := d.str()
		return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Text{Text: s}}, err
	case '[':
		parts, err := objects(d, (*decoder).contentPart)
		if err != nil {
			return nil, err
		}
		return &openaiv1.MessageContent{Kind: &openaiv1.MessageContent_Parts{
			Parts: &openaiv1.ContentParts{Parts: parts},
		}}, nil
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, d.typeErr("a string or an array")
	}
}

// contentPart decodes one element of an array content. Part types the data
// model cannot carry are rejected rather than dropped, so a client never
// gets an answer to a prompt it did not send.
func (d *decoder) contentPart(p *openaiv1.ContentPart) error {
	err := d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "type":
			p.Type, err = d.str()
		case "text":
			p.Text, err = d.str()
		case "image_url":
			p.ImageUrl, err = d.imageURL()
		case "input_audio":
			p.InputAudio, err = object(d, (*decoder).inputAudio)
		default:
			err = d.skip(0)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch p.Type {
	case "text", "image_url", "input_audio":
		return nil
	}
	return &DecodeError{Param: "type", Msg: "unsupported content part type " + strconv.Quote(apierror.Clip(p.Type))}
}

// imageURL decodes an image_url payload: OpenAI's {"url","detail"} object,
// or a bare URL string as some clients send it.
func (d *decoder) imageURL() (*openaiv1.ImageURL, error) {
	if d.next() == '"' {
		url, err := d.str()
		return &openaiv1.ImageURL{Url: url}, err
	}
	return object(d, func(d *decoder, m *openaiv1.ImageURL) error {
		return d.fields(func(key []byte) (err error) {
			switch string(key) {
			case "url":
				m.Url, err = d.str()
			case "detail":
				m.Detail, err = d.str()
			default:
				err = d.skip(0)
			}
			return err
		})
	})
}

func (d *decoder) inputAudio(m *openaiv1.InputAudio) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "data":
			m.Data, err = d.str()
		case "format":
			m.Format, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// stop decodes a string (one stop sequence) or an array of strings.
func (d *decoder) stop() ([]string, error) {
	switch d.next() {
	case '"':
		s, err := d.str()
		return []string{s}, err
	case '[':
		return scalars(d, (*decoder).str)
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, d.typeErr("a string or an array")
	}
}

func (d *decoder) responseFormat(m *openaiv1.ResponseFormat) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "type":
			m.Type, err = d.str()
		case "json_schema":
			m.JsonSchema, err = object(d, (*decoder).jsonSchema)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) jsonSchema(m *openaiv1.JSONSchema) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "name":
			m.Name, err = d.str()
		case "description":
			m.Description, err = d.str()
		case "schema":
			m.SchemaJson, err = d.rawObject()
		case "strict":
			m.Strict, err = d.optBool()
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) tool(m *openaiv1.Tool) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "type":
			m.Type, err = d.str()
		case "function":
			m.Function, err = object(d, (*decoder).functionDefinition)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) functionDefinition(m *openaiv1.FunctionDefinition) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "name":
			m.Name, err = d.str()
		case "description":
			m.Description, err = d.str()
		case "parameters":
			m.ParametersJson, err = d.rawObject()
		case "strict":
			m.Strict, err = d.optBool()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// toolChoice decodes a mode string ("none", "auto", "required") or
// {"type":"function","function":{"name":X}}.
func (d *decoder) toolChoice() (*openaiv1.ToolChoice, error) {
	switch d.next() {
	case '"':
		mode, err := d.str()
		return &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_Mode{Mode: mode}}, err
	case '{':
		var typ, name string
		err := d.fields(func(key []byte) (err error) {
			switch string(key) {
			case "type":
				typ, err = d.str()
			case "function":
				err = d.fields(func(key []byte) (err error) {
					if string(key) == "name" {
						name, err = d.str()
					} else {
						err = d.skip(0)
					}
					return err
				})
			default:
				err = d.skip(0)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if typ != "function" {
			return nil, &DecodeError{Param: "type", Msg: "unsupported tool_choice type " + strconv.Quote(apierror.Clip(typ))}
		}
		return &openaiv1.ToolChoice{Kind: &openaiv1.ToolChoice_FunctionName{FunctionName: name}}, nil
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, d.typeErr("a string or an object")
	}
}

// logitBias decodes {"token id": bias}.
func (d *decoder) logitBias() (map[string]float64, error) {
	var m map[string]float64
	err := d.fields(func(key []byte) error {
		v, err := d.f64()
		if err != nil {
			return err
		}
		if m == nil {
			m = make(map[string]float64)
		}
		m[string(key)] = v
		return nil
	})
	return m, err
}

// toolCall decodes a tool call of a message. Only chunk deltas carry
// "index", so it is ignored here: the encoder does not write it back.
func (d *decoder) toolCall(m *openaiv1.ToolCall) error { return d.toolCallFields(m, false) }

// chunkToolCall decodes a tool call of a chunk delta, index included.
func (d *decoder) chunkToolCall(m *openaiv1.ToolCall) error { return d.toolCallFields(m, true) }

func (d *decoder) toolCallFields(m *openaiv1.ToolCall, indexed bool) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "index":
			if indexed {
				m.Index, err = d.i32()
			} else {
				err = d.skip(0)
			}
		case "id":
			m.Id, err = d.str()
		case "type":
			m.Type, err = d.str()
		case "function":
			m.Function, err = object(d, (*decoder).functionCall)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) functionCall(m *openaiv1.FunctionCall) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "name":
			m.Name, err = d.str()
		case "arguments":
			m.Arguments, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// Encoding: the adapter writes the request for an LLM node. Only what is set
// is written, so the node applies its own defaults to the rest exactly as if
// the client had talked to it directly.

func (e *encoder) chatRequest(m *openaiv1.ChatCompletionRequest) {
	e.byte('{')
	if m.Model != "" {
		e.key("model")
		e.str(m.Model)
	}
	if len(m.Messages) > 0 {
		e.key("messages")
		e.byte('[')
		for i, msg := range m.Messages {
			if i > 0 {
				e.byte(',')
			}
			e.chatMessage(msg)
		}
		e.byte(']')
	}
	e.streaming(m.Stream, m.StreamOptions)
	e.optI32("max_tokens", m.MaxTokens)
	e.optI32("max_completion_tokens", m.MaxCompletionTokens)
	e.optF64("temperature", m.Temperature)
	e.optF64("top_p", m.TopP)
	e.optI32("n", m.N)
	e.stopAndSeed(m.Stop, m.Seed)
	e.optF64("presence_penalty", m.PresencePenalty)
	e.optF64("frequency_penalty", m.FrequencyPenalty)
	if rf := m.ResponseFormat; rf != nil {
		e.key("response_format")
		e.byte('{')
		e.nonEmpty("type", rf.Type)
		if js := rf.JsonSchema; js != nil {
			e.key("json_schema")
			e.byte('{')
			e.nonEmpty("name", js.Name)
			e.nonEmpty("description", js.Description)
			if js.SchemaJson != "" {
				e.key("schema")
				e.raw(js.SchemaJson)
			}
			e.optBool("strict", js.Strict)
			e.byte('}')
		}
		e.byte('}')
	}
	if len(m.Tools) > 0 {
		e.key("tools")
		e.byte('[')
		for i, t := range m.Tools {
			if i > 0 {
				e.byte(',')
			}
			e.tool(t)
		}
		e.byte(']')
	}
	switch tc := m.ToolChoice.GetKind().(type) {
	case *openaiv1.ToolChoice_Mode:
		e.key("tool_choice")
		e.str(tc.Mode)
	case *openaiv1.ToolChoice_FunctionName:
		e.key("tool_choice")
		e.raw(`{"type":"function","function":{"name":`)
		e.str(tc.FunctionName)
		e.raw(`}}`)
	}
	e.nonEmpty("user", m.User)
	e.optBool("logprobs", m.Logprobs)
	e.optI32("top_logprobs", m.TopLogprobs)
	if len(m.LogitBias) > 0 {
		e.key("logit_bias")
		e.logitBias(m.LogitBias)
	}
	e.optBool("parallel_tool_calls", m.ParallelToolCalls)
	e.nonEmpty("reasoning_effort", m.ReasoningEffort)
	e.byte('}')
}

func (e *encoder) chatMessage(m *openaiv1.ChatMessage) {
	e.byte('{')
	e.nonEmpty("role", m.GetRole())
	e.key("content")
	switch c := m.GetContent().GetKind().(type) {
	case *openaiv1.MessageContent_Text:
		e.str(c.Text)
	case *openaiv1.MessageContent_Parts:
		e.byte('[')
		for i, p := range c.Parts.GetParts() {
			if i > 0 {
				e.byte(',')
			}
			e.contentPart(p)
		}
		e.byte(']')
	default:
		e.raw("null")
	}
	e.nonEmpty("name", m.GetName())
	if len(m.GetToolCalls()) > 0 {
		e.key("tool_calls")
		e.toolCalls(m.GetToolCalls())
	}
	e.nonEmpty("tool_call_id", m.GetToolCallId())
	e.nonEmpty("refusal", m.GetRefusal())
	e.byte('}')
}

func (e *encoder) contentPart(p *openaiv1.ContentPart) {
	e.raw(`{"type":`)
	e.str(p.GetType())
	// A text part keeps its "text" even when empty: nodes require it.
	if p.GetText() != "" || p.GetType() == "text" {
		e.raw(`,"text":`)
		e.str(p.GetText())
	}
	if img := p.GetImageUrl(); img != nil {
		e.raw(`,"image_url":{"url":`)
		e.str(img.Url)
		if img.Detail != "" {
			e.raw(`,"detail":`)
			e.str(img.Detail)
		}
		e.byte('}')
	}
	if a := p.GetInputAudio(); a != nil {
		e.raw(`,"input_audio":{"data":`)
		e.str(a.Data)
		e.raw(`,"format":`)
		e.str(a.Format)
		e.byte('}')
	}
	e.byte('}')
}

func (e *encoder) tool(t *openaiv1.Tool) {
	e.byte('{')
	e.nonEmpty("type", t.GetType())
	if f := t.GetFunction(); f != nil {
		e.key("function")
		e.byte('{')
		e.nonEmpty("name", f.Name)
		e.nonEmpty("description", f.Description)
		if f.ParametersJson != "" {
			e.key("parameters")
			e.raw(f.ParametersJson)
		}
		e.optBool("strict", f.Strict)
		e.byte('}')
	}
	e.byte('}')
}

// logitBias writes the map with sorted keys so that equal requests encode to
// equal bytes.
func (e *encoder) logitBias(m map[string]float64) {
	var buf [16]string // no allocation for the usual few biased tokens
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.byte('{')
	for i, k := range keys {
		if i > 0 {
			e.byte(',')
		}
		e.str(k)
		e.byte(':')
		e.f64(m[k])
	}
	e.byte('}')
}

// toolCalls writes the tool calls of a message (request or completion):
// OpenAI's form has no "index" there.
func (e *encoder) toolCalls(calls []*openaiv1.ToolCall) {
	e.byte('[')
	for i, tc := range calls {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"id":`)
		e.str(tc.GetId())
		e.raw(`,"type":`)
		e.str(tc.GetType())
		if f := tc.GetFunction(); f != nil {
			e.raw(`,"function":{"name":`)
			e.str(f.Name)
			e.raw(`,"arguments":`)
			e.str(f.Arguments)
			e.byte('}')
		}
		e.byte('}')
	}
	e.byte(']')
}

// nonEmpty writes a string member unless it is empty.
func (e *encoder) nonEmpty(name, v string) {
	if v != "" {
		e.key(name)
		e.str(v)
	}
}

func (e *encoder) optI32(name string, v *int32) {
	if v != nil {
		e.key(name)
		e.i64(int64(*v))
	}
}

func (e *encoder) optF64(name string, v *float64) {
	if v != nil {
		e.key(name)
		e.f64(*v)
	}
}

func (e *encoder) optBool(name string, v *bool) {
	if v != nil {
		e.key(name)
		e.boolean(*v)
	}
}

// streaming writes a request's stream and stream_options.
func (e *encoder) streaming(stream bool, opts *openaiv1.StreamOptions) {
	if stream {
		e.key("stream")
		e.raw("true")
	}
	if opts != nil {
		e.key("stream_options")
		e.raw(`{"include_usage":`)
		e.boolean(opts.IncludeUsage)
		e.byte('}')
	}
}

// stopAndSeed writes a request's stop sequences and seed.
func (e *encoder) stopAndSeed(stop []string, seed *int64) {
	if len(stop) > 0 {
		e.key("stop")
		e.strs(stop)
	}
	if seed != nil {
		e.key("seed")
		e.i64(*seed)
	}
}
