// Package tinygguf writes a tiny, deterministic llama-architecture model in
// GGUF v3 — about 500 KB — that a real Ollama imports with `ollama create`
// (FROM ./tiny.gguf) and runs at real speed: chat, streaming, embeddings,
// /api/ps, cold loads. The text it generates is noise; what matters to the
// tests is that every code path of a real node is exercised.
//
// # Format choices
//
//   - GGUF v3, little-endian, 32-byte alignment (the default; no
//     general.alignment key), every tensor F32 (general.file_type 0), so no
//     quantisation code is involved.
//   - general.architecture = "llama" with small hyper-parameters: embedding
//     64, 2 blocks, 4 heads (and 4 KV heads), feed-forward 128, context 256,
//     rope dimension 16 (the head size), RMS-norm epsilon 1e-5.
//   - A SentencePiece-style vocabulary (tokenizer.ggml.model = "llama"):
//     <unk> (type 2, unknown), <s> and </s> (type 3, control; BOS 1, EOS 2),
//     the 256 byte-fallback tokens <0x00>…<0xFF> (type 6, byte) so any text
//     tokenises, then normal pieces (type 1) — ASCII letters, digits,
//     punctuation and a few common words, each with and without the "▁"
//     word-start marker — with descending scores.
//   - Weights: RMS-norm weights are 1; every other tensor is drawn from
//     N(0, 0.02²) by a PCG generator seeded with Spec.Seed, so the same seed
//     gives the same bytes.
//   - No early end of text: every token embedding gets +Bias in hidden
//     dimension 0 and the </s> row of output.weight gets -Bias there, so
//     the logit of </s> is always far below the rest and generation runs
//     to max_tokens (or num_predict). Tests can then rely on the number of
//     tokens a request produces.
//
// Tensor shapes follow ggml's order (ne[0] first): token_embd [embd, vocab],
// attn_q/k/v/output [embd, embd], ffn_gate/up [embd, ff], ffn_down
// [ff, embd], output [embd, vocab], norms [embd].
package tinygguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
)

// Spec describes the model to write. The zero value of a field takes the
// default shown.
type Spec struct {
	Name      string  // general.name; "tiny"
	Seed      uint64  // weights' seed; 0 is a valid seed
	Embedding int     // 64
	Blocks    int     // 2
	Heads     int     // 4
	FeedFwd   int     // 128
	Context   int     // 256
	Bias      float32 // the </s>-suppressing constant; 8
	AllowEOS  bool    // false: suppress </s> so generation runs to max_tokens
}

func (s Spec) withDefaults() Spec {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if s.Name == "" {
		s.Name = "tiny"
	}
	def(&s.Embedding, 64)
	def(&s.Blocks, 2)
	def(&s.Heads, 4)
	def(&s.FeedFwd, 128)
	def(&s.Context, 256)
	if s.Bias == 0 {
		s.Bias = 8
	}
	return s
}

// GGUF value types used here.
const (
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
)

// Token types of tokenizer.ggml.token_type.
const (
	tokenNormal  = 1
	tokenUnknown = 2
	tokenControl = 3
	tokenByte    = 6
)

const (
	alignment = 32
	ggmlF32   = 0
)

// Vocabulary returns the tokens, their scores and types, in id order.
func Vocabulary() (tokens []string, scores []float32, types []int32) {
	add := func(t string, score float32, typ int32) {
		tokens = append(tokens, t)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, tokenUnknown)
	add("<s>", 0, tokenControl)
	add("</s>", 0, tokenControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenByte)
	}
	var pieces []string
	for _, w := range []string{"the", "a", "and", "of", "to", "in", "is", "it", "hello", "world", "llm", "mesh", "node"} {
		pieces = append(pieces, "▁"+w, w)
	}
	for c := 'a'; c <= 'z'; c++ {
		pieces = append(pieces, "▁"+string(c), string(c))
	}
	for _, c := range "0123456789.,!?'-" {
		pieces = append(pieces, string(c))
	}
	pieces = append(pieces, "▁")
	// llama.cpp refuses a vocabulary with a token twice ("a" is both a word
	// and a letter here), so the first occurrence wins.
	seen := map[string]bool{}
	for _, p := range pieces {
		if !seen[p] {
			seen[p] = true
			add(p, -float32(len(seen)), tokenNormal)
		}
	}
	return tokens, scores, types
}

// Write writes the model described by spec to w.
func Write(w io.Writer, spec Spec) error {
	spec = spec.withDefaults()
	if spec.Embedding%spec.Heads != 0 {
		return fmt.Errorf("embedding %d is not a multiple of heads %d", spec.Embedding, spec.Heads)
	}
	tokens, scores, types := Vocabulary()
	m := &model{spec: spec, vocab: len(tokens)}
	m.plan()

	bw := bufio.NewWriter(w)
	e := &enc{w: bw}
	e.raw([]byte("GGUF"))
	e.u32(3)
	e.u64(uint64(len(m.tensors)))
	kv := m.metadata(tokens, scores, types)
	e.u64(uint64(len(kv)))
	for _, f := range kv {
		f(e)
	}
	var offset uint64
	for _, t := range m.tensors {
		e.str(t.name)
		e.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			e.u64(uint64(d))
		}
		e.u32(ggmlF32)
		e.u64(offset)
		offset = align(offset + uint64(4*t.size()))
	}
	e.pad()
	rng := rand.New(rand.NewPCG(spec.Seed, 0x6767_7566)) // "gguf"
	for _, t := range m.tensors {
		for _, v := range m.values(t, rng) {
			e.u32(math.Float32bits(v))
		}
		e.pad()
	}
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

