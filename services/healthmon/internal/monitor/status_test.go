package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func statusRes(s nodev1.Status, reason string) *nodev1.ProbeResult {
	return &nodev1.ProbeResult{Status: s, Reason: reason}
}

// A node that refuses the credentials is MISCONFIGURED at once, even from
// up (no Fall count: probing again will not fix a key), and not DOWN.
func TestMisconfiguredAtOnce(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	const why = "401 from https://api.example.com/v1/models: invalid API key — check OPENAI_API_KEY"
	p.step(t, "a", statusRes(nodev1.Status_STATUS_MISCONFIGURED, why), nil)
	st := nextState(t, ch)
	assert.Equal(t, nodev1.Status_STATUS_MISCONFIGURED, st.GetStatus())
	assert.Equal(t, why, st.GetReason())

	// Fixed: it comes back up after Rise successes, as from down.
	for range testCfg.Rise - 1 {
		p.step(t, "a", upRes("m1"), nil)
		assert.Equal(t, nodev1.Status_STATUS_MISCONFIGURED, stateOf(t, m, "a").GetStatus())
	}
	p.step(t, "a", upRes("m1"), nil)
	assert.Equal(t, nodev1.Status_STATUS_UP, nextState(t, ch).GetStatus())
}

// A loading node is out of rotation at once, and its loading probes do
// not count toward taking it down.
func TestLoadingIsNotAFailure(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	p.step(t, "a", upRes("m1"), nil)
	ch, _ := watch(t, m)
	require.True(t, next(t, ch).GetSnapshot())

	p.step(t, "a", statusRes(nodev1.Status_STATUS_LOADING, "llamacpp: loading the model"), nil)
	st := nextState(t, ch)
	assert.Equal(t, nodev1.Status_STATUS_LOADING, st.GetStatus())
	assert.Equal(t, []string{"m1"}, modelIDs(st), "it keeps the models it had")
	for range testCfg.Fall + 1 {
		p.step(t, "a", statusRes(nodev1.Status_STATUS_LOADING, "llamacpp: loading the model"), nil)
	}
	assert.Equal(t, nodev1.Status_STATUS_LOADING, stateOf(t, m, "a").GetStatus())

	// A loading node that stops answering is down at once: it was out anyway.
	p.step(t, "a", downRes("connect: connection refused"), nil)
	assert.Equal(t, nodev1.Status_STATUS_DOWN, nextState(t, ch).GetStatus())
}

// A new load on an up node is published (routers may use it); the same
// load is not.
func TestLoadChangesArePublished(t *testing.T) {
	m, p, _ := newMonitor(t, testCfg, node("a"))
	withLoad := func(running int32) *nodev1.ProbeResult {
		r := upRes("m1")
		r.Load = &nodev1.NodeLoad{RequestsRunning: &running}
		return r
	}
	p.step(t, "a", withLoad(1), nil)
	ch, _ := watch(t, m)
	snap := next(t, ch)
	require.True(t, snap.GetSnapshot())
	assert.EqualValues(t, 1, snap.GetNodes()[0].GetLoad().GetRequestsRunning())

	p.step(t, "a", withLoad(1), nil)
	p.step(t, "a", withLoad(4), nil)
	st := nextState(t, ch) // the unchanged load published nothing before it
	assert.True(t, proto.Equal(&nodev1.NodeLoad{RequestsRunning: proto.Int32(4)}, st.GetLoad()))
	assert.Equal(t, nodev1.Status_STATUS_UP, st.GetStatus())
}
