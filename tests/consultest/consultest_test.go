package consultest_test

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/tests/consultest"
)

const service = "llm-node"

// register adds one instance of service through the agent API, as an
// llmesh adapter does for itself.
func register(t *testing.T, c *api.Client, id string, port int) {
	t.Helper()
	err := c.Agent().ServiceRegisterOpts(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: "127.0.0.1", Port: port,
		Meta: map[string]string{"backend": "ollama"},
	}, api.ServiceRegisterOpts{ReplaceExistingChecks: true})
	require.NoError(t, err)
}

// ids returns the instance IDs of service that the catalog has, and the
// index to block on for the next change.
func ids(t *testing.T, c *api.Client, q *api.QueryOptions) ([]string, uint64) {
	t.Helper()
	entries, meta, err := c.Health().Service(service, "", true, q)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Service.ID)
	}
	return out, meta.LastIndex
}

func TestAgentLifecycle(t *testing.T) {
	a := consultest.Start(t)
	c := a.Client(t)

	// The agent API answers at once, but the catalog sees the instance only
	// after the agent's anti-entropy sync, which runs in the background.
	register(t, c, "node-a", 11434)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		entries, _, err := c.Health().Service(service, "", true, nil)
		require.NoError(ct, err)
		require.Len(ct, entries, 1)
		require.Equal(ct, "node-a", entries[0].Service.ID)
		require.Equal(ct, 11434, entries[0].Service.Port)
		require.Equal(ct, "ollama", entries[0].Service.Meta["backend"])
		require.Equal(ct, a.Node, entries[0].Node.Node)
	}, 10*time.Second, 20*time.Millisecond)

	// A blocking query on the current index waits until the service
	// changes, then returns the new instance set and a larger index.
	_, index := ids(t, c, nil)
	type result struct {
		ids   []string
		index uint64
		err   error
	}
	got := make(chan result, 1)
	go func() {
		q := &api.QueryOptions{WaitIndex: index, WaitTime: time.Minute}
		entries, meta, err := c.Health().Service(service, "", true, q)
		r := result{err: err}
		if err == nil {
			r.index = meta.LastIndex
			for _, e := range entries {
				r.ids = append(r.ids, e.Service.ID)
			}
		}
		got <- r
	}()
	select {
	case r := <-got:
		t.Fatalf("blocking query returned before anything changed: %+v (index %d)", r, index)
	case <-time.After(500 * time.Millisecond): // still blocked, as it should be
	}
	register(t, c, "node-b", 11435)
	select {
	case r := <-got:
		require.NoError(t, r.err)
		require.ElementsMatch(t, []string{"node-a", "node-b"}, r.ids)
		require.Greater(t, r.index, index)
	case <-time.After(30 * time.Second):
		t.Fatal("blocking query did not return after a second instance was registered")
	}

	// Consul goes away: the same client now fails.
	a.Stop(t)
	_, err := c.Agent().Self()
	require.Error(t, err)

	// Consul comes back on the same address with an empty catalog (dev
	// mode keeps nothing), and the same client works again.
	a.Restart(t)
	after, restartIndex := ids(t, c, nil)
	require.Empty(t, after, "a restarted dev agent starts empty")
	t.Logf("index before stop %d, after restart %d", index, restartIndex)
	register(t, c, "node-a", 11434)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		entries, _, err := c.Health().Service(service, "", true, nil)
		require.NoError(ct, err)
		require.Len(ct, entries, 1)
	}, 10*time.Second, 20*time.Millisecond)
}

// Agents of parallel tests have their own ports and catalogs.
func TestAgentsAreIsolated(t *testing.T) {
	a, b := consultest.Start(t), consultest.Start(t)
	require.NotEqual(t, a.HTTPAddr, b.HTTPAddr)
	require.NotEqual(t, a.Node, b.Node)

	register(t, a.Client(t), "only-in-a", 1)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		entries, _, err := a.Client(t).Health().Service(service, "", true, nil)
		require.NoError(ct, err)
		require.Len(ct, entries, 1)
	}, 10*time.Second, 20*time.Millisecond)
	got, _ := ids(t, b.Client(t), nil)
	require.Empty(t, got)
}

// With ACLs on, a request without a token is denied, the management
// token may do everything, and Token gives exactly its policy.
func TestAgentWithACLs(t *testing.T) {
	a := consultest.StartWith(t, consultest.Options{ACL: true})
	require.NotEmpty(t, a.ManagementToken)

	err := a.ClientWithToken(t, "").Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "x", Name: service})
	require.Error(t, err, "no token: denied")
	assert.Contains(t, err.Error(), "Permission denied")

	token := a.Token(t, "llm-node-writer", `service "`+service+`" { policy = "write" }`)
	c := a.ClientWithToken(t, token)
	register(t, c, "node-a", 11434)
	err = c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "y", Name: "other"})
	require.Error(t, err, "another service: denied")
	assert.Contains(t, err.Error(), "Permission denied")

	// The token may not read nodes: the health query hides the instance.
	entries, meta, err := c.Health().Service(service, "", false, nil)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.True(t, meta.ResultsFilteredByACLs)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		entries, _, err := a.Client(t).Health().Service(service, "", false, nil)
		require.NoError(ct, err)
		require.Len(ct, entries, 1)
	}, 10*time.Second, 20*time.Millisecond)
}
