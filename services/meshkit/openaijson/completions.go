package openaijson

import (
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
)

// Legacy completions (POST /v1/completions): the request's prompt is a
// string or an array of strings; token-id prompts are rejected with a
// message saying so, since the data model carries text only. The answer
// ("text_completion") has the same layout streamed or not.

func (d *decoder) completionRequest(m *openaiv1.CompletionRequest) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "model":
			m.Model, err = d.str()
		case "prompt":
			m.Prompt, err = d.prompt()
		case "stream":
			m.Stream, err = d.boolean()
		case "stream_options":
			m.StreamOptions, err = object(d, (*decoder).streamOptions)
		case "max_tokens":
			m.MaxTokens, err = d.optI32()
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
		case "suffix":
			m.Suffix, err = d.str()
		case "echo":
			m.Echo, err = d.optBool()
		case "logprobs":
			m.Logprobs, err = d.optI32()
		case "best_of":
			m.BestOf, err = d.optI32()
		case "logit_bias":
			m.LogitBias, err = d.logitBias()
		case "user":
			m.User, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// prompt decodes a string (one prompt) or an array of strings.
func (d *decoder) prompt() ([]string, error) {
	switch d.next() {
	case '"':
		s, err := d.str()
		return []string{s}, err
	case '[':
		// Peek at the first element: token ids are a number array.
		v := decoder{data: d.data, pos: d.pos + 1}
		if c := v.next(); c == '-' || (c >= '0' && c <= '9') || c == '[' {
			return nil, &DecodeError{Msg: "prompt as token ids is not supported: send the prompt as a string or an array of strings"}
		}
		return scalars(d, (*decoder).str)
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, d.typeErr("a string or an array of strings")
	}
}

func (e *encoder) completionRequest(m *openaiv1.CompletionRequest) {
	e.byte('{')
	if m.Model != "" {
		e.key("model")
		e.str(m.Model)
	}
	switch len(m.Prompt) {
	case 0:
	case 1:
		e.key("prompt")
		e.str(m.Prompt[0])
	default:
		e.key("prompt")
		e.strs(m.Prompt)
	}
	e.streaming(m.Stream, m.StreamOptions)
	e.optI32("max_tokens", m.MaxTokens)
	e.optF64("temperature", m.Temperature)
	e.optF64("top_p", m.TopP)
	e.optI32("n", m.N)
	e.stopAndSeed(m.Stop, m.Seed)
	e.optF64("presence_penalty", m.PresencePenalty)
	e.optF64("frequency_penalty", m.FrequencyPenalty)
	e.nonEmpty("suffix", m.Suffix)
	e.optBool("echo", m.Echo)
	e.optI32("logprobs", m.Logprobs)
	e.optI32("best_of", m.BestOf)
	if len(m.LogitBias) > 0 {
		e.key("logit_bias")
		e.logitBias(m.LogitBias)
	}
	e.nonEmpty("user", m.User)
	e.byte('}')
}

// completion writes a text_completion, whole or streamed, in OpenAI's
// layout: text always, logprobs and finish_reason null when unset.
func (e *encoder) completion(m *openaiv1.Completion) {
	e.header(m.GetId(), m.GetObject(), "text_completion", m.GetCreated(), m.GetModel(), m.GetSystemFingerprint())
	for i, c := range m.GetChoices() {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"text":`)
		e.str(c.GetText())
		e.raw(`,"index":`)
		e.i64(int64(c.GetIndex()))
		e.raw(`,"logprobs":`)
		if lp := c.GetLogprobs(); lp != nil {
			e.structObject(lp)
		} else {
			e.raw("null")
		}
		e.raw(`,"finish_reason":`)
		e.emptyAsNull(c.GetFinishReason())
		e.byte('}')
	}
	e.byte(']')
	e.trailer(m.GetUsage(), "")
}

func (d *decoder) completion(m *openaiv1.Completion) error {
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
			m.Choices, err = objects(d, (*decoder).textChoice)
		case "usage":
			m.Usage, err = object(d, (*decoder).usage)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) textChoice(m *openaiv1.CompletionChoice) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "index":
			m.Index, err = d.i32()
		case "text":
			m.Text, err = d.str()
		case "finish_reason":
			m.FinishReason, err = d.str()
		case "logprobs":
			m.Logprobs, err = d.structObject()
		default:
			err = d.skip(0)
		}
		return err
	})
}
