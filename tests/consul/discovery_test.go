package consul

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// passing counts the instances of a service whose checks all pass.
func passing(t *testing.T, c *api.Client, service string) int {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", true, nil)
	require.NoError(t, err)
	return len(entries)
}

// The services register themselves with gRPC health checks, find each
// other through Consul, and a killed adapter replica costs no request.
func TestServicesFindEachOtherAndSurviveAnAdapterCrash(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "n1", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true, Adapters: 2})

	for service, want := range map[string]int{"llmesh-adapter": 2, "llmesh-healthmon": 1, "llmesh-router": 1} {
		require.Eventually(t, func() bool { return passing(t, c, service) == want }, 20*time.Second, 50*time.Millisecond, service)
	}

	load := meshtest.StartLoad(t, 4, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	load.WaitOK(t, 100, 10*time.Second)
	m.Kill(t, "adapter")
	load.WaitOK(t, 300, 20*time.Second)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
	require.Eventually(t, func() bool { return passing(t, c, "llmesh-adapter") == 1 }, 20*time.Second, 50*time.Millisecond,
		"the dead replica's gRPC check fails")
}

// A service stopped gracefully takes itself out of Consul.
func TestGracefulStopDeregisters(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "n1", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true})
	require.Eventually(t, func() bool { return passing(t, c, "llmesh-router") == 1 }, 20*time.Second, 50*time.Millisecond)
	m.Stop(t, "router")
	services, _, err := c.Catalog().Service("llmesh-router", "", nil)
	require.NoError(t, err)
	assert.Empty(t, services)
}

// Two healthmon replicas: one writes checks; when it dies the other takes
// over and the checks keep telling the truth.
func TestTwoHealthmonReplicas(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "n1", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, Healthmons: 2})
	const writer = "holding the writer lock"
	writers := func() int {
		count := 0
		for _, l := range m.Logs("healthmon") {
			if strings.Contains(l, writer) {
				count++
			}
		}
		return count
	}
	require.Eventually(t, func() bool { return writers() == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { st, _ := check(t, c, "n1"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, writers(), "only one replica writes")

	m.KillWhere(t, "healthmon", writer)
	require.Eventually(t, func() bool { return writers() == 2 }, 45*time.Second, 50*time.Millisecond, "the other replica takes the lock")
	n.Kill()
	require.Eventually(t, func() bool {
		st, out := check(t, c, "n1")
		return st == api.HealthCritical && strings.Contains(out, "connection refused")
	}, 20*time.Second, 20*time.Millisecond)
}

// With healthmon gone, a router — even one started afterwards, which never
// heard from healthmon — routes on Consul's passing nodes and the models
// healthmon left in KV; when healthmon returns its stream takes over.
func TestRouterFallsBackToConsulWithoutHealthmon(t *testing.T) {
	agent := consultest.Start(t)
	n := meshtest.StartNode(t, "n1", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true})
	c := agent.Client(t)
	require.Eventually(t, func() bool {
		pairs, _, err := c.KV().List("llmesh/nodes/", nil)
		return err == nil && len(pairs) == 1
	}, 10*time.Second, 20*time.Millisecond, "healthmon stores node states in KV")
	require.Eventually(t, func() bool { st, _ := check(t, c, "n1"); return st == api.HealthPassing },
		10*time.Second, 20*time.Millisecond, "healthmon's verdict is on the node's check")

	load := meshtest.StartLoad(t, 2, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	load.WaitOK(t, 50, 10*time.Second)
	m.Stop(t, "healthmon")
	load.WaitOK(t, 100, 10*time.Second)
	load.Stop()
	assert.Zero(t, load.Failed(), "the running router keeps serving; first failure: %s", load.FirstFailure())

	late := m.StartRouter(t)
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodPost, late+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "a router started without healthmon serves from consul")
}

// A service registers once it listens, with its check passing, so routers
// find a new adapter replica at once rather than after its first check.
func TestServicesAreFoundAtOnce(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	first := make(chan string, 1)
	ctx := meshtest.Context(t, 30*time.Second)
	go func() {
		for ctx.Err() == nil {
			entries, _, err := c.Health().Service("llmesh-adapter", "", false, (&api.QueryOptions{}).WithContext(ctx))
			if err == nil && len(entries) > 0 {
				first <- entries[0].Checks.AggregatedStatus()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n := meshtest.StartNode(t, "n1", simnode.Config{Models: []string{"m"}})
	meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true})
	select {
	case st := <-first:
		assert.Equal(t, api.HealthPassing, st, "the adapter's first appearance in Consul")
	case <-ctx.Done():
		t.Fatal("the adapter never appeared in Consul")
	}
}
