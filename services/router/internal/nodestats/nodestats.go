// Package nodestats keeps the router's live view of each node's load and
// behaviour: requests in flight, an EWMA of time to first token, and a
// circuit breaker that takes a node out of rotation the moment it fails a
// request (passive health) and lets it back in through a half-open trial
// request once a cool-down has passed — so a node is never stuck out after
// it has recovered. A node that could not be reached also comes back at
// once when a health probe finds it serving (Recovered); one that took a
// request and did not answer it (hung, silent, broken off) comes back only
// through a successful trial, as a probe's cheap calls succeed on such a
// node too.
//
// One incident counts once: the attempts that were already on a node when
// its breaker opened (eight requests hung together on a node that just
// stopped answering) belong to the failure that opened it, so they neither
// double the cool-down nor extend it. Only a failure of an attempt that
// began after the breaker last opened — the half-open trial, or a request
// on a node back in rotation — is a new incident. Whoever waits on a node
// that stops answering hears of it at once (Attempt.Left), so requests
// that have received nothing yet can move to another node instead of
// waiting out their own first-token timeout.
package nodestats

import (
	"fmt"
	"sync"
	"time"
)

// Defaults.
const (
	// Alpha weighs a new time-to-first-token sample in the EWMA.
	Alpha = 0.2
	// DefaultCooldown is how long a node stays out after a failure before
	// a trial request may go to it; it doubles with each failed trial.
	DefaultCooldown = 2 * time.Second
	// MaxCooldown caps the doubling (a longer configured cool-down is its
	// own cap).
	MaxCooldown = 30 * time.Second
)

// Stats holds every node's numbers. The zero value is not usable; use New.
type Stats struct {
	cooldown time.Duration
	now      func() time.Time

	mu       sync.Mutex
	nodes    map[string]*node
	released chan struct{} // closed (and replaced) whenever a request ends
}

type node struct {
	inFlight  int64
	ttft      time.Duration // EWMA; 0 until the first sample
	openUntil time.Time     // breaker open while now < openUntil
	failures  int           // consecutive incidents, for the cool-down doubling
	trial     bool          // a half-open trial request is in flight
	opened    Outcome       // the failure that last opened the breaker
	opens     uint64        // how often the breaker opened: an attempt begun before the latest opening belongs to it
	// left is closed (and replaced) when the node leaves rotation for not
	// answering: its breaker opens with NoAnswer, or Leave.
	left chan struct{}
}

// Outcome is how an attempt on a node ended, as far as the node's health
// goes.
type Outcome int

const (
	// Served means the node answered, even if with an error (503 busy, a bad
	// request) or not at all because the client went away.
	Served Outcome = iota
	// Unreachable means the node could not be reached (refused or reset while
	// connecting, TLS, DNS) or refused the mesh's credentials (401/403).
	// A health probe meets the same failure, so a good probe closes the
	// breaker (Recovered).
	Unreachable
	// NoAnswer means the node took the request and did not deliver the answer:
	// no first token in time, silent in the middle of an answer, or the
	// connection dropped mid-answer. A probe's cheap calls succeed on such
	// a node, so only a successful trial request closes the breaker.
	NoAnswer
)

// String names o for logs and test failures.
func (o Outcome) String() string {
	switch o {
	case Served:
		return "served"
	case Unreachable:
		return "unreachable"
	case NoAnswer:
		return "no answer"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// New returns empty stats. cooldown ≤ 0 means DefaultCooldown; now nil
// means time.Now.
func New(cooldown time.Duration, now func() time.Time) *Stats {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	if now == nil {
		now = time.Now
	}
	return &Stats{cooldown: cooldown, now: now, nodes: map[string]*node{}, released: make(chan struct{})}
}

func (s *Stats) get(id string) *node {
	n, ok := s.nodes[id]
	if !ok {
		n = &node{left: make(chan struct{})}
		s.nodes[id] = n
	}
	return n
}

// Load is what a policy sees of a node.
type Load struct {
	InFlight int64
	TTFT     time.Duration // 0: unknown
	Open     bool          // out of rotation (breaker open, or its trial is in flight)
}

// Load returns id's current load.
func (s *Stats) Load(id string) Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.get(id)
	open := n.trial || s.now().Before(n.openUntil)
	return Load{InFlight: n.inFlight, TTFT: n.ttft, Open: open}
}

// Released returns a channel closed when the next request ends anywhere,
// for callers waiting for a free slot.
func (s *Stats) Released() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.released
}

