// Package connlimit caps how many connections one client address may hold
// open on a listener at once, so that one client (a slowloris, a runaway
// pool) cannot take every connection a server can hold.
package connlimit

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLogEvery is how often, at most, a refusal is logged per client
// address when Options.LogEvery is zero.
const DefaultLogEvery = time.Minute

// refuseWriteTimeout bounds writing Options.Refuse to a refused
// connection; it goes into an empty socket buffer, so it does not wait.
const refuseWriteTimeout = 100 * time.Millisecond

// minPruneAt is how many refused addresses are remembered before those
// last logged more than LogEvery ago are forgotten.
const minPruneAt = 1024

// Options configure a Listener.
type Options struct {
	// Max is how many connections one client IP address may hold open at
	// once; 0 means no cap.
	Max int
	// Name names the listener in log lines ("http", "grpc").
	Name string
	// Refuse, when set, is written to a refused connection before it is
	// closed (an HTTP 429 response, say); nil closes it at once.
	Refuse []byte
	// Log gets one warning per client address per LogEvery while that
	// address is refused, with how many of its connections were.
	Log *slog.Logger
	// LogEvery defaults to DefaultLogEvery.
	LogEvery time.Duration
}

// Listener wraps a net.Listener: Accept returns only connections whose
// client address is under the cap and closes the others at once.
type Listener struct {
	net.Listener
	o       Options
	refused atomic.Int64

	mu      sync.Mutex
	open    map[string]int       // client IP → connections open
	logged  map[string]*refusals // client IP → refusals since its last log line
	pruneAt int                  // len(logged) at which old entries are dropped
}

type refusals struct {
	last  time.Time // when the last log line for this address was written
	count int64     // refused since then
}

// Wrap returns l with the per-client cap of o. With o.Max 0 it still
// counts nothing and refuses nothing.
func Wrap(l net.Listener, o Options) *Listener {
	if o.LogEvery <= 0 {
		o.LogEvery = DefaultLogEvery
	}
	return &Listener{Listener: l, o: o, open: map[string]int{}, logged: map[string]*refusals{}, pruneAt: minPruneAt}
}

// Refused is how many connections were refused since the listener was
// made.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Accept waits for the next connection from a client under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.o.Max <= 0 {
			return c, nil
		}
		ip := clientIP(c.RemoteAddr())
		if l.admit(ip) {
			return &conn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		l.refuse(c, ip)
	}
}

func (l *Listener) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.o.Max {
		return false
	}
	l.open[ip]++
	return true
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

func (l *Listener) refuse(c net.Conn, ip string) {
	l.refused.Add(1)
	if l.o.Refuse != nil {
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = c.Write(l.o.Refuse)
	}
	_ = c.Close()
	if n := l.countRefusal(ip, time.Now()); n > 0 && l.o.Log != nil {
		l.o.Log.Warn("connections refused: client at its cap", "listener", l.o.Name, "client", ip,
			"max_conns_per_client", l.o.Max, "refused", n, "next_log_after", l.o.LogEvery)
	}
}

// countRefusal records one refusal of ip at now and returns how many to
// log now: those since the address's last log line when that was
// LogEvery ago or more, else 0.
func (l *Listener) countRefusal(ip string, now time.Time) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.logged[ip]
	if r == nil {
		if len(l.logged) >= l.pruneAt {
			// Addresses last logged long ago are forgotten (with any
			// refusals not logged yet; Refused still counts them).
			for k, old := range l.logged {
				if now.Sub(old.last) >= l.o.LogEvery {
					delete(l.logged, k)
				}
			}
			l.pruneAt = max(minPruneAt, 2*len(l.logged))
		}
		r = &refusals{}
		l.logged[ip] = r
	}
	r.count++
	if !r.last.IsZero() && now.Sub(r.last) < l.o.LogEvery {
		return 0
	}
	n := r.count
	r.last, r.count = now, 0
	return n
}

// clientIP is the IP of a remote address, without its port.
func clientIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, when closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

// CloseWrite half-closes the connection as the one it wraps does, so an
// HTTP server can still send its last answer before closing.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
