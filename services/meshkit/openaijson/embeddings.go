package openaijson

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
)

func (d *decoder) embeddingRequest(m *openaiv1.EmbeddingRequest) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "model":
			m.Model, err = d.str()
		case "input":
			m.Input, err = d.embeddingInput()
		case "encoding_format":
			m.EncodingFormat, err = d.str()
		case "dimensions":
			m.Dimensions, err = d.optI32()
		case "user":
			m.User, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}

// inputShapes is what the "input" of an embedding request may be.
const inputShapes = "input must be a string, an array of strings, an array of integers or an array of arrays of integers"

// embeddingInput decodes the four shapes of "input"; the first element of an
// array decides which one it is, and every other element must match. Errors
// name "input" itself (the DecodeError's Param is completed by the caller)
// and say where the shape broke.
func (d *decoder) embeddingInput() (*openaiv1.EmbeddingInput, error) {
	switch d.next() {
	case '"':
		s, err := d.str()
		return &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Text{Text: s}}, err
	case '[':
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, &DecodeError{Msg: inputShapes + ", got " + d.kind()}
	}
	open := d.pos
	d.pos++
	first := d.next()
	d.pos = open
	in := &openaiv1.EmbeddingInput{}
	var err error
	switch {
	case first == ']' || first == '"':
		var vs []string
		vs, err = scalars(d, (*decoder).inputText)
		in.Kind = &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: vs}}
	case first == '-' || '0' <= first && first <= '9':
		var vs []int64
		vs, err = d.tokens()
		in.Kind = &openaiv1.EmbeddingInput_Tokens{Tokens: &openaiv1.TokenList{Values: vs}}
	case first == '[':
		var vs []*openaiv1.TokenList
		vs, err = scalars(d, (*decoder).tokenList)
		in.Kind = &openaiv1.EmbeddingInput_TokenLists{TokenLists: &openaiv1.TokenLists{Values: vs}}
	default:
		d.pos++
		err = atIndex(&DecodeError{Msg: "expected a string, an integer or an array, got " + d.kind()}, 0)
	}
	if de := (*DecodeError)(nil); errors.As(err, &de) {
		return nil, &DecodeError{Msg: inputShapes + " (" + de.Error() + ")"}
	}
	if err != nil {
		return nil, err
	}
	return in, nil
}

// inputText is an element of a string array input; null is not a string.
func (d *decoder) inputText() (string, error) {
	if d.next() != '"' {
		return "", d.typeErr("a string")
	}
	return d.str()
}

// inputToken is an element of a token array input; null is not a token.
func (d *decoder) inputToken() (int64, error) {
	if c := d.next(); c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr("an integer")
	}
	return d.i64()
}

func (d *decoder) tokens() ([]int64, error) { return scalars(d, (*decoder).inputToken) }

func (d *decoder) tokenList() (*openaiv1.TokenList, error) {
	if d.next() != '[' {
		return nil, d.typeErr("an array")
	}
	vs, err := d.tokens()
	return &openaiv1.TokenList{Values: vs}, err
}

func (e *encoder) embeddingRequest(m *openaiv1.EmbeddingRequest) {
	e.byte('{')
	e.nonEmpty("model", m.GetModel())
	switch in := m.GetInput().GetKind().(type) {
	case *openaiv1.EmbeddingInput_Text:
		e.key("input")
		e.str(in.Text)
	case *openaiv1.EmbeddingInput_Texts:
		e.key("input")
		e.strs(in.Texts.GetValues())
	case *openaiv1.EmbeddingInput_Tokens:
		e.key("input")
		e.tokens(in.Tokens.GetValues())
	case *openaiv1.EmbeddingInput_TokenLists:
		e.key("input")
		e.byte('[')
		for i, l := range in.TokenLists.GetValues() {
			if i > 0 {
				e.byte(',')
			}
			e.tokens(l.GetValues())
		}
		e.byte(']')
	}
	e.nonEmpty("encoding_format", m.GetEncodingFormat())
	e.optI32("dimensions", m.Dimensions)
	e.nonEmpty("user", m.GetUser())
	e.byte('}')
}

func (e *encoder) tokens(vs []int64) {
	e.byte('[')
	for i, v := range vs {
		if i > 0 {
			e.byte(',')
		}
		e.i64(v)
	}
	e.byte(']')
}

// embeddingList writes OpenAI's answer. usage is always written: OpenAI
// always sends it and SDKs require it.
func (e *encoder) embeddingList(m *openaiv1.EmbeddingList) {
	e.raw(`{"object":`)
	e.strOr(m.GetObject(), "list")
	e.raw(`,"data":[`)
	for i, emb := range m.GetData() {
		if i > 0 {
			e.byte(',')
		}
		e.raw(`{"object":`)
		e.strOr(emb.GetObject(), "embedding")
		e.raw(`,"index":`)
		e.i64(int64(emb.GetIndex()))
		e.raw(`,"embedding":`)
		if raw := emb.GetEmbeddingBase64(); len(raw) > 0 {
			e.byte('"')
			e.b = base64.StdEncoding.AppendEncode(e.b, raw)
			e.byte('"')
		} else {
			e.byte('[')
			for j, f := range emb.GetEmbedding() {
				if j > 0 {
					e.byte(',')
				}
				e.f32(f)
			}
			e.byte(']')
		}
		e.byte('}')
	}
	e.raw(`],"model":`)
	e.str(m.GetModel())
	e.raw(`,"usage":{"prompt_tokens":`)
	e.i64(m.GetUsage().GetPromptTokens())
	e.raw(`,"total_tokens":`)
	e.i64(m.GetUsage().GetTotalTokens())
	e.raw(`}}`)
}

func (d *decoder) embeddingList(m *openaiv1.EmbeddingList) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "object":
			m.Object, err = d.str()
		case "data":
			m.Data, err = objects(d, (*decoder).embedding)
		case "model":
			m.Model, err = d.str()
		case "usage":
			m.Usage, err = object(d, (*decoder).embeddingUsage)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) embedding(m *openaiv1.Embedding) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "object":
			m.Object, err = d.str()
		case "index":
			m.Index, err = d.i32()
		case "embedding":
			if d.next() == '"' {
				m.Embedding, err = d.base64Floats()
			} else {
				m.Embedding, err = scalars(d, (*decoder).f32)
			}
		default:
			err = d.skip(0)
		}
		return err
	})
}

// base64Floats decodes a base64 embedding (little-endian float32s, as a node
// sends when asked for encoding_format=base64) into floats, so the rest of
// llmesh sees one representation whatever the node was asked for.
func (d *decoder) base64Floats() ([]float32, error) {
	s, err := d.strView()
	if err != nil {
		return nil, err
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding // some servers drop the padding
	}
	raw := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(raw, s)
	if err != nil || n%4 != 0 {
		return nil, &DecodeError{Msg: "invalid base64 embedding"}
	}
	fs := make([]float32, n/4)
	for i := range fs {
		fs[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return fs, nil
}

func (d *decoder) embeddingUsage(m *openaiv1.EmbeddingUsage) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "prompt_tokens":
			m.PromptTokens, err = d.i64()
		case "total_tokens":
			m.TotalTokens, err = d.i64()
		default:
			err = d.skip(0)
		}
		return err
	})
}