// Attempt is one request's turn on a node, from Begin to End.
type Attempt struct {
	// Left is closed when the node leaves rotation for not answering —
	// its breaker opens with NoAnswer (another request's failure, or this
	// one's), or Leave — after the attempt began. An attempt that has
	// delivered nothing yet may then move to another node at once.
	Left <-chan struct{}
	end  func(ttft time.Duration, outcome Outcome)
}

// End records the attempt's end: ttft is the time to its first token (0
// when none came), outcome whether the node itself failed and how. Only
// the first call counts.
func (a Attempt) End(ttft time.Duration, outcome Outcome) { a.end(ttft, outcome) }

// Begin records a request starting on id, unless id already has limit
// requests in flight (limit 0: no limit): then ok is false and nothing is
// recorded. Checking and counting are one step, so concurrent requests
// never take a node past its limit. Call end once the attempt is over:
// ttft is the time to its first token (0 when none came), outcome whether
// the node itself failed and how; a failure opens its breaker.
func (s *Stats) Begin(id string, limit int) (end func(ttft time.Duration, outcome Outcome), ok bool) {
	a, ok := s.Start(id, limit)
	return a.end, ok
}

// Start is Begin, also returning what the attempt may watch while it
// waits on the node.
//
// A failure opens the breaker when it is a new incident: the attempt is
// the half-open trial, or it began while the breaker was closed and the
// breaker has not opened since. Any other failure belongs to the incident
// that opened the breaker and is not counted again: concurrent failures
// within one open period count once. Likewise only a success of an
// attempt begun since the latest opening closes the breaker; one that was
// already under way says nothing about the node since.
func (s *Stats) Start(id string, limit int) (Attempt, bool) {
	s.mu.Lock()
	n := s.get(id)
	if limit > 0 && n.inFlight >= int64(limit) {
		s.mu.Unlock()
		return Attempt{}, false
	}
	n.inFlight++
	trial := false
	closed := n.openUntil.IsZero()
	if !closed && !s.now().Before(n.openUntil) && !n.trial {
		// The cool-down is over: this request is the half-open trial.
		n.trial, trial = true, true
	}
	opens, left := n.opens, n.left
	s.mu.Unlock()
	var once sync.Once
	end := func(ttft time.Duration, outcome Outcome) {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			n.inFlight--
			close(s.released)
			s.released = make(chan struct{})
			if trial {
				n.trial = false
			}
			current := n.opens == opens // the breaker has not opened since the attempt began
			if outcome != Served {
				switch {
				case !current:
					// Under way when the breaker opened: part of the
					// incident that opened it, which counts once.
					return
				case !trial && !closed:
					// Sent to the node while it was out (no other node
					// could take it): not a new incident either, but
					// news of how the node fails now, which decides how
					// it comes back.
					n.opened = outcome
					if outcome == NoAnswer {
						n.leave()
					}
					return
				}
				n.opens++
				n.opened = outcome
				n.failures++
				cool := s.cooldown << min(n.failures-1, 10)
				n.openUntil = s.now().Add(min(cool, max(MaxCooldown, s.cooldown)))
				if outcome == NoAnswer {
					n.leave()
				}
				return
			}
			if ttft > 0 {
				if current {
					n.failures = 0
					n.openUntil = time.Time{}
					n.opened = Served
				}
				if n.ttft == 0 {
					n.ttft = ttft
				} else {
					n.ttft = time.Duration(Alpha*float64(ttft) + (1-Alpha)*float64(n.ttft))
				}
			}
		})
	}
	return Attempt{Left: left, end: end}, true
}

// leave tells the attempts on n that it left rotation for not answering.
// Call with s.mu held.
func (n *node) leave() {
	close(n.left)
	n.left = make(chan struct{})
}

// Leave tells the attempts on id that the node has left rotation for not
// answering, as when healthmon declares it down: those that have received
// nothing yet may move to another node at once (Attempt.Left). It does not
// open the breaker (the node table keeps a down node out).
func (s *Stats) Leave(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(id).leave()
}

// Recovered closes id's breaker at once when it was opened by a node that
// could not be reached: a health probe has just found the node serving
// again, so it need not wait for a trial request. A breaker opened by a
// node that took a request and did not answer it stays open: the probe
// does not show that the node answers requests again; a trial after the
// cool-down does.
func (s *Stats) Recovered(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.get(id)
	if n.opened == NoAnswer {
		return
	}
	n.failures = 0
	n.openUntil = time.Time{}
	n.opened = Served
}
