package nodespec

import (
	"testing"

	"github.com/stretchr/testify/assert"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      nodev1.Kind
		recognize bool
		ok        bool
	}{
		{"", nodev1.Kind_KIND_OPENAI, true, true},
		{"auto", nodev1.Kind_KIND_OPENAI, true, true},
		{"ollama", nodev1.Kind_KIND_OLLAMA, false, true},
		{"llamacpp", nodev1.Kind_KIND_LLAMACPP, false, true},
		{"anthropic", nodev1.Kind_KIND_ANTHROPIC, false, true},
		{"Ollama", nodev1.Kind_KIND_UNSPECIFIED, false, false},
		{"llama.cpp", nodev1.Kind_KIND_UNSPECIFIED, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, recognize, ok := ParseKind(tc.name)
			assert.Equal(t, tc.ok, ok)
			if ok {
				assert.Equal(t, tc.kind, kind)
				assert.Equal(t, tc.recognize, recognize)
			}
		})
	}
}

// Every kind's name reads back as that kind, and every kind in the enum
// but the unspecified one has a name.
func TestKindNameRoundTrip(t *testing.T) {
	for v := range nodev1.Kind_name {
		k := nodev1.Kind(v)
		if k == nodev1.Kind_KIND_UNSPECIFIED {
			assert.Equal(t, "unspecified", KindName(k))
			continue
		}
		got, recognize, ok := ParseKind(KindName(k))
		assert.True(t, ok, "kind %s", k)
		assert.False(t, recognize)
		assert.Equal(t, k, got)
	}
	assert.Equal(t, KindAuto, KindOf(&nodev1.Node{Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true}))
	assert.Equal(t, "vllm", KindOf(&nodev1.Node{Kind: nodev1.Kind_KIND_VLLM}))
}
