package consul

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hungURL is a node that accepts connections and never answers, as a
// stopped (SIGSTOP) or wedged server does.
func hungURL(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + lis.Addr().String()
}

// registerOnAgent registers a node the way its own Consul agent would
// (deployments/consul), on the agent healthmon talks to.
func registerOnAgent(t *testing.T, c *api.Client, id, nodeURL string) {
	t.Helper()
	u, err := url.Parse(nodeURL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "llm", Address: u.Hostname(), Port: port, Meta: map[string]string{"llmesh-kind": "ollama"},
	}))
}

func countLogs(m *meshtest.Mesh, service, text string) int {
	n := 0
	for _, l := range m.Logs(service) {
		n += strings.Count(l, text)
	}
	return n
}

// A node that accepts connections and never answers is down, with the
// reason, even when healthmon's probe timeout is shorter than the
// adapter's; nothing says the adapter is unreachable.
func TestHungNodeIsMarkedDown(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true,
		HealthmonArgs: []string{"-probe-timeout", "1s"}})
	llmesh(t, agent, "node", "register", "-id", "hung", "-url", hungURL(t), "-kind", "ollama")
	require.Eventually(t, func() bool {
		st, out := check(t, c, "hung")
		return st == api.HealthCritical && strings.Contains(out, "no answer within")
	}, 15*time.Second, 50*time.Millisecond)
	assert.Zero(t, countLogs(m, "healthmon", "adapter unreachable"))
}

// A node its own agent registered, dead from the start, shows the cause on
// its check in the catalog at once — the first verdict changes the check's
// status, which the agent syncs at once (a change of output alone would
// wait minutes for its check_update_interval).
func TestAgentRegisteredDeadNodeShowsItsCause(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	dead := meshtest.StartNode(t, "dead", simnode.Config{Models: []string{"m"}})
	dead.Kill()
	registerOnAgent(t, c, "dead", dead.URL)
	require.Eventually(t, func() bool {
		st, out := check(t, c, "dead")
		return st == api.HealthCritical && strings.Contains(out, "connection refused")
	}, 15*time.Second, 50*time.Millisecond, "the health API shows why the node is down")
}

// A node registered again under the id of one that left starts with no
// verdict: its check never shows the old node's.
func TestReregisteredNodeAwaitsItsFirstProbe(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true,
		HealthmonArgs: []string{"-probe-timeout", "1s"}})
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}})
	llmesh(t, agent, "node", "register", "-id", "n", "-url", n.URL, "-kind", "ollama")
	require.Eventually(t, func() bool { st, _ := check(t, c, "n"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)
	llmesh(t, agent, "node", "deregister", "-id", "n")
	require.Eventually(t, func() bool { st, _ := check(t, c, "n"); return st == "" }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { // healthmon saw it leave: it dropped the node's state from KV
		pair, _, err := c.KV().Get("llmesh/nodes/n", nil)
		return err == nil && pair == nil
	}, 10*time.Second, 20*time.Millisecond)

	llmesh(t, agent, "node", "register", "-id", "n", "-url", hungURL(t), "-kind", "ollama")
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, out := check(t, c, "n")
		require.NotEqual(t, api.HealthPassing, st, "the new node has the old one's verdict: %s", out)
		if st == api.HealthCritical && strings.Contains(out, "no answer within") {
			break
		}
		require.True(t, time.Now().Before(deadline), "no verdict on the new node; check %s: %s", st, out)
		time.Sleep(20 * time.Millisecond)
	}
}

