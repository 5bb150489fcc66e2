// Package nodestats keeps the router's live view of each node's load and
// behaviour: requests in flight, an EWMA of time to first token, and a
// circuit breaker that takes a node out of rotation the moment it refuses
// a connection (passive health) and lets it back in through a half-open
// trial request once a cool-down has passed — so a node is never stuck out
// after it has recovered.
package nodestats

import (
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
	// MaxCooldown caps the doubling.
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
	failures  int           // consecutive failures, for the cool-down doubling
	trial     bool          // a half-open trial request is in flight
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
		n = &node{}
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

// Begin records a request starting on id. Call the returned function
// once the attempt is over: ttft is the time to its first token (0 when
// none came), failed whether the node itself failed (refused, reset,
// unreachable), which opens its breaker.
func (s *Stats) Begin(id string) (end func(ttft time.Duration, failed bool)) {
	s.mu.Lock()
	n := s.get(id)
	n.inFlight++
	trial := false
	if !n.openUntil.IsZero() && !s.now().Before(n.openUntil) && !n.trial {
		// The cool-down is over: this request is the half-open trial.
		n.trial, trial = true, true
	}
	s.mu.Unlock()
	var once sync.Once
	return func(ttft time.Duration, failed bool) {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			n.inFlight--
			close(s.released)
			s.released = make(chan struct{})
			if trial {
				n.trial = false
			}
			if failed {
				n.failures++
				cool := s.cooldown << min(n.failures-1, 10)
				n.openUntil = s.now().Add(min(cool, MaxCooldown))
				return
			}
			if ttft > 0 {
				n.failures = 0
				n.openUntil = time.Time{}
				if n.ttft == 0 {
					n.ttft = ttft
				} else {
					n.ttft = time.Duration(Alpha*float64(ttft) + (1-Alpha)*float64(n.ttft))
				}
			}
		})
	}
}

// Recovered closes id's breaker at once: a health probe has just found the
// node serving again, so it need not wait for a trial request.
func (s *Stats) Recovered(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.get(id)
	n.failures = 0
	n.openUntil = time.Time{}
}
