package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowConn is a connection that sends a request's headers a few bytes at
// a time and never finishes them.
type slowConn struct {
	c      net.Conn
	closed atomic.Bool  // the router closed it
	at     atomic.Int64 // when, in UnixNano
}

// dialFrom opens a TCP connection from the loopback address from: each
// address of 127.0.0.0/8 is another client to the router.
func dialFrom(ctx context.Context, from, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// A thousand slowloris connections from one address (not 127.0.0.1, where
// the test's other clients may keep idle connections): those over
// -max-conns-per-client are refused at once, the others are closed after
// -http-read-header-timeout (as is a native gRPC connection that sends
// no preface), and all the while a client from another
// address is served.
func TestSlowlorisConnections(t *testing.T) {
	const (
		slow      = 1000
		perClient = 500
		slowAddr  = "127.0.0.3" // no other connection of the test comes from it
	)
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}, Tokens: 3})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{RouterArgs: []string{
		"-max-conns-per-client", strconv.Itoa(perClient), "-http-read-header-timeout", "15s",
	}})
	ctx := meshtest.Context(t, 3*time.Minute)
	addr := strings.TrimPrefix(m.RESTURL, "http://")

	conns := make([]*slowConn, 0, slow)
	var readers sync.WaitGroup
	t.Cleanup(func() {
		for _, s := range conns {
			s.c.Close()
		}
		readers.Wait()
	})
	for range slow {
		c, err := dialFrom(ctx, slowAddr, addr)
		require.NoError(t, err)
		s := &slowConn{c: c}
		conns = append(conns, s)
		_, _ = io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: llmesh\r\n")
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, _ = io.Copy(io.Discard, c) // until the router closes it (or the test does)
			s.at.Store(time.Now().UnixNano())
			s.closed.Store(true)
		}()
	}
	// A native gRPC connection that never sends its HTTP/2 preface.
	silent, err := dialFrom(ctx, slowAddr, m.GRPCAddr)
	require.NoError(t, err)
	defer silent.Close()
	silentClosed := make(chan struct{})
	go func() {
		defer close(silentClosed)
		_, _ = io.Copy(io.Discard, silent)
	}()

	// Trickle one more header line into each connection every 500ms.
	stopTrickle := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopTrickle:
				return
			case <-tick.C:
			}
			for _, s := range conns {
				if !s.closed.Load() {
					_ = s.c.SetWriteDeadline(time.Now().Add(time.Second))
					_, _ = io.WriteString(s.c, "X-Trickle-"+strconv.Itoa(i)+": x\r\n")
				}
			}
		}
	}()
	t.Cleanup(func() { close(stopTrickle); <-trickled })

	closedNow := func() int {
		k := 0
		for _, s := range conns {
			if s.closed.Load() {
				k++
			}
		}
		return k
	}
	require.Eventually(t, func() bool { return closedNow() >= slow-perClient }, 30*time.Second, 20*time.Millisecond,
		"the connections over the per-client cap are closed at once")

	t.Run("one more from the same address gets a 429 and is closed", func(t *testing.T) {
		c, err := dialFrom(ctx, slowAddr, addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		e := decodeError(t, resp)
		assert.Equal(t, "rate_limit_error", e.Error.Type)
		if assert.NotNil(t, e.Error.Code) {
			assert.Equal(t, "too_many_connections", *e.Error.Code)
		}
	})

	t.Run("a client from another address is served", func(t *testing.T) {
		good := openai.NewClient(option.WithBaseURL(m.RESTURL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
			option.WithHTTPClient(&http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					return dialFrom(ctx, "127.0.0.2", addr)
				},
			}}))
		for range 3 {
			resp, err := good.Chat.Completions.New(meshtest.Context(t, 30*time.Second), openai.ChatCompletionNewParams{
				Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			require.NoError(t, err)
			assert.Equal(t, simnode.Content(3), resp.Choices[0].Message.Content)
		}
	})
	served := time.Now().UnixNano()
	held := closedNow()
	assert.Equal(t, slow-perClient, held, "only the connections over the cap were closed while the good client was served")

	t.Run("the refusals are counted and logged once", func(t *testing.T) {
		fams := scrape(t, m.RouterAdminURL+"/metrics")
		assert.Equal(t, float64(slow-perClient+1), sum(fams, "llmesh_router_connections_refused_total", false, map[string]string{"listener": "http"}))
		var lines int
		for _, l := range strings.Split(strings.Join(m.Logs("router"), ""), "\n") {
			if strings.Contains(l, "connections refused") && strings.Contains(l, "client="+slowAddr+" ") {
				lines++
			}
		}
		assert.Equal(t, 1, lines, "one line per address per minute")
	})

	t.Run("slow headers are closed after the header timeout", func(t *testing.T) {
		require.Eventually(t, func() bool { return closedNow() == slow }, 2*time.Minute, 100*time.Millisecond)
		late := 0
		for _, s := range conns {
			if s.at.Load() > served {
				late++
			}
		}
		assert.Equal(t, perClient, late, "the connections under the cap were open until the good client was served")
		select {
		case <-silentClosed:
		case <-time.After(time.Minute):
			t.Error("a gRPC connection without a preface was not closed")
		}
		// The router is still fine.
		c, err := dialFrom(ctx, slowAddr, addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /v1/models HTTP/1.1\r\nHost: llmesh\r\nConnection: close\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}
