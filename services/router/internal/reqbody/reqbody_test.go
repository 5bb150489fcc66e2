package reqbody

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo answers 200 with the body it read, or the status of Read's error.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := Read(w, r, 1<<20)
	var tooBig *TooLargeError
	var timeout *TimeoutError
	switch {
	case errors.As(err, &timeout):
		http.Error(w, err.Error(), http.StatusRequestTimeout)
	case errors.As(err, &tooBig):
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		_, _ = w.Write(body)
	}
}

func serve(t *testing.T, h http.HandlerFunc, timeout time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(WithTimeout(h, timeout))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawPost sends a POST declaring contentLength and writes body, then
// feeds the rest with more (nil: nothing; the connection stays open), and
// returns the answer. The test's own bound is the connection deadline.
func rawPost(t *testing.T, addr string, contentLength int, body string, more func(net.Conn)) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", contentLength, body)
	require.NoError(t, err)
	if more != nil {
		go more(conn)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer before the connection closed")
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A client that declares more body than it sends gets 408 and a closed
// connection instead of holding them open.
func TestShortBodyTimesOut(t *testing.T) {
	addr := serve(t, echo, 100*time.Millisecond)
	resp := rawPost(t, addr, 100, `{"model":`, nil)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.True(t, resp.Close, "the connection is closed after a 408")
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), "request body not received within 100ms")
}

// A client that trickles its body too slowly gets 408 too.
func TestTrickledBodyTimesOut(t *testing.T) {
	addr := serve(t, echo, 150*time.Millisecond)
	stop := make(chan struct{})
	defer close(stop)
	done := make(chan struct{})
	resp := rawPost(t, addr, 10000, "{", func(c net.Conn) {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	})
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	stop <- struct{}{}
	<-done
}

// Once the body is in, the answer may take far longer than the body
// timeout: the deadline is lifted, and the client going away is still
// seen (the request's context stays alive while it is connected).
func TestAnswersAreNotLimited(t *testing.T) {
	const timeout = 50 * time.Millisecond
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := Read(w, r, 1<<20)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 4 {
			select {
			case <-time.After(timeout): // each event comes a whole body timeout later
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "data: %d %s\n\n", i, body)
			_ = http.NewResponseController(w).Flush()
		}
	}, timeout)
	resp := rawPost(t, addr, 2, "hi", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "data: 0 hi\n\ndata: 1 hi\n\ndata: 2 hi\n\ndata: 3 hi\n\n", string(b))
}

func TestReadErrors(t *testing.T) {
	addr := serve(t, echo, time.Minute)
	t.Run("complete body", func(t *testing.T) {
		resp := rawPost(t, addr, 2, "ok", nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("too large", func(t *testing.T) {
		resp, err := http.Post("http://"+addr, "application/json", strings.NewReader(strings.Repeat("x", 1<<20+1)))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	})
	t.Run("body cut short by the client", func(t *testing.T) {
		resp := rawPost(t, addr, 100, "{", func(c net.Conn) { _ = c.(*net.TCPConn).CloseWrite() })
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}
