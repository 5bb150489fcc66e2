package connlimit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for the accept loop and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve accepts on l until it is closed and hands each connection over.
func serve(t *testing.T, l net.Listener) <-chan net.Conn {
	accepted := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return accepted
}

func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// refused reads what the server sent and whether it then closed.
func refused(t *testing.T, c net.Conn) (string, bool) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

func TestCapPerClientAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs := &syncBuffer{}
	l := Wrap(inner, Options{Max: 2, Name: "http", Refuse: []byte("no\n"), Log: slog.New(slog.NewTextHandler(logs, nil)), LogEvery: time.Hour})
	accepted := serve(t, l)
	addr := inner.Addr().String()

	a1 := dialFrom(t, "127.0.0.1", addr)
	s1 := <-accepted
	dialFrom(t, "127.0.0.1", addr)
	<-accepted
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		got, closed := refused(t, c)
		assert.True(t, closed, "a connection over the cap is closed")
		assert.Equal(t, "no\n", got)
	}
	assert.EqualValues(t, 3, l.Refused())

	// Another address is another client.
	dialFrom(t, "127.0.0.2", addr)
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("127.0.0.2 was not accepted")
	}

	// A closed connection gives its slot back, once.
	require.NoError(t, s1.Close())
	_ = s1.Close() // a second close gives nothing back
	a1.Close()
	dialFrom(t, "127.0.0.1", addr)
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the freed slot was not reused")
	}
	c := dialFrom(t, "127.0.0.1", addr)
	_, closed := refused(t, c)
	assert.True(t, closed, "the cap still holds after the slot was reused")

	// One log line for 127.0.0.1 within LogEvery, none for 127.0.0.2.
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "connections refused"), out)
	assert.Contains(t, out, "client=127.0.0.1")
	assert.Contains(t, out, "listener=http")
	assert.Contains(t, out, "refused=1")
}

func TestNoCapAcceptsAll(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := Wrap(inner, Options{})
	accepted := serve(t, l)
	for range 5 {
		dialFrom(t, "127.0.0.1", inner.Addr().String())
		<-accepted
	}
	assert.Zero(t, l.Refused())
}

func TestRefusalsLoggedOncePerInterval(t *testing.T) {
	l := Wrap(nil, Options{Max: 1, LogEvery: time.Minute})
	t0 := time.Unix(1000, 0)
	assert.EqualValues(t, 1, l.countRefusal("a", t0), "the first refusal is logged")
	assert.Zero(t, l.countRefusal("a", t0.Add(time.Second)))
	assert.Zero(t, l.countRefusal("a", t0.Add(59*time.Second)))
	assert.EqualValues(t, 1, l.countRefusal("b", t0.Add(59*time.Second)), "each address is logged on its own")
	assert.EqualValues(t, 3, l.countRefusal("a", t0.Add(time.Minute)), "the next line counts the refusals not logged")
	assert.Zero(t, l.countRefusal("a", t0.Add(61*time.Second)))
}

func TestForgetsOldAddresses(t *testing.T) {
	l := Wrap(nil, Options{Max: 1, LogEvery: time.Minute})
	t0 := time.Unix(1000, 0)
	for i := range minPruneAt {
		l.countRefusal(net.IPv4(10, 0, byte(i>>8), byte(i)).String(), t0)
	}
	require.Len(t, l.logged, minPruneAt)
	l.countRefusal("new", t0.Add(time.Minute))
	assert.Len(t, l.logged, 1, "addresses last logged LogEvery ago are forgotten")
}
