package openaijson

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
)

func TestEmbeddingRequest(t *testing.T) {
	texts := func(vs ...string) *openaiv1.EmbeddingInput {
		return &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Texts{Texts: &openaiv1.TextList{Values: vs}}}
	}
	tests := []struct {
		name string
		in   string
		want *openaiv1.EmbeddingRequest
		// out is the re-encoded body; "" means in itself.
		out string
	}{
		{
			name: "string",
			in:   `{"model":"nomic-embed-text","input":"hello","encoding_format":"float","dimensions":256,"user":"u"}`,
			want: &openaiv1.EmbeddingRequest{
				Model: "nomic-embed-text", Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Text{Text: "hello"}},
				EncodingFormat: "float", Dimensions: proto.Int32(256), User: "u",
			},
		},
		{
			name: "array of strings",
			in:   `{"input":["a","b"]}`,
			want: &openaiv1.EmbeddingRequest{Input: texts("a", "b")},
		},
		{
			name: "array of tokens",
			in:   `{"input":[15339,-1,0]}`,
			want: &openaiv1.EmbeddingRequest{Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_Tokens{
				Tokens: &openaiv1.TokenList{Values: []int64{15339, -1, 0}},
			}}},
		},
		{
			name: "array of token arrays",
			in:   `{"input":[[1,2],[],[3]]}`,
			want: &openaiv1.EmbeddingRequest{Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_TokenLists{
				TokenLists: &openaiv1.TokenLists{Values: []*openaiv1.TokenList{{Values: []int64{1, 2}}, {}, {Values: []int64{3}}}},
			}}},
		},
		{
			name: "empty array is an empty list of strings",
			in:   `{"input":[ ]}`,
			want: &openaiv1.EmbeddingRequest{Input: texts()},
			out:  `{"input":[]}`,
		},
		{
			name: "null input, zero dimensions keeps presence",
			in:   `{"input":null,"dimensions":0,"extra":{"a":[1]}}`,
			want: &openaiv1.EmbeddingRequest{Dimensions: proto.Int32(0)},
			out:  `{"dimensions":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got openaiv1.EmbeddingRequest
			if err := Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			assertProtoEqual(t, &got, tt.want)
			out := tt.out
			if out == "" {
				out = tt.in
			}
			assertMarshal(t, &got, out)
		})
	}
}

func TestEmbeddingRequestBadInput(t *testing.T) {
	for _, in := range []string{
		`5`, `true`, `{}`, `[1,"a"]`, `["a",1]`, `["a",null]`, `[null]`, `[true]`, `[{}]`,
		`[[1],"a"]`, `[[1,"x"]]`, `[[null]]`, `[1.5]`, `[1e30]`, `[[1],[2.5]]`,
	} {
		t.Run(in, func(t *testing.T) {
			err := Unmarshal([]byte(`{"model":"m","input":`+in+`}`), &openaiv1.EmbeddingRequest{})
			assertDecodeError(t, err, "input", "input must be a string, an array of strings")
		})
	}
}

// le returns the little-endian float32 bytes of fs, the base64 embedding
// payload.
func le(fs ...float32) []byte {
	b := make([]byte, 0, 4*len(fs))
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func TestMarshalEmbeddingList(t *testing.T) {
	t.Run("floats", func(t *testing.T) {
		assertMarshal(t, &openaiv1.EmbeddingList{
			Model: "nomic-embed-text",
			Data: []*openaiv1.Embedding{
				{Embedding: []float32{0.1, -0.25, 3e-8, 1, 0.30000001, -0.0023064255}},
				{Index: 1, Object: "embedding", Embedding: []float32{}},
			},
			Usage: &openaiv1.EmbeddingUsage{PromptTokens: 8, TotalTokens: 8},
		}, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.25,3e-08,1,0.3,-0.0023064255]},`+
			`{"object":"embedding","index":1,"embedding":[]}],"model":"nomic-embed-text","usage":{"prompt_tokens":8,"total_tokens":8}}`)
	})
	t.Run("base64", func(t *testing.T) {
		raw := le(1, -2, 0.5)
		assertMarshal(t, &openaiv1.EmbeddingList{
			Model: "m",
			Data:  []*openaiv1.Embedding{{EmbeddingBase64: raw, Embedding: []float32{9}}},
		}, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"`+base64.StdEncoding.EncodeToString(raw)+`"}],`+
			`"model":"m","usage":{"prompt_tokens":0,"total_tokens":0}}`)
	})
	t.Run("NaN is an error", func(t *testing.T) {
		_, err := Marshal(&openaiv1.EmbeddingList{Data: []*openaiv1.Embedding{{Embedding: []float32{float32(math.NaN())}}}})
		if err == nil {
			t.Fatal("Marshal succeeded with NaN")
		}
	})
}

func TestUnmarshalEmbeddingList(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(le(1, -2, 0.5))
	tests := []struct {
		name string
		in   string
		want *openaiv1.EmbeddingList
	}{
		{
			name: "floats",
			in:   `{"object":"list","data":[{"object":"embedding","embedding":[0.1,-0.25,3e-08,1],"index":0}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}`,
			want: &openaiv1.EmbeddingList{Object: "list", Model: "m",
				Data:  []*openaiv1.Embedding{{Object: "embedding", Embedding: []float32{0.1, -0.25, 3e-8, 1}}},
				Usage: &openaiv1.EmbeddingUsage{PromptTokens: 2, TotalTokens: 2}},
		},
		{
			name: "base64 becomes floats",
			in:   `{"data":[{"object":"embedding","index":3,"embedding":"` + b64 + `"}],"usage":null}`,
			want: &openaiv1.EmbeddingList{Data: []*openaiv1.Embedding{{Object: "embedding", Index: 3, Embedding: []float32{1, -2, 0.5}}}},
		},
		{
			name: "unpadded base64",
			in:   `{"data":[{"embedding":"` + base64.RawStdEncoding.EncodeToString(le(0.25)) + `"}]}`,
			want: &openaiv1.EmbeddingList{Data: []*openaiv1.Embedding{{Embedding: []float32{0.25}}}},
		},
		{
			name: "null embedding",
			in:   `{"data":[{"embedding":null}],"model":null}`,
			want: &openaiv1.EmbeddingList{Data: []*openaiv1.Embedding{{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got openaiv1.EmbeddingList
			if err := Unmarshal([]byte(tt.in), &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			assertProtoEqual(t, &got, tt.want)
		})
	}
	t.Run("bad base64", func(t *testing.T) {
		err := Unmarshal([]byte(`{"data":[{"embedding":"AAAA!"}]}`), &openaiv1.EmbeddingList{})
		assertDecodeError(t, err, "data[0].embedding", "invalid base64")
		err = Unmarshal([]byte(`{"data":[{"embedding":"AAA="}]}`), &openaiv1.EmbeddingList{})
		assertDecodeError(t, err, "data[0].embedding", "invalid base64")
	})
	t.Run("float32 overflow", func(t *testing.T) {
		err := Unmarshal([]byte(`{"data":[{"embedding":[1,1e39]}]}`), &openaiv1.EmbeddingList{})
		assertDecodeError(t, err, "data[0].embedding[1]", "out of range")
	})
}
