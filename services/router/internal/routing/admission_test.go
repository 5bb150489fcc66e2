package routing

import (
	"context"
	"sync"
	"testing"
	"time"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// With no -queue-wait (the default) a request that finds every node at
// its cap waits for a slot, however long the node takes, within its
// first-token budget: it is served, not refused.
func TestQueueWaitsWithinTheFirstTokenBudget(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats, Queue: Queue{Size: 8},
		Limits: limitsOf(t, "first-token=1h")})
	end, _ := stats.Begin("a", 0) // the node's one slot is taken

	done := make(chan error, 1)
	go func() {
		_, err := r.Chat(context.Background(), chatReq())
		done <- err
	}()
	require.Eventually(t, func() bool { return r.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)
	end(time.Millisecond, nodestats.Served)
	require.NoError(t, <-done)
	assert.Equal(t, []string{"a"}, fake.Calls())
}

// Why a queued request gives up, each with its own code: a spent
// first-token budget is 503 (the node would have been called hung), the
// optional -queue-wait cap is 429, the client's timeout or a gRPC
// deadline is 504 — and none of them reached a node.
func TestQueueGivesUpForItsReason(t *testing.T) {
	cases := []struct {
		name    string
		limits  string
		queue   Queue
		timeout time.Duration // the client's (x-stainless-timeout)
		grpc    time.Duration // the context's deadline (a gRPC deadline)
		code    codes.Code
		message string
	}{
		{"first-token budget", "first-token=30ms", Queue{Size: 8}, 0, 0, codes.Unavailable, "first-token budget of 30ms"},
		{"queue-wait cap", "first-token=1h", Queue{Size: 8, Wait: 30 * time.Millisecond}, 0, 0, codes.ResourceExhausted, "longest queue wait of 30ms"},
		{"client timeout", "first-token=1h", Queue{Size: 8, Wait: time.Hour}, 30 * time.Millisecond, 0, codes.DeadlineExceeded, "client's timeout of 30ms"},
		{"grpc deadline", "first-token=1h", Queue{Size: 8}, 0, 30 * time.Millisecond, codes.DeadlineExceeded, "deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
			stats := nodestats.New(0, nil)
			r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats, Queue: tc.queue, Limits: limitsOf(t, tc.limits)})
			end, _ := stats.Begin("a", 0)
			defer end(time.Millisecond, nodestats.Served)
			ctx := WithClientTimeout(context.Background(), tc.timeout)
			if tc.grpc > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.grpc)
				defer cancel()
			}
			// Streamed, so the client's timeout bounds only the wait.
			err := r.ChatStream(ctx, chatReq(), func(*openaiv1.ChatCompletionChunk) error { return nil })
			e, _ := apierror.FromError(err)
			assert.Equal(t, tc.code, e.Code, "%v", err)
			assert.Contains(t, e.Message, tc.message)
			assert.Empty(t, fake.Calls())
		})
	}
}

// The queue's size is what turns requests away: with it full the next
// request is 429 at once, whatever the budgets.
func TestFullQueueIs429(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats, Queue: Queue{Size: 1}})
	end, _ := stats.Begin("a", 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.Chat(ctx, chatReq())
		done <- err
	}()
	require.Eventually(t, func() bool { return r.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)
	_, err := r.Chat(context.Background(), chatReq())
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.ResourceExhausted, e.Code)
	assert.Contains(t, e.Message, "wait queue (1 requests) is full")
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	end(time.Millisecond, nodestats.Served)
	assert.Empty(t, fake.Calls())
}

// A request whose client's timeout has passed is not sent to a node: the
// client is gone.
func TestNoWorkForAGoneClient(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	r := New(table(node("a*")), serveAdapter(t, fake), Options{})
	ctx := WithClientTimeout(context.Background(), time.Nanosecond)
	require.Eventually(t, func() bool { return clientGone(ctx, model) != nil }, 5*time.Second, time.Millisecond)
	err := r.ChatStream(ctx, chatReq(), func(*openaiv1.ChatCompletionChunk) error { return nil })
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.DeadlineExceeded, e.Code, "%v", err)
	assert.Empty(t, fake.Calls())
}

