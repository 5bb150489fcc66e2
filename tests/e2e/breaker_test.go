package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// probes counts the health probes a node has had (its GET requests).
func probes(n *meshtest.Node) int64 {
	var sum int64
	for k, v := range n.Stats().Requests {
		if strings.HasPrefix(k, "GET ") {
			sum += v
		}
	}
	return sum
}

// outOfRotation says whether the router has id out of rotation.
func outOfRotation(t *testing.T, m *meshtest.Mesh, id string) bool {
	t.Helper()
	nodes, err := m.RouterNodes()
	require.NoError(t, err)
	return nodes[id].OutOfRotation
}

// streamedBy sends a streamed chat and asserts node answered it whole.
func streamedBy(t *testing.T, m *meshtest.Mesh, node string) {
	t.Helper()
	resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", streamM)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := events(t, resp.Body)
	require.NotEmpty(t, evs)
	assert.Equal(t, "[DONE]", evs[len(evs)-1])
	assert.Contains(t, evs[0], "simnode-"+node)
}

// A hung node costs one request its first-token timeout and then stays
// out of rotation, although healthmon, told of it, keeps probing it and
// finding its cheap endpoints serving: requests after those probes do
// not go to it.
func TestHungNodeStaysOutWhileProbesPass(t *testing.T) {
	hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"m"}, Faults: simnode.Faults{Hang: true}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=1s", "-breaker-cooldown", "1h"}})
	for range 2 { // round robin: one of them lands on the hung node and moves on
		streamedBy(t, m, "good")
	}
	require.Equal(t, int64(1), hung.Stats().Requests["POST /v1/chat/completions"])
	assert.True(t, outOfRotation(t, m, "hung"))

	// healthmon probes it (at once, told by the router, then every 100ms)
	// and finds it serving.
	seen := probes(hung)
	require.Eventually(t, func() bool { return probes(hung) >= seen+3 }, 10*time.Second, 10*time.Millisecond)
	for range 4 {
		streamedBy(t, m, "good")
		seen = probes(hung) // a probe between requests
		require.Eventually(t, func() bool { return probes(hung) > seen }, 10*time.Second, 10*time.Millisecond)
	}
	assert.True(t, outOfRotation(t, m, "hung"), "still out after the probes")
	assert.Equal(t, int64(1), hung.Stats().Requests["POST /v1/chat/completions"], "the hung node got one request")
}

// A hung node comes back once it answers again: after the cool-down a
// trial request goes to it, and its success brings it back in rotation.
func TestHungNodeComesBackThroughATrial(t *testing.T) {
	hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"m"}, Tokens: 2, Faults: simnode.Faults{Hang: true}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=500ms", "-breaker-cooldown", "1s"}})
	for range 2 {
		streamedBy(t, m, "good")
	}
	require.True(t, outOfRotation(t, m, "hung"))
	hung.SetFaults(simnode.Faults{})

	deadline := time.Now().Add(30 * time.Second)
	for hung.Stats().Requests["POST /v1/chat/completions"] < 2 || outOfRotation(t, m, "hung") {
		require.True(t, time.Now().Before(deadline), "the recovered node never came back")
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", streamM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		evs := events(t, resp.Body)
		require.Equal(t, "[DONE]", evs[len(evs)-1])
		time.Sleep(50 * time.Millisecond)
	}
	// Back in rotation: round robin sends it its share again.
	before := hung.Stats().Requests["POST /v1/chat/completions"]
	for range 4 {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp.Body.Close()
	}
	assert.Equal(t, before+2, hung.Stats().Requests["POST /v1/chat/completions"])
}

// A node that drops the connection in the middle of a streamed answer
// ends that stream with an error event (never retried: the client has
// output), is out of rotation, and is reported to healthmon, whose probe
// (the only one: probes are hourly here) does not bring it back.
func TestDroppedStreamNodeIsOutAndReported(t *testing.T) {
	flaky := meshtest.StartNode(t, "flaky", simnode.Config{Models: []string{"m"}, Tokens: 6, Faults: simnode.Faults{FailAfterTokens: 2}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{flaky, good}, meshtest.Options{
		RouterArgs:    []string{"-policy", "round-robin", "-breaker-cooldown", "1h"},
		HealthmonArgs: []string{"-probe-interval", "1h"}})
	seen := probes(flaky)
	broken := 0
	for range 2 { // round robin: one of them lands on the flaky node
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", streamM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		evs := events(t, resp.Body)
		if strings.Contains(evs[0], "simnode-good") {
			assert.Equal(t, "[DONE]", evs[len(evs)-1])
			continue
		}
		broken++
		require.Len(t, evs, 3, "two chunks, then the error event: %q", evs)
		var e errorBody
		require.NoError(t, json.Unmarshal([]byte(evs[2]), &e))
		assert.Contains(t, e.Error.Message, "flaky")
	}
	require.Equal(t, 1, broken)
	assert.True(t, outOfRotation(t, m, "flaky"))
	require.Eventually(t, func() bool { return probes(flaky) > seen }, 10*time.Second, 10*time.Millisecond,
		"healthmon was told and probed the node")
	for range 4 {
		streamedBy(t, m, "good")
	}
	assert.True(t, outOfRotation(t, m, "flaky"), "a good probe does not bring back a node that broke its answer off")
	assert.Equal(t, int64(1), flaky.Stats().Requests["POST /v1/chat/completions"])
}

// An embedding sent to a hung node waits for its answer at most the
// first-token timeout, not the total one (30 min), then moves on to
// another node before anything reached the client; the hung node is out
// of rotation. The same holds on the Ollama edge's /api/embed.
func TestEmbeddingOnAHungNodeFailsOver(t *testing.T) {
	hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"e"}, Faults: simnode.Faults{Hang: true}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"e"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=1s", "-breaker-cooldown", "1h"}})
	for range 2 {
		resp := post(t, meshtest.Context(t, 15*time.Second), m.RESTURL+"/v1/embeddings", `{"model":"e","input":"hello"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list struct {
			Data []struct{ Embedding []float32 }
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		require.Len(t, list.Data, 1)
		assert.NotEmpty(t, list.Data[0].Embedding)
	}
	assert.Equal(t, int64(1), hung.Stats().Requests["POST /v1/embeddings"], "the hung node got one request")
	assert.Equal(t, int64(2), good.Stats().Requests["POST /v1/embeddings"])
	assert.True(t, outOfRotation(t, m, "hung"))

	// The Ollama edge: a fresh mesh, so the hung node is in rotation again.
	m = meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-node-limits", "first-token=1s", "-breaker-cooldown", "1h"}})
	for range 2 {
		resp := post(t, meshtest.Context(t, 15*time.Second), m.RESTURL+"/api/embed", `{"model":"e","input":"hello"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var out struct{ Embeddings [][]float32 }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Len(t, out.Embeddings, 1)
	}
	assert.Equal(t, int64(1), hung.Stats().Requests["POST /api/embed"], "the hung node got one request")
	assert.True(t, outOfRotation(t, m, "hung"))
}