type tensor struct {
	name string
	dims []int
	norm bool // RMS-norm weights: all ones
}

func (t tensor) size() int {
	n := 1
	for _, d := range t.dims {
		n *= d
	}
	return n
}

type model struct {
	spec    Spec
	vocab   int
	tensors []tensor
}

func (m *model) plan() {
	s := m.spec
	add := func(name string, norm bool, dims ...int) {
		m.tensors = append(m.tensors, tensor{name: name, dims: dims, norm: norm})
	}
	add("token_embd.weight", false, s.Embedding, m.vocab)
	for i := range s.Blocks {
		p := fmt.Sprintf("blk.%d.", i)
		add(p+"attn_norm.weight", true, s.Embedding)
		add(p+"attn_q.weight", false, s.Embedding, s.Embedding)
		add(p+"attn_k.weight", false, s.Embedding, s.Embedding)
		add(p+"attn_v.weight", false, s.Embedding, s.Embedding)
		add(p+"attn_output.weight", false, s.Embedding, s.Embedding)
		add(p+"ffn_norm.weight", true, s.Embedding)
		add(p+"ffn_gate.weight", false, s.Embedding, s.FeedFwd)
		add(p+"ffn_up.weight", false, s.Embedding, s.FeedFwd)
		add(p+"ffn_down.weight", false, s.FeedFwd, s.Embedding)
	}
	add("output_norm.weight", true, s.Embedding)
	add("output.weight", false, s.Embedding, m.vocab)
}

// values draws t's weights, applying the </s> suppression.
func (m *model) values(t tensor, rng *rand.Rand) []float32 {
	out := make([]float32, t.size())
	for i := range out {
		if t.norm {
			out[i] = 1
		} else {
			out[i] = float32(rng.NormFloat64() * 0.02)
		}
	}
	if m.spec.AllowEOS {
		return out
	}
	embd := m.spec.Embedding
	switch t.name {
	case "token_embd.weight":
		for tok := range m.vocab {
			out[tok*embd] += m.spec.Bias // row tok, hidden dimension 0
		}
	case "output.weight":
		const eos = 2
		out[eos*embd] = -m.spec.Bias
	}
	return out
}

func (m *model) metadata(tokens []string, scores []float32, types []int32) []func(*enc) {
	s := m.spec
	str := func(k, v string) func(*enc) {
		return func(e *enc) { e.str(k); e.u32(typeString); e.str(v) }
	}
	u32 := func(k string, v int) func(*enc) {
		return func(e *enc) { e.str(k); e.u32(typeUint32); e.u32(uint32(v)) }
	}
	f32 := func(k string, v float32) func(*enc) {
		return func(e *enc) { e.str(k); e.u32(typeFloat32); e.u32(math.Float32bits(v)) }
	}
	boolean := func(k string, v bool) func(*enc) {
		return func(e *enc) {
			e.str(k)
			e.u32(typeBool)
			if v {
				e.raw([]byte{1})
			} else {
				e.raw([]byte{0})
			}
		}
	}
	return []func(*enc){
		str("general.architecture", "llama"),
		str("general.name", s.Name),
		u32("general.file_type", 0),
		u32("llama.context_length", s.Context),
		u32("llama.embedding_length", s.Embedding),
		u32("llama.block_count", s.Blocks),
		u32("llama.feed_forward_length", s.FeedFwd),
		u32("llama.attention.head_count", s.Heads),
		u32("llama.attention.head_count_kv", s.Heads),
		u32("llama.rope.dimension_count", s.Embedding/s.Heads),
		f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
		u32("llama.vocab_size", len(tokens)),
		str("tokenizer.ggml.model", "llama"),
		func(e *enc) {
			e.str("tokenizer.ggml.tokens")
			e.u32(typeArray)
			e.u32(typeString)
			e.u64(uint64(len(tokens)))
			for _, t := range tokens {
				e.str(t)
			}
		},
		func(e *enc) {
			e.str("tokenizer.ggml.scores")
			e.u32(typeArray)
			e.u32(typeFloat32)
			e.u64(uint64(len(scores)))
			for _, v := range scores {
				e.u32(math.Float32bits(v))
			}
		},
		func(e *enc) {
			e.str("tokenizer.ggml.token_type")
			e.u32(typeArray)
			e.u32(typeInt32)
			e.u64(uint64(len(types)))
			for _, v := range types {
				e.u32(uint32(v))
			}
		},
		u32("tokenizer.ggml.unknown_token_id", 0),
		u32("tokenizer.ggml.bos_token_id", 1),
		u32("tokenizer.ggml.eos_token_id", 2),
		boolean("tokenizer.ggml.add_bos_token", true),
		boolean("tokenizer.ggml.add_eos_token", false),
	}
}

// enc writes little-endian GGUF values, remembering the first error and
// the position (for alignment).
type enc struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *enc) raw(b []byte) {
	if e.err != nil {
		return
	}
	var n int
	n, e.err = e.w.Write(b)
	e.n += uint64(n)
}

func (e *enc) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.raw(e.buf[:4])
}

func (e *enc) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.raw(e.buf[:8])
}

func (e *enc) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

func (e *enc) pad() {
	if p := align(e.n) - e.n; p > 0 {
		e.raw(make([]byte, p))
	}
}

func align(n uint64) uint64 { return (n + alignment - 1) / alignment * alignment }
