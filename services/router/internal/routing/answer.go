package routing

import (
	"sync"
)

// answer is what of one request's answer has reached its client: nothing
// yet, or its start — after which it is never retried nor moved (the
// client would see duplicated output). A request's attempts run one after
// another; its current one may be moved off its node by another goroutine
// (see attemptNode) as long as nothing has been delivered.
type answer struct {
	mu      sync.Mutex
	started bool // a message reached the client
	moved   bool // the current attempt was moved off its node
}

// deliver marks the answer started before its first message goes to the
// client. first says this is that first message; ok is false when the
// current attempt has been moved off its node: then nothing is sent.
func (a *answer) deliver() (first, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.started:
		return false, true
	case a.moved:
		return false, false
	}
	a.started = true
	return true, true
}

// move marks the current attempt moved, unless the answer has started.
func (a *answer) move() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return false
	}
	a.moved = true
	return true
}

// next readies a for another attempt.
func (a *answer) next() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.moved = false
}

// retryable says whether another attempt may follow: the client has seen
// nothing yet.
func (a *answer) retryable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.started
}