// Requests waiting for a node's first token move to another node the
// moment it leaves rotation for not answering — because another request
// found it hung (its breaker opened with NoAnswer) or healthmon declared
// it down — instead of waiting out their own first-token timeout (here an
// hour). Streamed and not: nothing had reached their clients.
func TestWaitingRequestsMoveWhenTheirNodeStopsAnswering(t *testing.T) {
	for _, how := range []string{"breaker", "healthmon"} {
		t.Run(how, func(t *testing.T) {
			fake := &fakeAdapter{scripts: map[string]script{
				"h": {block: true},
				"g": {chunks: []*openaiv1.ChatCompletionChunk{chunk("from g")}},
			}, entered: make(chan string, 16)}
			stats := nodestats.New(time.Hour, nil)
			var reported reports
			// h has the model loaded and g does not: every request goes
			// to h first.
			r := New(table(node("h*"), node("g")), serveAdapter(t, fake), Options{Stats: stats, OnNodeFailed: reported.failed,
				Limits: limitsOf(t, "first-token=1h,cold-first-token=1h")})

			const streams, unary = 3, 2
			var wg sync.WaitGroup
			got := make(chan string, streams+unary)
			errs := make(chan error, streams+unary)
			for range streams {
				wg.Go(func() {
					var chunks []*openaiv1.ChatCompletionChunk
					errs <- r.ChatStream(context.Background(), chatReq(), collect(&chunks))
					got <- contents(chunks)[0]
				})
			}
			for range unary {
				wg.Go(func() {
					out, err := r.Chat(context.Background(), chatReq())
					errs <- err
					got <- out.GetId()
				})
			}
			for range streams + unary {
				require.Equal(t, "h", <-fake.entered)
			}

			switch how {
			case "breaker": // another request's first-token timeout on h
				end, _ := stats.Begin("h", 0)
				end(0, nodestats.NoAnswer)
			case "healthmon":
				stats.Leave("h")
			}
			wg.Wait()
			close(errs)
			close(got)
			for err := range errs {
				assert.NoError(t, err)
			}
			var answers []string
			for a := range got {
				answers = append(answers, a)
			}
			assert.ElementsMatch(t, []string{"from g", "from g", "from g", "cmpl-g", "cmpl-g"}, answers)
			assert.Equal(t, streams+unary, count(fake.Calls(), "g"))
			assert.Equal(t, int64(0), stats.Load("h").InFlight)
			assert.Empty(t, reported.get(), "moving a request off h is not another failure of h")
		})
	}
}

// An answer that has started is never moved: its client has seen output.
// An attempt that has been moved delivers nothing.
func TestStartedAnswersAreNotMoved(t *testing.T) {
	a := &answer{}
	first, ok := a.deliver()
	assert.True(t, first && ok)
	assert.False(t, a.move(), "started: not moved")
	first, ok = a.deliver()
	assert.True(t, !first && ok)

	b := &answer{}
	assert.True(t, b.move())
	_, ok = b.deliver()
	assert.False(t, ok, "moved: its first message is not sent")
	b.next()
	first, ok = b.deliver()
	assert.True(t, first && ok, "the next attempt delivers")
}

// A non-streamed request's whole answer is bounded by its client's
// timeout (its answer starts only when complete); when the timeout ends
// its wait in the queue it says so.
func TestClientTimeoutOfAUnaryRequest(t *testing.T) {
	fake := &fakeAdapter{scripts: map[string]script{"a": {}}}
	stats := nodestats.New(0, nil)
	r := New(table(capped("a*", 1)), serveAdapter(t, fake), Options{Stats: stats, Queue: Queue{Size: 8}, Limits: limitsOf(t, "first-token=1h")})
	end, _ := stats.Begin("a", 0)
	defer end(time.Millisecond, nodestats.Served)
	for range 5 { // the queue's timer and the context's deadline fire together
		_, err := r.Chat(WithClientTimeout(context.Background(), 20*time.Millisecond), chatReq())
		e, _ := apierror.FromError(err)
		assert.Equal(t, codes.DeadlineExceeded, e.Code, "%v", err)
		assert.Contains(t, e.Message, "client's timeout of 20ms")
	}
	assert.Empty(t, fake.Calls())
}
