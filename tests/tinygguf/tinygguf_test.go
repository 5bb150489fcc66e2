package tinygguf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reader is a minimal GGUF v3 reader, enough to check what Write wrote.
type reader struct {
	r   *bytes.Reader
	err error
}

func (r *reader) u32() uint32 {
	var v uint32
	if r.err == nil {
		r.err = binary.Read(r.r, binary.LittleEndian, &v)
	}
	return v
}

func (r *reader) u64() uint64 {
	var v uint64
	if r.err == nil {
		r.err = binary.Read(r.r, binary.LittleEndian, &v)
	}
	return v
}

func (r *reader) str() string {
	n := r.u64()
	b := make([]byte, n)
	if r.err == nil {
		_, r.err = io.ReadFull(r.r, b)
	}
	return string(b)
}

func (r *reader) value(typ uint32) any {
	switch typ {
	case typeUint32:
		return r.u32()
	case typeInt32:
		return int32(r.u32())
	case typeFloat32:
		return math.Float32frombits(r.u32())
	case typeBool:
		b, _ := r.r.ReadByte()
		return b == 1
	case typeString:
		return r.str()
	case typeArray:
		et, n := r.u32(), r.u64()
		out := make([]any, n)
		for i := range out {
			out[i] = r.value(et)
		}
		return out
	}
	r.err = io.ErrUnexpectedEOF
	return nil
}

type tensorInfo struct {
	dims   []uint64
	typ    uint32
	offset uint64
}

func parse(t *testing.T, data []byte) (map[string]any, map[string]tensorInfo, []string, int64) {
	t.Helper()
	r := &reader{r: bytes.NewReader(data)}
	magic := make([]byte, 4)
	_, _ = r.r.Read(magic)
	require.Equal(t, "GGUF", string(magic))
	require.Equal(t, uint32(3), r.u32())
	nt, nkv := r.u64(), r.u64()
	kv := map[string]any{}
	for range nkv {
		k := r.str()
		kv[k] = r.value(r.u32())
	}
	tensors := map[string]tensorInfo{}
	var order []string
	for range nt {
		name := r.str()
		nd := r.u32()
		ti := tensorInfo{dims: make([]uint64, nd)}
		for i := range ti.dims {
			ti.dims[i] = r.u64()
		}
		ti.typ, ti.offset = r.u32(), r.u64()
		tensors[name] = ti
		order = append(order, name)
	}
	require.NoError(t, r.err)
	pos := int64(len(data)) - int64(r.r.Len())
	dataStart := int64(align(uint64(pos)))
	return kv, tensors, order, dataStart
}

func TestWriteIsAValidLlamaGGUF(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, Spec{Seed: 7}))
	data := buf.Bytes()
	kv, tensors, order, dataStart := parse(t, data)

	assert.Equal(t, "llama", kv["general.architecture"])
	assert.Equal(t, "llama", kv["tokenizer.ggml.model"])
	assert.Equal(t, uint32(64), kv["llama.embedding_length"])
	assert.Equal(t, uint32(2), kv["llama.block_count"])
	assert.Equal(t, uint32(16), kv["llama.rope.dimension_count"])
	tokens := kv["tokenizer.ggml.tokens"].([]any)
	types := kv["tokenizer.ggml.token_type"].([]any)
	require.Len(t, types, len(tokens))
	assert.Equal(t, []any{"<unk>", "<s>", "</s>", "<0x00>"}, tokens[:4])
	assert.Equal(t, int32(tokenByte), types[3+0xFF])
	assert.Equal(t, "<0xFF>", tokens[3+0xFF])

	require.Len(t, order, 1+2*9+2)
	vocab := uint64(len(tokens))
	assert.Equal(t, []uint64{64, vocab}, tensors["token_embd.weight"].dims)
	assert.Equal(t, []uint64{128, 64}, tensors["blk.1.ffn_down.weight"].dims)
	assert.Equal(t, []uint64{64, vocab}, tensors["output.weight"].dims)

	// Offsets are aligned, in order, and the data ends exactly at the file's end.
	var next uint64
	for _, name := range order {
		ti := tensors[name]
		assert.Equal(t, uint32(ggmlF32), ti.typ)
		assert.Equal(t, next, ti.offset, name)
		assert.Zero(t, ti.offset%alignment, name)
		n := uint64(4)
		for _, d := range ti.dims {
			n *= d
		}
		next = align(ti.offset + n)
	}
	assert.Equal(t, int64(len(data)), dataStart+int64(next))
	assert.Less(t, len(data), 700_000, "tiny means tiny")

	// </s> is suppressed: its output row has -Bias in dimension 0 and every
	// token embedding has +Bias there (plus small noise).
	f32 := func(tensor string, index uint64) float32 {
		off := dataStart + int64(tensors[tensor].offset) + int64(4*index)
		return math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
	}
	assert.Equal(t, float32(-8), f32("output.weight", 2*64))
	assert.InDelta(t, 8, f32("token_embd.weight", 100*64), 0.2)
	assert.Equal(t, float32(1), f32("output_norm.weight", 5))
}

func TestWriteIsDeterministic(t *testing.T) {
	sum := func(s Spec) [32]byte {
		var buf bytes.Buffer
		require.NoError(t, Write(&buf, s))
		return sha256.Sum256(buf.Bytes())
	}
	assert.Equal(t, sum(Spec{Seed: 1}), sum(Spec{Seed: 1}))
	assert.NotEqual(t, sum(Spec{Seed: 1}), sum(Spec{Seed: 2}))
	assert.NotEqual(t, sum(Spec{Seed: 1}), sum(Spec{Seed: 1, AllowEOS: true}))
}

func TestWriteRejectsBadShapes(t *testing.T) {
	assert.Error(t, Write(io.Discard, Spec{Embedding: 30, Heads: 4}))
}

func TestVocabularyHasNoDuplicates(t *testing.T) {
	tokens, scores, types := Vocabulary()
	require.Len(t, scores, len(tokens))
	require.Len(t, types, len(tokens))
	seen := map[string]int{}
	for i, tok := range tokens {
		if j, dup := seen[tok]; dup {
			t.Fatalf("token %q at ids %d and %d", tok, j, i)
		}
		seen[tok] = i
	}
}
