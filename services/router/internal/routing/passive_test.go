package routing

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/affinity"
	"github.com/llmesh/llmesh/services/router/internal/limits"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// A node that refuses a connection is out of rotation at once: the next
// requests do not even try it, whatever the policy would have chosen.
func TestRefusingNodeIsOutAtOnce(t *testing.T) {
	refused := &apierror.Error{Code: codes.Unavailable, Node: "f", Reason: apierror.ReasonUnreachable, Message: "connect: connection refused"}
	fake := &fakeAdapter{scripts: map[string]script{"f": {err: refused}, "g": {}}}
	r := New(table(node("f*"), node("g*")), serveAdapter(t, fake), Options{
		MaxAttempts: 3, Policy: policy.RoundRobinOrder, Stats: nodestats.New(time.Hour, nil),
	})
	for range 6 {
		_, err := r.Chat(context.Background(), chatReq())
		require.NoError(t, err)
	}
	calls := fake.Calls()
	f := 0
	for _, c := range calls {
		if c == "f" {
			f++
		}
	}
	assert.Equal(t, 1, f, "f was tried once, then kept out: %v", calls)
}

// A node refusing the mesh's credentials (401/403) fails every request:
// the request moves on, the node is out of rotation and healthmon hears
// of it (its probe then marks the node misconfigured).
func TestNodeRefusingCredentialsIsOut(t *testing.T) {
	for _, status := range []int{401, 403} {
		refused := &apierror.Error{Code: apierror.CodeForHTTPStatus(status), Node: "f", HTTPStatus: status, Reason: apierror.ReasonUpstream, Message: "invalid API key"}
		fake := &fakeAdapter{scripts: map[string]script{"f": {err: refused}, "g": {}}}
		var reported []string
		r := New(table(node("f*"), node("g*")), serveAdapter(t, fake), Options{
			MaxAttempts: 3, Policy: policy.RoundRobinOrder, Stats: nodestats.New(time.Hour, nil),
			OnNodeFailed: func(id, reason string) { reported = append(reported, id+": "+reason) },
		})
		for range 4 {
			_, err := r.Chat(context.Background(), chatReq())
			require.NoError(t, err)
		}
		f := 0
		for _, c := range fake.Calls() {
			if c == "f" {
				f++
			}
		}
		assert.Equal(t, 1, f, "status %d: f was tried once, then kept out: %v", status, fake.Calls())
		assert.Equal(t, []string{"f: invalid API key"}, reported)
	}
}

// A busy node (503 from the node itself) is alive: it stays in rotation.
func TestBusyNodeStaysIn(t *testing.T) {
	busy := &apierror.Error{Code: codes.Unavailable, Node: "f", HTTPStatus: 503, Reason: apierror.ReasonUpstream, Message: "server busy"}
	fake := &fakeAdapter{scripts: map[string]script{"f": {err: busy}, "g": {}}}
	r := New(table(node("f*"), node("g*")), serveAdapter(t, fake), Options{MaxAttempts: 3, Policy: policy.RoundRobinOrder})
	for range 4 {
		_, err := r.Chat(context.Background(), chatReq())
		require.NoError(t, err)
	}
	f := 0
	for _, c := range fake.Calls() {
		if c == "f" {
			f++
		}
	}
	assert.Equal(t, 2, f, "round robin leads with f every other request: %v", fake.Calls())
}

// Requests with a session key stick to one node.
func TestSessionKeyStaysOnOneNode(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}, "b": {}, "c": {}}}
	r := New(table(node("a*"), node("b*"), node("c*")), serveAdapter(t, fake), Options{})
	ctx := WithSessionKey(context.Background(), "conversation-7")
	for range 8 {
		_, err := r.Chat(ctx, chatReq())
		require.NoError(t, err)
	}
	calls := fake.Calls()
	require.Len(t, calls, 8)
	for _, c := range calls {
		assert.Equal(t, calls[0], c, "%v", calls)
	}
}

// A node that accepts a stream and never sends a token costs one request
// at most its first-token timeout: the request moves on and the node is
// out of rotation.
func TestHungNodeCostsOneFirstTokenTimeout(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{
		"h": {block: true},
		"g": {chunks: []*openaiv1.ChatCompletionChunk{{Choices: []*openaiv1.ChunkChoice{{Delta: &openaiv1.ChunkDelta{Content: text("hi")}}}}}},
	}}
	r := New(table(node("h*"), node("g*")), serveAdapter(t, fake), Options{
		MaxAttempts: 3, Policy: policy.RoundRobinOrder, Stats: nodestats.New(time.Hour, nil),
		Limits: limitsOf(t, "first-token=50ms,cold-first-token=1h"),
	})
	for range 4 {
		var got []string
		err := r.ChatStream(context.Background(), chatReq(), func(c *openaiv1.ChatCompletionChunk) error {
			got = append(got, c.GetChoices()[0].GetDelta().GetContent())
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"hi"}, got)
	}
	h := 0
	for _, c := range fake.Calls() {
		if c == "h" {
			h++
		}
	}
	assert.Equal(t, 1, h, "the hung node got one request: %v", fake.Calls())
}

