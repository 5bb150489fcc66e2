// Package affinity remembers which node each session last used, so a
// conversation stays on the node that holds its KV cache for as long as
// that node can serve it — even when other nodes join or leave, which
// hashing alone would let move some sessions.
//
// The table is bounded: it holds at most Size sessions, forgets the least
// recently used first, and forgets a session idle for longer than TTL.
package affinity

import (
	"container/list"
	"sync"
	"time"
)

// Defaults.
const (
	DefaultSize = 100_000
	DefaultTTL  = time.Hour
)

// Table maps session keys to node ids. The zero value is not usable; use
// New.
type Table struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element
	order *list.List // of *entry, most recently used first
}

type entry struct {
	key, node string
	used      time.Time
}

// New returns an empty table of at most size sessions, each forgotten
// after ttl without use. size ≤ 0 and ttl ≤ 0 mean the defaults; now nil
// means time.Now.
func New(size int, ttl time.Duration, now func() time.Time) *Table {
	if size <= 0 {
		size = DefaultSize
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Table{size: size, ttl: ttl, now: now, byKey: map[string]*list.Element{}, order: list.New()}
}

// Node returns the node key last used, if it is remembered.
func (t *Table) Node(key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.byKey[key]
	if !ok {
		return "", false
	}
	e := el.Value.(*entry)
	if t.now().Sub(e.used) > t.ttl {
		t.remove(el)
		return "", false
	}
	return e.node, true
}

// Used records that key's request was served by node.
func (t *Table) Used(key, node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if el, ok := t.byKey[key]; ok {
		e := el.Value.(*entry)
		e.node, e.used = node, now
		t.order.MoveToFront(el)
		return
	}
	t.byKey[key] = t.order.PushFront(&entry{key: key, node: node, used: now})
	for t.order.Len() > t.size {
		t.remove(t.order.Back())
	}
	// Expired sessions at the cold end go as new ones come.
	for el := t.order.Back(); el != nil && now.Sub(el.Value.(*entry).used) > t.ttl; el = t.order.Back() {
		t.remove(el)
	}
}

// Len is how many sessions are remembered.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

func (t *Table) remove(el *list.Element) {
	t.order.Remove(el)
	delete(t.byKey, el.Value.(*entry).key)
}
