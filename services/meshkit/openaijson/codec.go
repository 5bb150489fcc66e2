package openaijson

import (
	"encoding/base64"
	"errors"
	"fmt"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

// Marshal encodes m as OpenAI JSON. Supported: *openaiv1.ChatCompletionRequest,
// *openaiv1.ChatCompletion, *openaiv1.ChatCompletionChunk,
// *openaiv1.EmbeddingRequest, *openaiv1.EmbeddingList, *openaiv1.CompletionRequest,
// *openaiv1.Completion, *openaiv1.ModelList
// and *openaiv1.Model. Other types, nil messages and NaN or infinite numbers
// are errors.
func Marshal(m proto.Message) ([]byte, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, errors.New("openaijson: cannot marshal a nil message")
	}
	var e encoder
	switch m := m.(type) {
	case *openaiv1.ChatCompletionRequest:
		e.b = make([]byte, 0, requestSize(m))
		e.chatRequest(m)
	case *openaiv1.ChatCompletion:
		e.b = make([]byte, 0, completionSize(m))
		e.chatCompletion(m)
	case *openaiv1.ChatCompletionChunk:
		e.b = make([]byte, 0, chunkSize(m))
		e.chatCompletionChunk(m)
	case *openaiv1.EmbeddingRequest:
		e.b = make([]byte, 0, embeddingRequestSize(m))
		e.embeddingRequest(m)
	case *openaiv1.EmbeddingList:
		e.b = make([]byte, 0, embeddingListSize(m))
		e.embeddingList(m)
	case *openaiv1.CompletionRequest:
		e.b = make([]byte, 0, 256+completionPromptSize(m))
		e.completionRequest(m)
	case *openaiv1.Completion:
		e.b = make([]byte, 0, 256+completionTextSize(m))
		e.completion(m)
	case *openaiv1.ModelList:
		e.b = make([]byte, 0, 32+96*len(m.Data))
		e.modelList(m)
	case *openaiv1.Model:
		e.b = make([]byte, 0, 96)
		e.model(m)
	default:
		return nil, fmt.Errorf("openaijson: cannot marshal %T", m)
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

// Unmarshal decodes OpenAI JSON into m (the types Marshal supports),
// replacing its contents; on error m is left empty. Unknown fields are
// ignored and null means absent. Malformed JSON, a wrongly typed field or,
// in a request (chat, completion, embeddings), a string that is not UTF-8
// is a *DecodeError.
func Unmarshal(data []byte, m proto.Message) error {
	if m == nil || !m.ProtoReflect().IsValid() {
		return errors.New("openaijson: cannot unmarshal into a nil message")
	}
	proto.Reset(m)
	d := decoder{data: data}
	var err error
	switch m.(type) {
	case *openaiv1.ChatCompletionRequest, *openaiv1.EmbeddingRequest, *openaiv1.CompletionRequest:
		d.strict = true // a client's request: JSON text must be UTF-8
	}
	switch m := m.(type) {
	case *openaiv1.ChatCompletionRequest:
		err = d.body(func() error { return d.chatRequest(m) })
	case *openaiv1.ChatCompletion:
		err = d.body(func() error { return d.chatCompletion(m) })
	case *openaiv1.ChatCompletionChunk:
		err = d.body(func() error { return d.chatCompletionChunk(m) })
	case *openaiv1.EmbeddingRequest:
		err = d.body(func() error { return d.embeddingRequest(m) })
	case *openaiv1.EmbeddingList:
		err = d.body(func() error { return d.embeddingList(m) })
	case *openaiv1.CompletionRequest:
		err = d.body(func() error { return d.completionRequest(m) })
	case *openaiv1.Completion:
		err = d.body(func() error { return d.completion(m) })
	case *openaiv1.ModelList:
		err = d.body(func() error { return d.modelList(m) })
	case *openaiv1.Model:
		err = d.body(func() error { return d.model(m) })
	default:
		return fmt.Errorf("openaijson: cannot unmarshal into %T", m)
	}
	if err != nil {
		proto.Reset(m)
	}
	return err
}

// body decodes a whole body with fill: one JSON object and nothing after it.
// A bare null or other value is rejected rather than read as an empty
// message.
func (d *decoder) body(fill func() error) error {
	var err error
	switch d.next() {
	case '{':
		err = fill()
	case 0:
		err = d.unexpected()
	default:
		err = d.typeErr("an object")
	}
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return d.report(err)
	}
	return nil
}

// report turns an internal decode error into the *DecodeError callers see.
// Decoding stops at the first wrongly typed field, before the rest of the
// body has been read; a body that is also malformed further on is reported
// as malformed, since that is what its sender has to fix first.
func (d *decoder) report(err error) error {
	if de := (*DecodeError)(nil); errors.As(err, &de) {
		v := decoder{data: d.data}
		serr := v.skip(0)
		if serr == nil {
			serr = v.end()
		}
		if serr == nil {
			return de
		}
		err = serr
	}
	return &DecodeError{Msg: "invalid JSON: " + err.Error()}
}

// The size functions estimate the encoded length so that the output buffer
// is allocated once; under-estimates only cost a regrowth.

func requestSize(m *openaiv1.ChatCompletionRequest) int {
	n := 256 + len(m.GetResponseFormat().GetJsonSchema().GetSchemaJson())
	for _, t := range m.Tools {
		f := t.GetFunction()
		n += 64 + len(f.GetName()) + len(f.GetDescription()) + len(f.GetParametersJson())
	}
	for _, msg := range m.Messages {
		n += 64 + toolCallsSize(msg.GetToolCalls())
		switch c := msg.GetContent().GetKind().(type) {
		case *openaiv1.MessageContent_Text:
			n += len(c.Text)
		case *openaiv1.MessageContent_Parts:
			for _, p := range c.Parts.GetParts() {
				n += 64 + len(p.GetText()) + len(p.GetImageUrl().GetUrl()) + len(p.GetInputAudio().GetData())
			}
		}
	}
	return n
}

func completionSize(m *openaiv1.ChatCompletion) int {
	n := 256 + len(m.Id) + len(m.Model) + len(m.SystemFingerprint)
	for _, c := range m.Choices {
		msg := c.GetMessage()
		n += 128 + len(msg.GetContent()) + len(msg.GetRefusal()) + 2*len(msg.GetReasoningContent()) + toolCallsSize(msg.GetToolCalls()) + logprobsSize(c.GetLogprobs())
	}
	return n
}

func chunkSize(m *openaiv1.ChatCompletionChunk) int {
	n := 224 + len(m.Id) + len(m.Model) + len(m.SystemFingerprint)
	for _, c := range m.Choices {
		delta := c.GetDelta()
		n += 96 + len(delta.GetContent()) + len(delta.GetRefusal()) + 2*len(delta.GetReasoningContent()) + toolCallsSize(delta.GetToolCalls()) + logprobsSize(c.GetLogprobs())
	}
	return n
}

func toolCallsSize(calls []*openaiv1.ToolCall) int {
	n := 0
	for _, tc := range calls {
		n += 64 + len(tc.GetId()) + len(tc.GetFunction().GetName()) + len(tc.GetFunction().GetArguments())
	}
	return n
}

func logprobsSize(l *openaiv1.Logprobs) int {
	n := 0
	for _, t := range l.GetContent() {
		n += 96 + 4*len(t.GetBytes()) + 64*len(t.GetTopLogprobs())
	}
	return n
}

func embeddingRequestSize(m *openaiv1.EmbeddingRequest) int {
	n := 128
	switch in := m.GetInput().GetKind().(type) {
	case *openaiv1.EmbeddingInput_Text:
		n += len(in.Text)
	case *openaiv1.EmbeddingInput_Texts:
		for _, s := range in.Texts.GetValues() {
			n += 3 + len(s)
		}
	case *openaiv1.EmbeddingInput_Tokens:
		n += 8 * len(in.Tokens.GetValues())
	case *openaiv1.EmbeddingInput_TokenLists:
		for _, l := range in.TokenLists.GetValues() {
			n += 2 + 8*len(l.GetValues())
		}
	}
	return n
}

func embeddingListSize(m *openaiv1.EmbeddingList) int {
	n := 128
	for _, emb := range m.Data {
		// A float32 needs at most 15 characters plus the comma; typical
		// embedding values need about 12.
		n += 64 + 13*len(emb.GetEmbedding()) + base64.StdEncoding.EncodedLen(len(emb.GetEmbeddingBase64()))
	}
	return n
}

func completionPromptSize(m *openaiv1.CompletionRequest) int {
	n := 0
	for _, p := range m.Prompt {
		n += len(p) + 4
	}
	return n
}

func completionTextSize(m *openaiv1.Completion) int {
	n := 0
	for _, c := range m.Choices {
		n += len(c.Text) + 64
	}
	return n
}
