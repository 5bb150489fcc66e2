package affinity

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRemembersTheLastNode(t *testing.T) {
	tb := New(10, time.Hour, nil)
	if _, ok := tb.Node("s1"); ok {
		t.Fatal("an unknown session has a node")
	}
	tb.Used("s1", "a")
	tb.Used("s2", "b")
	tb.Used("s1", "c") // the session moved (its node failed)
	if n, ok := tb.Node("s1"); !ok || n != "c" {
		t.Errorf("s1 → %q %v, want c", n, ok)
	}
	if n, ok := tb.Node("s2"); !ok || n != "b" {
		t.Errorf("s2 → %q %v, want b", n, ok)
	}
}

func TestBoundedLeastRecentlyUsedFirst(t *testing.T) {
	tb := New(3, time.Hour, nil)
	for i := range 3 {
		tb.Used(fmt.Sprint("s", i), "a")
	}
	tb.Used("s0", "a") // s0 is fresh again: s1 is now the least recent
	tb.Used("s3", "a")
	if tb.Len() != 3 {
		t.Fatalf("len %d, want 3", tb.Len())
	}
	if _, ok := tb.Node("s1"); ok {
		t.Error("the least recently used session was kept")
	}
	for _, k := range []string{"s0", "s2", "s3"} {
		if _, ok := tb.Node(k); !ok {
			t.Errorf("%s forgotten", k)
		}
	}
}

func TestIdleSessionsExpire(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	tb := New(10, time.Minute, c.now)
	tb.Used("old", "a")
	c.t = c.t.Add(30 * time.Second)
	tb.Used("young", "b")
	c.t = c.t.Add(45 * time.Second) // old idle 75s, young 45s
	if _, ok := tb.Node("old"); ok {
		t.Error("a session idle past the TTL was kept")
	}
	if n, ok := tb.Node("young"); !ok || n != "b" {
		t.Errorf("young → %q %v", n, ok)
	}
	c.t = c.t.Add(2 * time.Minute)
	tb.Used("new", "c")
	if tb.Len() != 1 {
		t.Errorf("expired sessions not dropped as new ones come: len %d", tb.Len())
	}
}
