package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reply is one finished HTTP exchange, read whole by a goroutine.
type reply struct {
	status int
	body   string
	err    error
}

// send posts body to url with headers and reads the whole answer; safe to
// call from any goroutine.
func send(ctx context.Context, url, body string, headers map[string]string) reply {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b), err: err}
}

// short is the start of s, for failure messages.
func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// sendAll sends n copies of body at once and returns their replies.
func sendAll(ctx context.Context, n int, url, body string) []reply {
	out := make([]reply, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i] = send(ctx, url, body, nil) })
	}
	wg.Wait()
	return out
}

// With the default settings a burst of streams many times a node's
// in-flight cap all complete: they wait in the router's queue for as long
// as a node would have kept them in its own (here longer than the old
// fixed 10 s -queue-wait), while the node never has more than its cap.
func TestBurstBeyondTheCapCompletesWithDefaults(t *testing.T) {
	// Each answer takes about 1.4 s; the last of 10 waits about 12.6 s.
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 8, TokenDelay: 175 * time.Millisecond})
	n.MaxInFlight = 1
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{})

	const burst = 10
	for i, r := range sendAll(meshtest.Context(t, 2*time.Minute), burst, m.RESTURL+"/v1/chat/completions", streamM) {
		require.NoError(t, r.err, "request %d", i)
		require.Equal(t, http.StatusOK, r.status, "request %d: %s", i, short(r.body))
		assert.True(t, strings.HasSuffix(r.body, "data: [DONE]\n\n"), "request %d: %s", i, short(r.body))
	}
	assert.Equal(t, int64(burst), n.Stats().Requests["POST /v1/chat/completions"])
	assert.Equal(t, int64(1), n.Stats().PeakInFlight, "the node's cap held")
}

// The OpenAI SDKs' x-stainless-timeout is the client's deadline: a
// request that cannot get a slot within it gives up then (504), and a
// client that has given up gets no work sent to a node.
func TestClientTimeoutBoundsTheWait(t *testing.T) {
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 1000, TokenDelay: 10 * time.Millisecond})
	n.MaxInFlight = 1
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := post(t, ctx, m.RESTURL+"/v1/chat/completions", streamM) // takes the node's one slot
	require.Equal(t, http.StatusOK, hold.StatusCode)

	for _, body := range []string{chatM, streamM} {
		r := send(meshtest.Context(t, time.Minute), m.RESTURL+"/v1/chat/completions", body, map[string]string{"X-Stainless-Timeout": "1"})
		require.NoError(t, r.err)
		assert.Equal(t, http.StatusGatewayTimeout, r.status, short(r.body))
		assert.Contains(t, short(r.body), "client's timeout of 1s")
	}
	assert.Equal(t, int64(1), n.Stats().Requests["POST /v1/chat/completions"], "only the held request reached the node")
}

// Streams waiting for the first token of a node that has hung move to
// another node the moment the node leaves rotation for not answering —
// whether healthmon declares it down or another request finds it hung —
// instead of waiting out their first-token timeout (an hour here). Their
// clients had received nothing, so they see one whole answer.
func TestWaitingStreamsLeaveAHungNode(t *testing.T) {
	for _, how := range []string{"healthmon", "breaker"} {
		t.Run(how, func(t *testing.T) {
			hung := meshtest.StartNode(t, "hung", simnode.Config{Models: []string{"m"}, Tokens: 2, Faults: simnode.Faults{Hang: true}})
			good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}, Tokens: 2})
			m := meshtest.Start(t, bins, []*meshtest.Node{hung, good}, meshtest.Options{RouterArgs: []string{
				"-policy", "round-robin", "-node-limits", "first-token=1h,cold-first-token=1h", "-breaker-cooldown", "1h"}})

			const streams = 4
			done := make(chan []reply, 1)
			go func() {
				done <- sendAll(meshtest.Context(t, 2*time.Minute), streams, m.RESTURL+"/v1/chat/completions", streamM)
			}()
			// Round robin: half the streams wait on the hung node.
			require.Eventually(t, func() bool { return hung.Stats().InFlight == streams/2 }, 30*time.Second, 10*time.Millisecond)

			switch how {
			case "healthmon": // its probes now fail: healthmon declares it down
				hung.SetFaults(simnode.Faults{Hang: true, ProbeStatus: http.StatusInternalServerError})
			case "breaker": // the next request on it finds the node not answering
				hung.SetFaults(simnode.Faults{FailAfterTokens: 1})
				// Round robin sends one of the next two requests there.
				for range 2 {
					r := send(meshtest.Context(t, time.Minute), m.RESTURL+"/v1/chat/completions", chatM, nil)
					require.NoError(t, r.err)
					require.Equal(t, http.StatusOK, r.status, "the failed request moves on too: %s", short(r.body))
				}
				require.Equal(t, int64(streams/2+1), hung.Stats().Requests["POST /v1/chat/completions"])
			}
			for i, r := range <-done {
				require.NoError(t, r.err, "stream %d", i)
				require.Equal(t, http.StatusOK, r.status, "stream %d: %s", i, short(r.body))
				assert.True(t, strings.Contains(r.body, "simnode-good") && !strings.Contains(r.body, "simnode-hung"),
					"stream %d was answered by the good node: %s", i, short(r.body))
				assert.True(t, strings.HasSuffix(r.body, "data: [DONE]\n\n"), "stream %d: %s", i, short(r.body))
			}
			require.Eventually(t, func() bool { return hung.Stats().InFlight == 0 }, 10*time.Second, 10*time.Millisecond,
				"the hung node's requests were cancelled there")
			assert.Equal(t, int64(streams/2), hung.Stats().Canceled)
		})
	}
}
