package simnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxBodyBytes bounds request bodies; far above any sane test prompt, low
// enough that a runaway client cannot exhaust memory.
const maxBodyBytes = 32 << 20

// errClientGone is returned by call methods once the client has left; the
// handler must then stop without writing anything more.
var errClientGone = errors.New("simnode: client went away")

// call is one chat or embeddings request in progress. It exists so that the
// Canceled counter is bumped exactly once per request, whichever wait or
// write first notices that the client went away. A call is used by a single
// handler goroutine only.
type call struct {
	s        *Server
	ctx      context.Context
	faults   Faults // snapshot taken when the request started
	canceled bool
	released bool
}

// release ends the call's count in flight, once. A handler calls it just
// before it writes the last bytes of its answer: the work is done by then,
// and a client (the mesh) that sends its next request the moment it has
// read them must find the node free, as a real server's slot is.
func (c *call) release() {
	if !c.released {
		c.released = true
		c.s.inFlight.Add(-1)
	}
}

// serveInference does what chat and embeddings have in common: in-flight
// accounting, reading the body, and the Status and Hang faults, which apply
// before the body is even parsed. serve runs only if no fault answered.
func (s *Server) serveInference(w http.ResponseWriter, r *http.Request, serve func(c *call, body []byte)) {
	now := s.inFlight.Add(1)
	for peak := s.peak.Load(); now > peak && !s.peak.CompareAndSwap(peak, now); peak = s.peak.Load() {
	}
	s.lastUse.Store(time.Now().UnixNano())
	c := &call{s: s, ctx: r.Context(), faults: s.currentFaults()}
	defer c.release()

	// Reading the whole body matters beyond parsing: net/http only starts
	// watching the connection for a client disconnect (and cancels the
	// request context) once the body has been read to EOF.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeOpenAIError(w, http.StatusRequestEntityTooLarge, apiError{
				Message: fmt.Sprintf("request body larger than %d bytes", tooBig.Limit),
				Type:    "invalid_request_error",
			})
			return
		}
		_ = c.gone() // the client stopped sending mid-body
		return
	}

	switch f := c.faults; {
	case f.Status != 0:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		writeOpenAIError(w, f.Status, apiError{Message: f.message(), Type: errorType(f.Status)})
	case f.Hang:
		<-c.ctx.Done()
		_ = c.gone()
	default:
		serve(c, body)
	}
}

// gone records that the client went away, once per call.
func (c *call) gone() error {
	if !c.canceled {
		c.canceled = true
		c.s.canceled.Add(1)
	}
	return errClientGone
}

// sleep pauses for d, returning errClientGone as soon as the client leaves.
// A zero d still checks, so a departed client is noticed at every step.
func (c *call) sleep(d time.Duration) error {
	if d <= 0 {
		if c.ctx.Err() != nil {
			return c.gone()
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return c.gone()
	}
}

// generationTime is how long producing n tokens takes.
func (s *Server) generationTime(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return s.cfg.FirstTokenDelay + time.Duration(n-1)*s.cfg.TokenDelay
}
