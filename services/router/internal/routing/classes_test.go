package routing

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

func TestNodeOutcome(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want nodestats.Outcome
	}{
		{"success", nil, nodestats.Served},
		{"refused", &apierror.Error{Code: codes.Unavailable, Node: "n", Reason: apierror.ReasonUnreachable, Message: "connect: connection refused"}, nodestats.Unreachable},
		{"401", &apierror.Error{Code: codes.Unauthenticated, Node: "n", HTTPStatus: http.StatusUnauthorized, Reason: apierror.ReasonUpstream}, nodestats.Unreachable},
		{"403", &apierror.Error{Code: codes.PermissionDenied, Node: "n", HTTPStatus: http.StatusForbidden, Reason: apierror.ReasonUpstream}, nodestats.Unreachable},
		{"no first token", &apierror.Error{Code: codes.Unavailable, Node: "n", Reason: apierror.ReasonAnswerFailed, Message: "no first token within 1s"}, nodestats.NoAnswer},
		{"broken off", &apierror.Error{Code: codes.Unavailable, Node: "n", Reason: apierror.ReasonAnswerFailed, Message: "answer broken off: unexpected EOF"}, nodestats.NoAnswer},
		{"busy", &apierror.Error{Code: codes.Unavailable, Node: "n", HTTPStatus: 503, Reason: apierror.ReasonUpstream}, nodestats.Served},
		{"bad request", &apierror.Error{Code: codes.InvalidArgument, Node: "n", HTTPStatus: 400, Reason: apierror.ReasonUpstream}, nodestats.Served},
		{"no node named", &apierror.Error{Code: codes.Unavailable, Reason: apierror.ReasonUnreachable}, nodestats.Served},
		{"canceled", context.Canceled, nodestats.Served},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, nodeOutcome(tc.err))
		})
	}
}

// reports collects OnNodeFailed calls.
type reports struct {
	mu  sync.Mutex
	ids []string
}

func (r *reports) failed(id, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
}

func (r *reports) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func count(calls []string, id string) int {
	n := 0
	for _, c := range calls {
		if c == id {
			n++
		}
	}
	return n
}

// A hung node stays out after a health probe has found it serving (the
// probe's cheap calls succeed on a hung node): healthmon's confirmation
// (Recovered) does not bring it back, so it costs one first-token timeout,
// not one per request. A node that refused connections does come back
// with the probe.
func TestHungNodeStaysOutAfterAGoodProbe(t *testing.T) {
	hi := []*openaiv1.ChatCompletionChunk{chunk("hi")}
	fake := &fakeAdapter{scripts: map[string]script{"h": {block: true}, "g": {chunks: hi}}}
	stats := nodestats.New(time.Hour, nil)
	var rep reports
	r := New(table(node("h*"), node("g*")), serveAdapter(t, fake), Options{
		Policy: policy.RoundRobinOrder, Stats: stats, OnNodeFailed: rep.failed,
		Limits: limitsOf(t, "first-token=50ms,cold-first-token=1h"),
	})
	for range 4 {
		var got []*openaiv1.ChatCompletionChunk
		require.NoError(t, r.ChatStream(context.Background(), chatReq(), collect(&got)))
		assert.Equal(t, []string{"hi"}, contents(got))
		stats.Recovered("h") // healthmon's probe after the report found it serving
	}
	assert.Equal(t, 1, count(fake.Calls(), "h"), "the hung node got one request: %v", fake.Calls())
	assert.Equal(t, []string{"h"}, rep.get(), "and healthmon heard of it")
	assert.True(t, stats.Load("h").Open)

	refused := &apierror.Error{Code: codes.Unavailable, Node: "r", Reason: apierror.ReasonUnreachable, Message: "connect: connection refused"}
	fake = &fakeAdapter{scripts: map[string]script{"r": {err: refused}, "g": {}}}
	r = New(table(node("r*"), node("g*")), serveAdapter(t, fake), Options{Policy: policy.RoundRobinOrder, Stats: stats})
	_, err := r.Chat(context.Background(), chatReq())
	require.NoError(t, err)
	assert.True(t, stats.Load("r").Open)
	stats.Recovered("r")
	assert.False(t, stats.Load("r").Open, "a good probe brings back a node that refused connections")
}

