package openaijson

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestEncodeString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\s/`, `"q\"b\\s/"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"<a href='x'>&amp;</a>", `"<a href='x'>&amp;</a>"`},
		{"héllo wörld ✓ 😀 \u2028\u2029", `"héllo wörld ✓ 😀 ` + "\u2028\u2029" + `"`},
		{"bad\xffutf8\xc3", `"bad` + "\uFFFD" + `utf8` + "\uFFFD" + `"`},
		{"\xed\xa0\x80", `"` + "\uFFFD\uFFFD\uFFFD" + `"`}, // an encoded surrogate is invalid UTF-8
	}
	for _, tt := range tests {
		var e encoder
		e.str(tt.in)
		if got := string(e.b); got != tt.want {
			t.Errorf("str(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if !json.Valid(e.b) {
			t.Errorf("str(%q) = %s is not valid JSON", tt.in, e.b)
		}
	}
}

func TestEncodeFloat64(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {1, "1"}, {-0.5, "-0.5"}, {0.1, "0.1"}, {0.7, "0.7"},
		{1e20, "100000000000000000000"}, {1e21, "1e+21"}, {1e-6, "0.000001"}, {1e-7, "1e-7"},
		{-2.5e-10, "-2.5e-10"}, {123456789.125, "123456789.125"}, {math.MaxFloat64, "1.7976931348623157e+308"},
	}
	for _, tt := range tests {
		var e encoder
		e.f64(tt.in)
		if got := string(e.b); got != tt.want || e.err != nil {
			t.Errorf("f64(%v) = %s, %v; want %s", tt.in, got, e.err, tt.want)
		}
		// The same digits as encoding/json, which clients are used to.
		if std, _ := json.Marshal(tt.in); string(std) != tt.want {
			t.Errorf("encoding/json writes %v as %s, f64 as %s", tt.in, std, tt.want)
		}
	}
}

func TestMarshalNonFinite(t *testing.T) {
	for _, m := range []proto.Message{
		&openaiv1.ChatCompletionRequest{Temperature: proto.Float64(math.NaN())},
		&openaiv1.ChatCompletionRequest{LogitBias: map[string]float64{"1": math.Inf(1)}},
		&openaiv1.Completion{Choices: []*openaiv1.CompletionChoice{{
			Logprobs: &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.Inf(-1))}},
		}}},
		&openaiv1.ChatCompletion{Choices: []*openaiv1.ChatCompletionChoice{{Logprobs: &openaiv1.Logprobs{
			Content: []*openaiv1.TokenLogprob{{Logprob: math.Inf(-1)}},
		}}}},
	} {
		b, err := Marshal(m)
		if err == nil || !strings.Contains(err.Error(), "cannot encode") {
			t.Errorf("Marshal(%v) = %s, %v; want an error", m, b, err)
		}
	}
}

func TestUnsupportedAndNilMessages(t *testing.T) {
	if _, err := Marshal(&openaiv1.Usage{}); err == nil {
		t.Error("Marshal(*Usage) succeeded")
	}
	if _, err := Marshal((*openaiv1.ChatCompletion)(nil)); err == nil {
		t.Error("Marshal(nil *ChatCompletion) succeeded")
	}
	if _, err := Marshal(nil); err == nil {
		t.Error("Marshal(nil) succeeded")
	}
	for _, body := range []string{`{}`, `[]`, ``} {
		var de *DecodeError
		if err := Unmarshal([]byte(body), &openaiv1.Usage{}); err == nil || errors.As(err, &de) {
			t.Errorf("Unmarshal(%q) into *Usage = %v, want an unsupported-type error", body, err)
		}
	}
	if err := Unmarshal([]byte(`{}`), (*openaiv1.ChatCompletionChunk)(nil)); err == nil {
		t.Error("Unmarshal into nil *ChatCompletionChunk succeeded")
	}
}

// TestOutputIsValidJSON runs every encoder over awkward content and checks
// the result with encoding/json.
func TestOutputIsValidJSON(t *testing.T) {
	s := "a\"\\\x00\x1f\xff✓"
	for _, m := range []proto.Message{
		richRequest(t),
		&openaiv1.ChatCompletion{Id: s, Choices: []*openaiv1.ChatCompletionChoice{{Message: &openaiv1.ResponseMessage{Content: &s, Refusal: &s}}}},
		&openaiv1.ChatCompletionChunk{Id: s, Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: &s}}}},
		&openaiv1.EmbeddingRequest{Model: s, Input: &openaiv1.EmbeddingInput{Kind: &openaiv1.EmbeddingInput_TokenLists{
			TokenLists: &openaiv1.TokenLists{Values: []*openaiv1.TokenList{{Values: []int64{math.MinInt64, math.MaxInt64}}, nil}},
		}}},
		&openaiv1.EmbeddingList{Data: []*openaiv1.Embedding{{Embedding: []float32{math.MaxFloat32, math.SmallestNonzeroFloat32, -1e-30}}}},
		&openaiv1.ModelList{Data: []*openaiv1.Model{{Id: s}, nil}},
	} {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", m, err)
		}
		if !json.Valid(b) {
			t.Errorf("Marshal(%T) is not valid JSON: %s", m, b)
		}
	}
}
