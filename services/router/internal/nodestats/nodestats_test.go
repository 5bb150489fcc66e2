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
	end1(100*time.Millisecond, Served)
	end1(time.Hour, Served) // a second call changes nothing
	assert.Equal(t, int64(1), s.Load("a").InFlight)
	assert.Equal(t, 100*time.Millisecond, s.Load("a").TTFT)
	end2(200*time.Millisecond, Served)
	assert.Equal(t, time.Duration(Alpha*200e6+(1-Alpha)*100e6), s.Load("a").TTFT, "EWMA")
	assert.Equal(t, int64(0), s.Load("a").InFlight)
}

// A node that fails is out at once, comes back through one half-open trial
// after the cool-down, and stays out longer when the trial fails.
func TestBreaker(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Second, c.now)
	s.Begin("a")(0, Unreachable)
	assert.True(t, s.Load("a").Open, "out at once")

	c.advance(999 * time.Millisecond)
	assert.True(t, s.Load("a").Open)
	c.advance(time.Millisecond)
	assert.False(t, s.Load("a").Open, "cool-down over: a trial may go")

	trial := s.Begin("a")
	assert.True(t, s.Load("a").Open, "only one trial at a time")
	trial(0, Unreachable)
	c.advance(time.Second)
	assert.True(t, s.Load("a").Open, "a failed trial doubles the cool-down")
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open)

	s.Begin("a")(50*time.Millisecond, Served)
	assert.False(t, s.Load("a").Open, "a good trial closes the breaker")
	s.Begin("a")(0, Unreachable)
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open, "and resets the cool-down")
	assert.False(t, s.Load("b").Open, "other nodes are unaffected")
}

// A good probe brings back at once a node that could not be reached, but
// not one that took requests and did not answer them: the probe's cheap
// calls succeed on a hung node too. That one comes back through a trial.
func TestRecoveredDependsOnTheFailure(t *testing.T) {
	cases := []struct {
		outcome  Outcome
		ttft     time.Duration
		stillOut bool
	}{
		{Unreachable, 0, false},
		{NoAnswer, 0, true},                     // no first token, or no response
		{NoAnswer, 30 * time.Millisecond, true}, // broken off after the first token
	}
	for _, tc := range cases {
		t.Run(tc.outcome.String(), func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			s := New(time.Hour, c.now)
			s.Begin("a")(tc.ttft, tc.outcome)
			assert.True(t, s.Load("a").Open, "out at once")
			s.Recovered("a")
			assert.Equal(t, tc.stillOut, s.Load("a").Open)
			if !tc.stillOut {
				return
			}
			c.advance(time.Hour)
			assert.False(t, s.Load("a").Open, "after the cool-down a trial may go")
			trial := s.Begin("a")
			s.Recovered("a")
			assert.True(t, s.Load("a").Open, "the trial is in flight")
			trial(40*time.Millisecond, Served)
			assert.False(t, s.Load("a").Open, "a good trial brings it back")

			s.Begin("a")(0, Unreachable)
			s.Recovered("a")
			assert.False(t, s.Load("a").Open, "the last failure decides: a refused connection is a probe's to clear")
		})
	}
}

// The latest failure decides how the node comes back: a node that hung
// and then refused connections (restarted) comes back with a good probe;
// one that refused and then hung waits for a trial.
func TestLatestFailureDecides(t *testing.T) {
	s := New(time.Hour, nil)
	s.Begin("a")(0, NoAnswer)
	s.Begin("a")(0, Unreachable)
	s.Recovered("a")
	assert.False(t, s.Load("a").Open)

	s.Begin("a")(0, Unreachable)
	s.Begin("a")(0, NoAnswer)
	s.Recovered("a")
	assert.True(t, s.Load("a").Open)
}

// A configured cool-down longer than MaxCooldown is its own cap.
func TestLongCooldownIsHonoured(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Hour, c.now)
	s.Begin("a")(0, NoAnswer)
	c.advance(59 * time.Minute)
	assert.True(t, s.Load("a").Open)
	c.advance(time.Minute)
	assert.False(t, s.Load("a").Open)
}