// A node that breaks its answer off after the first chunk ends that
// stream with the error (never retried: the client has output), and is
// out of rotation and reported, until a trial succeeds — a good probe
// does not bring it back.
func TestBrokenOffNodeIsOutAndReported(t *testing.T) {
	broken := &apierror.Error{Code: codes.Unavailable, Node: "x", Reason: apierror.ReasonAnswerFailed, Message: "answer broken off: unexpected EOF"}
	hi := []*openaiv1.ChatCompletionChunk{chunk("hi")}
	fake := &fakeAdapter{scripts: map[string]script{"x": {chunks: hi, err: broken}, "g": {chunks: hi}}}
	stats := nodestats.New(time.Hour, nil)
	var rep reports
	r := New(table(node("x*"), node("g*")), serveAdapter(t, fake), Options{
		Policy: policy.RoundRobinOrder, Stats: stats, OnNodeFailed: rep.failed,
	})
	var got []*openaiv1.ChatCompletionChunk
	err := r.ChatStream(context.Background(), chatReq(), collect(&got))
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, "x", e.Node)
	assert.Equal(t, "answer broken off: unexpected EOF", e.Message)
	assert.Equal(t, []string{"hi"}, contents(got), "the chunk before the break, once")
	assert.Equal(t, []string{"x"}, fake.Calls(), "no retry once output was sent")
	assert.Equal(t, []string{"x"}, rep.get())

	stats.Recovered("x")
	for range 3 {
		got = nil
		require.NoError(t, r.ChatStream(context.Background(), chatReq(), collect(&got)))
	}
	assert.Equal(t, 1, count(fake.Calls(), "x"), "kept out: %v", fake.Calls())

	// Before the first chunk a broken-off answer fails over.
	fake = &fakeAdapter{scripts: map[string]script{"x": {err: broken}, "g": {chunks: hi}}}
	r = New(table(node("x*"), node("g*")), serveAdapter(t, fake), Options{Policy: policy.RoundRobinOrder})
	got = nil
	require.NoError(t, r.ChatStream(context.Background(), chatReq(), collect(&got)))
	assert.Equal(t, []string{"hi"}, contents(got))
	assert.Equal(t, []string{"x", "g"}, fake.Calls())
}

// An embedding's adapter call carries the node's first-token bound (the
// cold one where the model is not loaded): the adapter's limit on the
// wait for the node's response. A hung node's failure moves the request
// on and takes the node out.
func TestEmbedFirstTokenBound(t *testing.T) {
	hung := &apierror.Error{Code: codes.Unavailable, Node: "h", Reason: apierror.ReasonAnswerFailed, Message: "no response within 30s"}
	fake := &fakeAdapter{scripts: map[string]script{"h": {err: hung}, "g": {}}}
	stats := nodestats.New(time.Hour, nil)
	r := New(table(node("h*"), node("g")), serveAdapter(t, fake), Options{Policy: policy.RoundRobinOrder, Stats: stats,
		Limits: limitsOf(t, "first-token=2s,cold-first-token=3m")})
	out, err := r.Embed(context.Background(), &openaiv1.EmbeddingRequest{Model: model})
	require.NoError(t, err)
	assert.Equal(t, "g", out.GetModel(), "answered by the other node")
	assert.Equal(t, []string{"h", "g"}, fake.Calls())
	assert.True(t, stats.Load("h").Open)

	got := fake.Timeouts()
	require.Len(t, got, 2)
	assert.Equal(t, 2*time.Second, got[0].GetFirstToken().AsDuration(), "loaded")
	assert.Equal(t, 3*time.Minute, got[1].GetFirstToken().AsDuration(), "cold")
}
