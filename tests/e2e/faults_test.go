package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const chatM = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
const streamM = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// A node answering 503 "server busy" is alive, but its requests move on to
// another node before anything reaches the client, streamed or not.
func TestBusyNodeRequestsMoveOn(t *testing.T) {
	busy := meshtest.StartNode(t, "busy", simnode.Config{Models: []string{"m"}, Faults: simnode.Faults{Status: http.StatusServiceUnavailable}})
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{busy, good}, meshtest.Options{RouterArgs: []string{"-policy", "round-robin"}})
	for range 4 {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "good", answeredBy(t, resp))

		resp = post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", streamM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		evs := events(t, resp.Body)
		require.NotEmpty(t, evs)
		assert.Contains(t, evs[0], "simnode-good")
		assert.Equal(t, "[DONE]", evs[len(evs)-1])
	}
	assert.Positive(t, busy.Stats().Requests["POST /v1/chat/completions"], "the busy node was tried")
}

// A node that must load the model first gets the long cold first-token
// timeout, not the short one for loaded models; and while a node with the
// model loaded is up, requests go there.
func TestColdNodeSlowToFirstToken(t *testing.T) {
	limits := []string{"-node-limits", "first-token=200ms,cold-first-token=30s"}
	cold := meshtest.StartNode(t, "cold", simnode.Config{Models: []string{"m"}, Loaded: []string{}, Tokens: 2, FirstTokenDelay: 600 * time.Millisecond})
	m := meshtest.Start(t, bins, []*meshtest.Node{cold}, meshtest.Options{RouterArgs: limits})
	resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", streamM)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := events(t, resp.Body)
	assert.Equal(t, "[DONE]", evs[len(evs)-1], "the cold load is waited for: %q", evs)
	resp = post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "cold", answeredBy(t, resp))

	warm := meshtest.StartNode(t, "warm", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m = meshtest.Start(t, bins, []*meshtest.Node{cold, warm}, meshtest.Options{RouterArgs: limits})
	before := cold.Stats().Requests["POST /v1/chat/completions"]
	for range 6 {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "warm", answeredBy(t, resp))
	}
	assert.Equal(t, before, cold.Stats().Requests["POST /v1/chat/completions"], "the cold node got nothing while the warm one was free")
}

// A node that died and came back is used again — even with a breaker
// cool-down far longer than the test: the next good probe brings it back.
func TestNodeRecovers(t *testing.T) {
	a := meshtest.StartNode(t, "a", simnode.Config{Models: []string{"m"}, Tokens: 2})
	b := meshtest.StartNode(t, "b", simnode.Config{Models: []string{"m"}, Tokens: 2})
	m := meshtest.Start(t, bins, []*meshtest.Node{a, b}, meshtest.Options{
		RouterArgs: []string{"-policy", "round-robin", "-breaker-cooldown", "1h"}})
	a.Kill()
	for range 6 {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "b", answeredBy(t, resp))
	}
	a.Restart(t)
	require.Eventually(t, func() bool {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
		return resp.StatusCode == http.StatusOK && answeredBy(t, resp) == "a"
	}, 20*time.Second, 50*time.Millisecond, "the recovered node never got a request again")
}

// When every node serving the model is at its in-flight cap and the wait
// queue is full, the request is refused at once: 429 in OpenAI's shape
// with Retry-After — never queued without bound.
func TestSaturatedNodesAnswer429(t *testing.T) {
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 1000, TokenDelay: 10 * time.Millisecond})
	n.MaxInFlight = 1
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{RouterArgs: []string{"-queue-size", "0"}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := post(t, ctx, m.RESTURL+"/v1/chat/completions", streamM) // takes the node's one slot
	require.Equal(t, http.StatusOK, hold.StatusCode)
	line, err := bufio.NewReader(hold.Body).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "data: "), line)

	resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", chatM)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	e := decodeError(t, resp)
	assert.Equal(t, "rate_limit_error", e.Error.Type)
	assert.Contains(t, e.Error.Message, `model "m"`)

	cancel() // the slot frees: requests are admitted again
	require.Eventually(t, func() bool {
		resp := post(t, meshtest.Context(t, 10*time.Second), m.RESTURL+"/v1/chat/completions", `{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
}