// When every candidate is at its in-flight cap the request is refused
// with RESOURCE_EXHAUSTED instead of queuing without bound.
func TestAdmissionControl(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats})
	end, _ := stats.Begin("a", 0) // one request already in flight
	_, err := r.Chat(context.Background(), chatReq())
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.ResourceExhausted, e.Code)
	assert.Contains(t, e.Message, "at its limit of requests in flight")
	assert.Empty(t, fake.Calls())
	end(time.Millisecond, nodestats.Served)
	_, err = r.Chat(context.Background(), chatReq())
	assert.NoError(t, err)
}

// A request that finds every node at its cap waits in the bounded queue
// and goes as soon as a slot frees; when the queue is full or the wait
// runs out it gets RESOURCE_EXHAUSTED.
func TestAdmissionQueue(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats,
		Queue: Queue{Size: 1, Wait: time.Hour}})
	end, _ := stats.Begin("a", 0)

	done := make(chan error, 1)
	go func() {
		_, err := r.Chat(context.Background(), chatReq())
		done <- err
	}()
	require.Eventually(t, func() bool { return r.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)

	// The queue holds one: the next is refused at once.
	_, err := r.Chat(context.Background(), chatReq())
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.ResourceExhausted, e.Code)

	end(time.Millisecond, nodestats.Served) // a slot frees: the queued request goes
	require.NoError(t, <-done)
	assert.Equal(t, []string{"a"}, fake.Calls())

	// A wait that runs out is refused too.
	short := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats,
		Queue: Queue{Size: 1, Wait: 20 * time.Millisecond}})
	end, _ = stats.Begin("a", 0)
	defer end(time.Millisecond, nodestats.Served)
	_, err = short.Chat(context.Background(), chatReq())
	e, _ = apierror.FromError(err)
	assert.Equal(t, codes.ResourceExhausted, e.Code)
}

// A burst bigger than a node's cap never takes it past the cap: the cap
// requests reach the node and every other waits in the queue.
func TestBurstNeverExceedsTheCap(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {block: true}}, entered: make(chan string, 32)}
	r := New(table(capped("a*", 2)), serveAdapter(t, fake), Options{Stats: nodestats.New(0, nil),
		Queue: Queue{Size: 64, Wait: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	const burst = 20
	var wg sync.WaitGroup
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = r.Chat(ctx, chatReq())
		}()
	}
	// Every request is accounted for: two at the node, the rest queued.
	require.Eventually(t, func() bool { return r.waiting.Load() == burst-2 && len(fake.Calls()) == 2 }, 10*time.Second, time.Millisecond,
		"waiting %d, at the node %v", r.waiting.Load(), fake.Calls())
	cancel()
	wg.Wait()
	assert.Len(t, fake.Calls(), 2)
}

// capped is node(id) with a cap of n requests in flight.
func capped(id string, n int32) *nodev1.NodeState {
	st := node(id)
	st.Node.MaxInFlight = n
	return st
}

// limitsOf is the default limits with the overrides in v.
func limitsOf(t *testing.T, v string) *limits.Set {
	t.Helper()
	l := limits.Defaults()
	require.NoError(t, l.Set(v))
	return &l
}

// A session's node is remembered after it served, and the session moves
// when its node fails.
func TestSessionsRememberTheirNode(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}, "b": {}}}
	sessions := affinity.New(0, 0, nil)
	r := New(table(node("a*"), node("b*")), serveAdapter(t, fake), Options{Sessions: sessions, Stats: nodestats.New(time.Hour, nil)})
	ctx := WithSessionKey(context.Background(), "conv-1")
	_, err := r.Chat(ctx, chatReq())
	require.NoError(t, err)
	first := fake.Calls()[0]
	got, ok := sessions.Node("conv-1")
	require.True(t, ok)
	assert.Equal(t, first, got)

	for range 5 {
		_, err := r.Chat(ctx, chatReq())
		require.NoError(t, err)
	}
	assert.Equal(t, slices.Repeat([]string{first}, 6), fake.Calls(), "every request of the session on its node")
}

// A non-streamed chat scores its node by the time to first token the
// adapter saw, not by the whole answer.
func TestUnaryChatScoresTheAdaptersFirstToken(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {first: time.Microsecond}, "b": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(node("a*"), node("b*")), serveAdapter(t, fake), Options{Stats: stats, Policy: policy.RoundRobinOrder})
	for range 2 {
		_, err := r.Chat(context.Background(), chatReq())
		require.NoError(t, err)
	}
	assert.Equal(t, time.Microsecond, stats.Load("a").TTFT, "the adapter's first token")
	assert.Greater(t, stats.Load("b").TTFT, time.Microsecond, "no first token reported: the whole call")
}
