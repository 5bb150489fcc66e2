package openaijson

import openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"

// Encoding: the router answers a client. The layout is OpenAI's own, field
// for field, because SDKs parse it strictly: members OpenAI always sends are
// always written (null when unset), the rest only when set.

func (e *encoder) chatCompletion(m *openaiv1.ChatCompletion) {
	e.header(m.GetId(), m.GetObject(), "chat.completion", m.GetCreated(), m.GetModel(), m.GetSystemFingerprint())
	for i, c := range m.GetChoices() {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"index":`)
		e.i64(int64(c.GetIndex()))
		e.raw(`,"message":`)
		e.responseMessage(c.GetMessage())
		e.raw(`,"logprobs":`)
		e.logprobs(c.GetLogprobs())
		e.raw(`,"finish_reason":`)
		e.emptyAsNull(c.GetFinishReason())
		e.byte('}')
	}
	e.byte(']')
	e.trailer(m.GetUsage(), m.GetServiceTier())
}

func (e *encoder) chatCompletionChunk(m *openaiv1.ChatCompletionChunk) {
	e.header(m.GetId(), m.GetObject(), "chat.completion.chunk", m.GetCreated(), m.GetModel(), m.GetSystemFingerprint())
	for i, c := range m.GetChoices() {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"index":`)
		e.i64(int64(c.GetIndex()))
		e.raw(`,"delta":`)
		e.chunkDelta(c.GetDelta())
		e.raw(`,"logprobs":`)
		e.logprobs(c.GetLogprobs())
		e.raw(`,"finish_reason":`)
		e.emptyAsNull(c.GetFinishReason())
		e.byte('}')
	}
	e.byte(']')
	e.trailer(m.GetUsage(), m.GetServiceTier())
}

// header writes a completion or chunk up to the opening '[' of "choices".
func (e *encoder) header(id, object, defObject string, created int64, model, fingerprint string) {
	e.raw(`{"id":`)
	e.str(id)
	e.raw(`,"object":`)
	e.strOr(object, defObject)
	e.raw(`,"created":`)
	e.i64(created)
	e.raw(`,"model":`)
	e.str(model)
	if fingerprint != "" {
		e.raw(`,"system_fingerprint":`)
		e.str(fingerprint)
	}
	e.raw(`,"choices":[`)
}

// trailer writes what follows "choices" and closes the object.
func (e *encoder) trailer(u *openaiv1.Usage, serviceTier string) {
	if u != nil {
		e.raw(`,"usage":{"prompt_tokens":`)
		e.i64(u.PromptTokens)
		e.raw(`,"completion_tokens":`)
		e.i64(u.CompletionTokens)
		e.raw(`,"total_tokens":`)
		e.i64(u.TotalTokens)
		if d := u.PromptTokensDetails; d != nil {
			e.raw(`,"prompt_tokens_details":{"cached_tokens":`)
			e.i64(d.CachedTokens)
			e.byte('}')
		}
		if d := u.CompletionTokensDetails; d != nil {
			e.raw(`,"completion_tokens_details":{"reasoning_tokens":`)
			e.i64(d.ReasoningTokens)
			e.byte('}')
		}
		e.byte('}')
	}
	if serviceTier != "" {
		e.raw(`,"service_tier":`)
		e.str(serviceTier)
	}
	e.byte('}')
}

// responseMessage writes a completion's message. The role defaults to
// "assistant", the only role a completion can have, for nodes that omit it.
func (e *encoder) responseMessage(m *openaiv1.ResponseMessage) {
	var content, refusal *string
	if m != nil {
		content, refusal = m.Content, m.Refusal
	}
	e.raw(`{"role":`)
	e.strOr(m.GetRole(), "assistant")
	e.raw(`,"content":`)
	e.nilAsNull(content)
	e.raw(`,"refusal":`)
	e.nilAsNull(refusal)
	if len(m.GetToolCalls()) > 0 {
		e.raw(`,"tool_calls":`)
		e.toolCalls(m.GetToolCalls())
	}
	if m.GetReasoningContent() != "" {
		e.reasoning(m.GetReasoningContent())
	}
	e.byte('}')
}

// reasoning writes a thinking model's reasoning under both names clients
// read it by: "reasoning_content" (DeepSeek's API, vLLM, llama.cpp and
// LM Studio, and the clients written for them) and "reasoning" (Ollama's
// /v1 and newer vLLM). A client moving to the mesh from either kind of
// server keeps its reasoning; clients read one name or prefer the first,
// so writing both duplicates bytes, not reasoning.
func (e *encoder) reasoning(text string) {
	e.key("reasoning_content")
	e.str(text)
	e.key("reasoning")
	e.str(text)
}

