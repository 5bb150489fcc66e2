package nodeconn

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// nodeClient is a client for a node served by h on loopback.
func nodeClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := newPool(t, Options{}).Client(&nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: srv.URL})
	require.NoError(t, err)
	return c
}

func post(t *testing.T, ctx context.Context, c *Client) (*http.Response, error) {
	t.Helper()
	req, err := c.NewRequest(ctx, http.MethodPost, "/v1/embeddings", strings.NewReader(`{"model":"m","input":"x"}`))
	require.NoError(t, err)
	return c.Do(req)
}

// hijackAndClose takes the request and closes the connection without an
// answer, as a node that crashes on it.
func hijackAndClose(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// A node that takes the request and sends no response within the
// response timeout is hung: the call fails at once with reason
// NODE_ANSWER_FAILED, not at the caller's deadline.
func TestResponseTimeout(t *testing.T) {
	c := nodeClient(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := post(t, WithResponseTimeout(ctx, 50*time.Millisecond), c)
		done <- err
	}()
	select {
	case err := <-done:
		e, ok := apierror.FromError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, codes.Unavailable, e.Code)
		assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason)
		assert.Equal(t, "n", e.Node)
		assert.Equal(t, "no response within 50ms", e.Message)
	case <-ctx.Done():
		t.Fatal("the response timeout did not end the call")
	}
}

// The bound is on the response's arrival only: the body of a response
// that came in time is read to its end however long it takes, and the
// caller's own cancel stays CANCELLED.
func TestResponseTimeoutBoundsOnlyTheResponse(t *testing.T) {
	release := make(chan struct{})
	c := nodeClient(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "part one, ")
		http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, "part two")
	})
	resp, err := post(t, WithResponseTimeout(t.Context(), 50*time.Millisecond), c)
	require.NoError(t, err)
	defer resp.Body.Close()
	time.AfterFunc(150*time.Millisecond, func() { close(release) }) // well past the bound
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "part one, part two", string(body))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = post(t, WithResponseTimeout(ctx, time.Minute), c)
	e, _ := apierror.FromError(err)
	assert.Equal(t, codes.Canceled, e.Code)
}

// A node that took the whole request and then closed the connection
// failed its answer (reason NODE_ANSWER_FAILED, which a health probe does
// not clear); one that could not be connected to is unreachable.
func TestDroppedAfterTheRequest(t *testing.T) {
	c := nodeClient(t, hijackAndClose)
	_, err := post(t, t.Context(), c)
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason, e.Message)

	refused, err := newPool(t, Options{}).Client(&nodev1.Node{Id: "gone", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: refusedURL(t)})
	require.NoError(t, err)
	_, err = post(t, t.Context(), refused)
	e, _ = apierror.FromError(err)
	assert.Equal(t, apierror.ReasonUnreachable, e.Reason)
}

// An answer cut off in the middle (the connection closed before the
// chunked body ended) is NODE_ANSWER_FAILED, message unchanged.
func TestBodyBrokenOff(t *testing.T) {
	c := nodeClient(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		hijackAndClose(w, r)
	})
	resp, err := post(t, t.Context(), c)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	require.Error(t, err)
	e := c.BodyError(t.Context(), err)
	assert.Equal(t, codes.Unavailable, e.Code)
	assert.Equal(t, apierror.ReasonAnswerFailed, e.Reason)
	assert.Equal(t, "answer broken off: unexpected EOF", e.Message)

	short := c.BrokenOff(t.Context(), "the stream ended before [DONE]")
	assert.Equal(t, &apierror.Error{Code: codes.Unavailable, Node: "n", Reason: apierror.ReasonAnswerFailed,
		Message: "the stream ended before [DONE]"}, short)
}
