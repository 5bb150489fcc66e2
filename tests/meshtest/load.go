package meshtest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load sends the same POST from several workers in a loop until Stop,
// counting answers: 200 is ok, anything else (or no answer) failed.
type Load struct {
	ok, failed atomic.Int64
	first      atomic.Value // the first failure, as text
	stop       chan struct{}
	wg         sync.WaitGroup
}

// StartLoad starts workers POSTing body to url. Each request has 2 minutes.
func StartLoad(t testing.TB, workers int, url, body string) *Load {
	l := &Load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(url, body)
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

func (l *Load) one(url, body string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		l.fail(err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.fail(err.Error())
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.fail(resp.Status)
		return
	}
	l.ok.Add(1)
}

func (l *Load) fail(why string) {
	l.failed.Add(1)
	l.first.CompareAndSwap(nil, why)
}

// OK and Failed count the answers so far.
func (l *Load) OK() int64     { return l.ok.Load() }
func (l *Load) Failed() int64 { return l.failed.Load() }

// FirstFailure describes the first failed request ("" if none).
func (l *Load) FirstFailure() string {
	s, _ := l.first.Load().(string)
	return s
}

// WaitOK waits until n more requests than now have succeeded.
func (l *Load) WaitOK(t testing.TB, n int64, within time.Duration) {
	t.Helper()
	target := l.OK() + n
	deadline := time.Now().Add(within)
	for l.OK() < target {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d more requests succeeded within %s (%d failed, first: %s)",
				l.OK()-(target-n), n, within, l.Failed(), l.FirstFailure())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop stops the workers and waits for them. It is safe to call twice.
func (l *Load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// StartRateLoad sends body to url at a fixed rate (open loop: a slow answer
// does not delay the next request) until Stop.
func StartRateLoad(t testing.TB, perSecond int, url, body string) *Load {
	l := &Load{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one(url, body)
			}()
		}
	}()
	t.Cleanup(l.Stop)
	return l
}