// chunkDelta writes only what the chunk carries: "content":"" is kept
// (OpenAI's first chunk has it) but an unset content is left out.
func (e *encoder) chunkDelta(m *openaiv1.ChunkDelta) {
	e.byte('{')
	if m != nil {
		e.nonEmpty("role", m.Role)
		if m.Content != nil {
			e.key("content")
			e.str(*m.Content)
		}
		if m.Refusal != nil {
			e.key("refusal")
			e.str(*m.Refusal)
		}
		if len(m.ToolCalls) > 0 {
			e.key("tool_calls")
			e.chunkToolCalls(m.ToolCalls)
		}
		if m.ReasoningContent != nil && *m.ReasoningContent != "" {
			e.reasoning(*m.ReasoningContent)
		}
	}
	e.byte('}')
}

// chunkToolCalls writes delta tool calls: "index" always, since clients
// assemble calls by it, and the rest only when the fragment carries it.
func (e *encoder) chunkToolCalls(calls []*openaiv1.ToolCall) {
	e.byte('[')
	for i, tc := range calls {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"index":`)
		e.i64(int64(tc.GetIndex()))
		e.nonEmpty("id", tc.GetId())
		e.nonEmpty("type", tc.GetType())
		if f := tc.GetFunction(); f != nil {
			e.raw(`,"function":{`)
			e.nonEmpty("name", f.Name)
			e.key("arguments")
			e.str(f.Arguments)
			e.byte('}')
		}
		e.byte('}')
	}
	e.byte(']')
}

func (e *encoder) logprobs(l *openaiv1.Logprobs) {
	if l == nil {
		e.raw("null")
		return
	}
	e.raw(`{"content":`)
	e.tokenLogprobs(l.Content)
	e.raw(`,"refusal":`)
	if len(l.Refusal) == 0 {
		e.raw("null")
	} else {
		e.tokenLogprobs(l.Refusal)
	}
	e.byte('}')
}

func (e *encoder) tokenLogprobs(ts []*openaiv1.TokenLogprob) {
	e.byte('[')
	for i, t := range ts {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"token":`)
		e.str(t.GetToken())
		e.raw(`,"logprob":`)
		e.f64(t.GetLogprob())
		e.raw(`,"bytes":`)
		e.tokenBytes(t.GetBytes())
		e.raw(`,"top_logprobs":[`)
		for j, top := range t.GetTopLogprobs() {
			if j > 0 {
				e.byte(',')
			}
			e.raw(`{"token":`)
			e.str(top.GetToken())
			e.raw(`,"logprob":`)
			e.f64(top.GetLogprob())
			e.raw(`,"bytes":`)
			e.tokenBytes(top.GetBytes())
			e.byte('}')
		}
		e.raw(`]}`)
	}
	e.byte(']')
}

// tokenBytes writes a token's UTF-8 bytes; OpenAI sends null when a token
// has no byte representation.
func (e *encoder) tokenBytes(bs []int32) {
	if len(bs) == 0 {
		e.raw("null")
		return
	}
	e.byte('[')
	for i, b := range bs {
		if i > 0 {
			e.byte(',')
		}
		e.i64(int64(b))
	}
	e.byte(']')
}

// Decoding: the adapter reads a node's answer. Nodes differ in what they
// send, so everything is optional and null is always "absent".

func (d *decoder) chatCompletion(m *openaiv1.ChatCompletion) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "id":
			m.Id, err = d.str()
		case "object":
			m.Object, err = d.str()
		case "created":
			m.Created, err = d.i64()
		case "model":
			m.Model, err = d.str()
		case "system_fingerprint":
			m.SystemFingerprint, err = d.str()
		case "choices":
			m.Choices, err = objects(d, (*decoder).completionChoice)
		case "usage":
			m.Usage, err = object(d, (*decoder).usage)
		case "service_tier":
			m.ServiceTier, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) completionChoice(m *openaiv1.ChatCompletionChoice) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "index":
			m.Index, err = d.i32()
		case "message":
			m.Message, err = object(d, (*decoder).responseMessage)
		case "finish_reason":
			m.FinishReason, err = d.str()
		case "logprobs":
			m.Logprobs, err = object(d, (*decoder).logprobs)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) responseMessage(m *openaiv1.ResponseMessage) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "role":
			m.Role, err = d.str()
		case "content":
			m.Content, err = d.optStr()
		case "refusal":
			m.Refusal, err = d.optStr()
		case "tool_calls":
			m.ToolCalls, err = objects(d, (*decoder).toolCall)
		case "reasoning_content":
			m.ReasoningContent, err = d.reasoningContent(m.ReasoningContent)
		case "reasoning":
			m.ReasoningContent, err = d.reasoning(m.ReasoningContent)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) chatCompletionChunk(m *openaiv1.ChatCompletionChunk) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "id":
			m.Id, err = d.str()
		case "object":
			m.Object, err = d.str()
		case "created":
			m.Created, err = d.i64()
		case "model":
			m.Model, err = d.str()
		case "system_fingerprint":
			m.SystemFingerprint, err = d.str()
		case "choices":
			m.Choices, err = objects(d, (*decoder).chunkChoice)
		case "usage":
			m.Usage, err = object(d, (*decoder).usage)
		case "service_tier":
			m.ServiceTier, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) chunkChoice(m *openaiv1.ChunkChoice) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "index":
			m.Index, err = d.i32()
		case "delta":
			m.Delta, err = object(d, (*decoder).chunkDelta)
		case "finish_reason":
			m.FinishReason, err = d.str()
		case "logprobs":
			m.Logprobs, err = object(d, (*decoder).logprobs)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) chunkDelta(m *openaiv1.ChunkDelta) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "role":
			m.Role, err = d.str()
		case "content":
			m.Content, err = d.optStr()
		case "refusal":
			m.Refusal, err = d.optStr()
		case "tool_calls":
			m.ToolCalls, err = objects(d, (*decoder).chunkToolCall)
		case "reasoning_content":
			m.ReasoningContent, err = d.reasoningContent(m.ReasoningContent)
		case "reasoning":
			m.ReasoningContent, err = d.reasoning(m.ReasoningContent)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) logprobs(m *openaiv1.Logprobs) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "content":
			m.Content, err = objects(d, (*decoder).tokenLogprob)
		case "refusal":
			m.Refusal, err = objects(d, (*decoder).tokenLogprob)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) tokenLogprob(m *openaiv1.TokenLogprob) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "token":
			m.Token, err = d.str()
		case "logprob":
			m.Logprob, err = d.f64()
		case "bytes":
			m.Bytes, err = scalars(d, (*decoder).i32)
		case "top_logprobs":
			m.TopLogprobs, err = objects(d, (*decoder).topLogprob)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) topLogprob(m *openaiv1.TopLogprob) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "token":
			m.Token, err = d.str()
		case "logprob":
			m.Logprob, err = d.f64()
		case "bytes":
			m.Bytes, err = scalars(d, (*decoder).i32)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) usage(m *openaiv1.Usage) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "prompt_tokens":
			m.PromptTokens, err = d.i64()
		case "completion_tokens":
			m.CompletionTokens, err = d.i64()
		case "total_tokens":
			m.TotalTokens, err = d.i64()
		case "prompt_tokens_details":
			m.PromptTokensDetails, err = object(d, (*decoder).promptTokensDetails)
		case "completion_tokens_details":
			m.CompletionTokensDetails, err = object(d, (*decoder).completionTokensDetails)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) promptTokensDetails(m *openaiv1.PromptTokensDetails) error {
	return d.fields(func(key []byte) (err error) {
		if string(key) == "cached_tokens" {
			m.CachedTokens, err = d.i64()
		} else {
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) completionTokensDetails(m *openaiv1.CompletionTokensDetails) error {
	return d.fields(func(key []byte) (err error) {
		if string(key) == "reasoning_tokens" {
			m.ReasoningTokens, err = d.i64()
		} else {
			err = d.skip(0)
		}
		return err
	})
}

// reasoningContent decodes "reasoning_content" (vLLM, llama.cpp, LM
// Studio, DeepSeek). It wins over "reasoning" in the same object: a server
// that sends both under its old and new name sends the same text twice.
func (d *decoder) reasoningContent(have *string) (*string, error) {
	v, err := d.optStr()
	if v == nil {
		return have, err
	}
	return v, err
}

// reasoning decodes "reasoning" (Ollama's /v1, newer vLLM) unless the
// object already had "reasoning_content".
func (d *decoder) reasoning(have *string) (*string, error) {
	v, err := d.optStr()
	if have != nil || v == nil {
		return have, err
	}
	return v, err
}
