// Package reqbody bounds how a REST request body is read: its size and how
// long the client may take to send it. Without a time limit, a client that
// declares a longer body than it sends, or trickles it, holds a connection
// and a goroutine for as long as it likes.
//
// The limit is a read deadline on the connection, set when a request with
// a body arrives and cleared once the body has been read to its end, so it
// never cuts an answer short: a stream may then run for hours. A plain
// http.Server ReadTimeout or WriteTimeout cannot do that.
package reqbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultTimeout is how long a client may take to send a request body:
// 32 MiB (the default size limit) at about 1 MiB/s.
const DefaultTimeout = 30 * time.Second

// TooLargeError is a body over the size limit (413).
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.Limit)
}

// TimeoutError is a body that did not arrive in time (408).
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("request body not received within %s", e.Timeout)
}

// WithTimeout gives every request that has a body timeout to send all of
// it; timeout ≤ 0 means no limit. A body read past the deadline fails, and
// Read reports that as a *TimeoutError. A body the handler does not read
// is held to the same deadline when the server drains it afterwards.
func WithTimeout(h http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			h.ServeHTTP(w, r) // a writer without deadlines (tests); nothing to bound
			return
		}
		r.Body = &timedBody{ReadCloser: r.Body, rc: rc, timeout: timeout}
		h.ServeHTTP(w, r)
	})
}

// timedBody clears the read deadline once the body has been read to its
// end, and turns a read past the deadline into a *TimeoutError.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.done:
		// The body is in; from now on the connection is only watched
		// for the client going away, for as long as the answer takes.
		// (net/http lifts the deadline itself when it starts watching;
		// this does not rely on it.)
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = &TimeoutError{Timeout: b.timeout}
	}
	return n, err
}

// Read reads r's whole body, at most limit bytes. Its errors are a
// *TooLargeError, a *TimeoutError, or another failure to read (the client
// sent less than it declared, or a malformed chunked body).
func Read(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &TooLargeError{Limit: limit}
	}
	var timeout *TimeoutError
	if errors.As(err, &timeout) {
		// The rest of the body may still come; the connection cannot
		// carry another request.
		w.Header().Set("Connection", "close")
		return nil, timeout
	}
	return nil, fmt.Errorf("reading request body: %w", err)
}
