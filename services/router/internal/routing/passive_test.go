package routing

import (
	"context"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
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