// Checks healthmon writes to its agent are refreshed within their TTL: a
// node that stays up stays passing.
func TestAgentChecksDoNotExpireWhileHealthmonRuns(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	// A 2s TTL is refreshed every ~0.7s: slack enough for a loaded CI
	// machine, and watched for more than two TTLs.
	meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true,
		HealthmonArgs: []string{"-consul-check-ttl", "2s"}})
	n := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}})
	registerOnAgent(t, c, "n", n.URL)
	require.Eventually(t, func() bool { st, _ := check(t, c, "n"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)
	for end := time.Now().Add(4500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		st, out := check(t, c, "n")
		require.Equal(t, api.HealthPassing, st, "the check flapped: %s", out)
	}
}

// With healthmon gone longer than the checks' TTL, routers still route on
// its last verdicts: to the node it last saw up, not to the one it saw go
// down.
func TestFallbackOutlivesCheckTTL(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true, NoModelWait: true,
		HealthmonArgs: []string{"-consul-check-ttl", "1s"}})
	up := meshtest.StartNode(t, "up", simnode.Config{Models: []string{"m"}})
	gone := meshtest.StartNode(t, "gone", simnode.Config{Models: []string{"g"}})
	registerOnAgent(t, c, "up", up.URL)
	registerOnAgent(t, c, "gone", gone.URL)
	m.WaitModels(t, 2)
	gone.Kill()
	require.Eventually(t, func() bool { st, _ := check(t, c, "gone"); return st == api.HealthCritical }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		pairs, _, err := c.KV().List("llmesh/nodes/", nil)
		return err == nil && len(pairs) == 1 && pairs[0].Key == "llmesh/nodes/up"
	}, 10*time.Second, 20*time.Millisecond, "KV holds only the node that is up")

	m.Stop(t, "healthmon")
	require.Eventually(t, func() bool {
		st, out := check(t, c, "up")
		return st == api.HealthCritical && strings.HasPrefix(out, "TTL expired")
	}, 10*time.Second, 50*time.Millisecond, "the check expires with no healthmon to refresh it")

	late := m.StartRouter(t)
	for _, router := range []string{m.RESTURL, late} {
		require.Eventually(t, func() bool { return chatAt(t, router, "m") == http.StatusOK }, 20*time.Second, 50*time.Millisecond,
			"%s routes to the node healthmon last saw up", router)
		assert.NotEqual(t, http.StatusOK, chatAt(t, router, "g"), "%s routes to a node healthmon saw go down", router)
	}
}

func chatAt(t *testing.T, base, model string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(meshtest.Context(t, 10*time.Second), http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// llmesh -h prints its usage and succeeds.
func TestLlmeshHelp(t *testing.T) {
	out, err := exec.Command(bins["llmesh"], "-h").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "llmesh node register")
}

// `llmesh node deregister` removes only what `llmesh node register` made,
// and says so when there is nothing it may remove.
func TestDeregisterRefusesWhatItDidNotRegister(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	registerOnAgent(t, c, "own-agent", "http://127.0.0.1:11434")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bins["llmesh"], args...)
		cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+agent.HTTPAddr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("node", "deregister", "-id", "nobody")
	require.Error(t, err, out)
	assert.Contains(t, out, "no node nobody in Consul")
	assert.NotContains(t, out, "deregistered nobody")

	out, err = run("node", "deregister", "-id", "own-agent")
	require.Error(t, err, out)
	assert.Contains(t, out, "consul services deregister -id own-agent")
	svcs, _, err := c.Catalog().Service("llm", "", nil)
	require.NoError(t, err)
	assert.Len(t, svcs, 1, "the agent's node is untouched")

	llmesh(t, agent, "node", "register", "-id", "ext", "-url", "http://127.0.0.1:1", "-kind", "ollama")
	assert.Contains(t, llmesh(t, agent, "node", "deregister", "-id", "ext"), "deregistered ext")
}

// A static node whose id Consul already has under another address loses
// to Consul's registration; the conflict is logged once and is in the
// node's reason.
func TestStaticNodeConflictingWithConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	fromFile := meshtest.StartNode(t, "dup", simnode.Config{Models: []string{"file"}})
	inConsul := meshtest.StartNode(t, "dup", simnode.Config{Models: []string{"consul"}})
	registerOnAgent(t, c, "dup", inConsul.URL)
	m := meshtest.Start(t, bins, []*meshtest.Node{fromFile}, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	require.Eventually(t, func() bool {
		st, out := check(t, c, "dup")
		return st == api.HealthPassing && strings.Contains(out, "the nodes file's ollama node at "+fromFile.URL+" is ignored")
	}, 10*time.Second, 20*time.Millisecond)
	// Consul's check can pass before the router has applied healthmon's
	// verdict: wait for the router's own view.
	m.WaitRouterView(t, func(nodes map[string]meshtest.RouterNode) bool {
		n, ok := nodes["dup"]
		return ok && n.Status == "up" && len(n.Models) == 1 && n.Models[0].ID == "consul"
	})
	assert.Equal(t, http.StatusOK, chat(t, m, "consul"))
	assert.NotEqual(t, http.StatusOK, chat(t, m, "file"))
	// Two more views of Consul, each with the conflict in it: another node
	// joins, then leaves.
	other := meshtest.StartNode(t, "other", simnode.Config{Models: []string{"o"}})
	registerOnAgent(t, c, "other", other.URL)
	require.Eventually(t, func() bool { st, _ := check(t, c, "other"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, c.Agent().ServiceDeregister("other"))
	require.Eventually(t, func() bool {
		pair, _, err := c.KV().Get("llmesh/nodes/other", nil)
		return err == nil && pair == nil
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, countLogs(m, "healthmon", "static node conflicts with consul"), "logged once, not per view")
}
