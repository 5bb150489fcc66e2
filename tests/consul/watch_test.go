package consul

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulwatch"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// The watch follows a real agent through registrations, an outage and a
// restart that loses Consul's state (its index goes backwards).
func TestWatchFollowsConsulThroughARestart(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	var logs syncBuffer
	var mu sync.Mutex
	var seen []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := &consulwatch.Watch{Client: c, Service: "llm", Wait: 2 * time.Second, MaxBackoff: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	go func() {
		defer close(done)
		w.Run(ctx, func(entries []*api.ServiceEntry) {
			mu.Lock()
			defer mu.Unlock()
			seen = seen[:0]
			for _, e := range entries {
				seen = append(seen, e.Service.ID)
			}
		})
	}()
	defer func() { cancel(); <-done }()
	ids := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string{}, seen...)
	}
	reg := func(id string) {
		require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "llm", Port: 1}))
	}

	reg("a")
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual([]string{"a"}, ids()) }, 10*time.Second, 10*time.Millisecond)
	agent.Stop(t)
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("consul unreachable")) }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"a"}, ids(), "the last view is kept while Consul is away")
	agent.Restart(t)
	reg("b")
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual([]string{"b"}, ids()) }, 20*time.Second, 10*time.Millisecond,
		"after the restart the watch follows the new state (logs: %s)", logs.String())
	assert.Contains(t, logs.String(), "consul reachable again")
}
