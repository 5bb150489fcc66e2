package monitor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// probed is the node the latest probe of id was asked about (the probe
// after the last step is waiting for its result).
func (p *fakeProber) probed(id string) *nodev1.Node {
	q := p.queue(id)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.probed
}

func recognized(res *nodev1.ProbeResult, kind nodev1.Kind, base string) *nodev1.ProbeResult {
	res.RecognizedKind, res.RecognizedBaseUrl = kind, base
	return res
}

// TestRecognizedKind: a node whose kind is to be recognised is streamed
// as what its probe recognised, probed as that kind afterwards, and
// recognised again when a probe of it fails.
func TestRecognizedKind(t *testing.T) {
	configured := &nodev1.Node{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://h:11434/v1", RecognizeKind: true}
	m, p, l := newMonitor(t, testCfg, configured)
	ch, _ := watch(t, m)
	snap := next(t, ch)
	require.True(t, snap.GetSnapshot())
	require.Len(t, snap.GetNodes(), 1)
	assert.False(t, snap.GetNodes()[0].GetKindRecognized(), "not probed yet")

	p.step(t, "openai", recognized(upRes("tiny:latest"), nodev1.Kind_KIND_OLLAMA, "http://h:11434"), nil)
	st := nextState(t, ch)
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
	assert.True(t, st.GetKindRecognized())
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, st.GetNode().GetKind())
	assert.Equal(t, "http://h:11434", st.GetNode().GetBaseUrl())
	assert.True(t, st.GetNode().GetRecognizeKind(), "still says its kind was not configured")
	assert.Equal(t, 1, l.count("node kind recognised"))

	// Recognised: probed as Ollama, without asking again.
	steady := p.probed("openai")
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, steady.GetKind())
	assert.Equal(t, "http://h:11434", steady.GetBaseUrl())
	assert.False(t, steady.GetRecognizeKind())
	p.step(t, "openai", upRes("tiny:latest"), nil)
	assert.False(t, p.probed("openai").GetRecognizeKind())

	// The same nodes again change nothing: the node keeps its kind.
	m.SetNodes(context.Background(), []*nodev1.Node{proto.CloneOf(configured)})
	require.Len(t, m.States(), 1)
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, m.States()[0].GetNode().GetKind())

	// A failed probe: the next one recognises again, starting from Ollama.
	p.step(t, "openai", downRes("connect: connection refused"), nil)
	again := p.probed("openai")
	assert.True(t, again.GetRecognizeKind())
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, again.GetKind())
	p.step(t, "openai", recognized(upRes("Qwen/Qwen3-8B"), nodev1.Kind_KIND_VLLM, "http://h:11434"), nil)
	st = nextState(t, ch)
	assert.Equal(t, nodev1.Kind_KIND_VLLM, st.GetNode().GetKind())
	assert.Equal(t, []string{"Qwen/Qwen3-8B"}, modelIDs(st))
	assert.Equal(t, 2, l.count("node kind recognised"))
	assert.False(t, p.probed("openai").GetRecognizeKind())
}

// TestExplicitKindIsNotRecognised: a probe result naming a kind changes
// nothing for a node whose kind was configured.
func TestExplicitKindIsNotRecognised(t *testing.T) {
	m, p, l := newMonitor(t, testCfg, node("a"))
	ch, _ := watch(t, m)
	next(t, ch)
	p.step(t, "a", recognized(upRes("m"), nodev1.Kind_KIND_VLLM, "http://a:11434"), nil)
	st := nextState(t, ch)
	assert.Equal(t, nodev1.Kind_KIND_OLLAMA, st.GetNode().GetKind())
	assert.False(t, st.GetKindRecognized())
	assert.Zero(t, l.count("node kind recognised"))
}
