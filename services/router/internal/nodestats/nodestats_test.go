package nodestats

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestInFlightAndTTFT(t *testing.T) {
	s := New(time.Second, nil)
	end1 := begin(s, "a")
	end2 := begin(s, "a")
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
	begin(s, "a")(0, Unreachable)
	assert.True(t, s.Load("a").Open, "out at once")

	c.advance(999 * time.Millisecond)
	assert.True(t, s.Load("a").Open)
	c.advance(time.Millisecond)
	assert.False(t, s.Load("a").Open, "cool-down over: a trial may go")

	trial := begin(s, "a")
	assert.True(t, s.Load("a").Open, "only one trial at a time")
	trial(0, Unreachable)
	c.advance(time.Second)
	assert.True(t, s.Load("a").Open, "a failed trial doubles the cool-down")
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open)

	begin(s, "a")(50*time.Millisecond, Served)
	assert.False(t, s.Load("a").Open, "a good trial closes the breaker")
	begin(s, "a")(0, Unreachable)
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
			begin(s, "a")(tc.ttft, tc.outcome)
			assert.True(t, s.Load("a").Open, "out at once")
			s.Recovered("a")
			assert.Equal(t, tc.stillOut, s.Load("a").Open)
			if !tc.stillOut {
				return
			}
			c.advance(time.Hour)
			assert.False(t, s.Load("a").Open, "after the cool-down a trial may go")
			trial := begin(s, "a")
			s.Recovered("a")
			assert.True(t, s.Load("a").Open, "the trial is in flight")
			trial(40*time.Millisecond, Served)
			assert.False(t, s.Load("a").Open, "a good trial brings it back")

			begin(s, "a")(0, Unreachable)
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
	begin(s, "a")(0, NoAnswer)
	begin(s, "a")(0, Unreachable)
	s.Recovered("a")
	assert.False(t, s.Load("a").Open)

	begin(s, "a")(0, Unreachable)
	begin(s, "a")(0, NoAnswer)
	s.Recovered("a")
	assert.True(t, s.Load("a").Open)
}

// A configured cool-down longer than MaxCooldown is its own cap.
func TestLongCooldownIsHonoured(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Hour, c.now)
	begin(s, "a")(0, NoAnswer)
	c.advance(59 * time.Minute)
	assert.True(t, s.Load("a").Open)
	c.advance(time.Minute)
	assert.False(t, s.Load("a").Open)
}

// begin starts a request on id with no in-flight limit.
func begin(s *Stats, id string) func(time.Duration, Outcome) {
	end, _ := s.Begin(id, 0)
	return end
}

func TestBeginRefusesAFullNode(t *testing.T) {
	s := New(time.Second, nil)
	end1, ok1 := s.Begin("a", 2)
	_, ok2 := s.Begin("a", 2)
	_, ok3 := s.Begin("a", 2)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("limit 2: begins = %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if got := s.Load("a").InFlight; got != 2 {
		t.Fatalf("in flight after a refused begin = %d, want 2", got)
	}
	end1(time.Millisecond, Served)
	if _, ok := s.Begin("a", 2); !ok {
		t.Fatal("a slot freed, but begin still refused")
	}
}

// However many requests race for the last slots, the cap holds.
func TestBeginHoldsTheCapUnderConcurrency(t *testing.T) {
	s := New(time.Second, nil)
	const limit, racers = 3, 64
	var began atomic.Int64
	var wg sync.WaitGroup
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := s.Begin("a", limit); ok {
				began.Add(1)
			}
		}()
	}
	wg.Wait()
	if began.Load() != limit || s.Load("a").InFlight != limit {
		t.Fatalf("began %d, in flight %d; want %d", began.Load(), s.Load("a").InFlight, limit)
	}
}

// Requests that fail together on a node that has just hung are one
// incident: the breaker opens once with the base cool-down, not eight
// doublings straight to the cap. A failed trial afterwards is a new
// incident and doubles it.
func TestConcurrentFailuresCountOnce(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Second, c.now)
	ends := make([]func(time.Duration, Outcome), 8)
	for i := range ends {
		ends[i] = begin(s, "a")
	}
	for _, end := range ends {
		end(0, NoAnswer)
	}
	assert.True(t, s.Load("a").Open)
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open, "the base cool-down: eight failures of one incident counted once")

	trial := begin(s, "a")
	trial(0, NoAnswer)
	c.advance(time.Second)
	assert.True(t, s.Load("a").Open, "a failed trial is a new incident: the cool-down doubles")
	c.advance(time.Second)
	assert.False(t, s.Load("a").Open)
}

// A request that was under way when the breaker opened and then succeeds
// says nothing about the node since: the breaker stays open until a trial.
func TestOldSuccessDoesNotCloseTheBreaker(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(time.Second, c.now)
	old := begin(s, "a")
	begin(s, "a")(0, NoAnswer)
	old(10*time.Millisecond, Served)
	assert.True(t, s.Load("a").Open)
}

// Attempts on a node hear at once when it leaves rotation for not
// answering — another request's NoAnswer, or Leave (healthmon's verdict) —
// but not when it is merely unreachable, and not for leaves before they
// began.
func TestAttemptsHearTheNodeLeave(t *testing.T) {
	s := New(time.Second, nil)
	left := func(a Attempt) bool {
		select {
		case <-a.Left:
			return true
		default:
			return false
		}
	}
	waiting, _ := s.Start("a", 0)
	begin(s, "a")(0, Unreachable)
	assert.False(t, left(waiting), "unreachable: requests under way fail on their own")
	s.Recovered("a")

	begin(s, "a")(0, NoAnswer)
	assert.True(t, left(waiting), "another request found the node not answering")
	later, _ := s.Start("a", 0)
	assert.False(t, left(later), "a leave before the attempt began")
	s.Leave("a")
	assert.True(t, left(later), "healthmon declared the node down")
	waiting.End(0, Served)
	later.End(0, Served)
	assert.Equal(t, int64(0), s.Load("a").InFlight)
}
