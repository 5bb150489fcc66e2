package nodestats

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestInFlightAndTTFT(t *testing.T) {
	s := New(time.Second, nil)
	end1 := s.Begin("a")
	end2 := s.Begin("a")
	assert.Equal(t, int64(2), s.Load("a").InFlight)
	end1(100*time.Millisecond, false)
	end1(time.Hour, false) // a second call changes nothing
	assert.Equal(t, int64(1), s.Load("a").InFlight)
	assert.Equal(t, 100*time.Millisecond, s.Load("a").TTFT)
	end2(200*time.Millisecond, false)
	assert.Equal(t, time.Duration(Alpha*200e6+(1-Alpha)*100e6), s.Load("a").TTFT, "EWMA")
	assert.Equal(t, int64(0), s.Load("a").InFlight)
}

// A node that fails is out at once, comes back through one half-open trial
// after the cool-down, and stays out longer when the trial fails.
func TestBreaker(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Second, c.now)
	s.Begin("a")(0, true)
	assert.True(t, s.Load("a").Open, "out at once")

	c.advance(999 * time.Millisecond)
	assert.True(t, s.Load("a").Open)
	c.advance(time.Millisecond)
	assert.False(t, s.Load("a").Open, "cool-down over: a trial may go")

	trial := s.Begin("a")
	assert.True(t, s.Load("a").Open, "only one trial at a time")
	trial(0, true)
	c.advance(time.Second)
	assert.True(t, s.Load("a").Open, "a failed trial doubles the cool-down")
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open)

	s.Begin("a")(50*time.Millisecond, false)
	assert.False(t, s.Load("a").Open, "a good trial closes the breaker")
	s.Begin("a")(0, true)
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open, "and resets the cool-down")
	assert.False(t, s.Load("b").Open, "other nodes are unaffected")
}

func TestRecoveredClosesTheBreaker(t *testing.T) {
	s := New(time.Hour, nil)
	s.Begin("a")(0, true)
	assert.True(t, s.Load("a").Open)
	s.Recovered("a")
	assert.False(t, s.Load("a").Open, "a good probe brings the node back at once")
}
