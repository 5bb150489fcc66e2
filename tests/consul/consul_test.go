package consul

import (
	"net/http"
	"os"
	"os/exec"
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

// llmesh runs the llmesh command against the agent.
func llmesh(t *testing.T, agent *consultest.Agent, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins["llmesh"], args...)
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+agent.HTTPAddr)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// check returns llmesh's check on a node's service as Consul reports it.
func check(t *testing.T, c *api.Client, id string) (status, output string) {
	t.Helper()
	entries, _, err := c.Health().Service("llm", "", false, nil)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Service.ID != id {
			continue
		}
		for _, chk := range e.Checks {
			if chk.CheckID == "llmesh:"+id {
				return chk.Status, chk.Output
			}
		}
	}
	return "", ""
}

func chat(t *testing.T, m *meshtest.Mesh, model string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(meshtest.Context(t, 10*time.Second), http.MethodPost, m.RESTURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestRegisterProbeRouteDeregister(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	gpu := meshtest.StartNode(t, "gpu-1", simnode.Config{Models: []string{"m"}})

	out := llmesh(t, agent, "node", "register", "-id", "gpu-1", "-url", gpu.URL, "-kind", "ollama")
	assert.Contains(t, out, "registered gpu-1")

	// It serves traffic only once a probe has passed, and Consul says so.
	m.WaitModels(t, 1)
	assert.Equal(t, http.StatusOK, chat(t, m, "m"))
	require.Eventually(t, func() bool {
		st, _ := check(t, c, "gpu-1")
		return st == api.HealthPassing
	}, 10*time.Second, 20*time.Millisecond)
	_, output := check(t, c, "gpu-1")
	assert.Contains(t, output, "1 model")
	assert.Contains(t, llmesh(t, agent, "node", "list"), "gpu-1")

	// Killed: the check turns critical with the reason, the router stops using it.
	gpu.Kill()
	require.Eventually(t, func() bool {
		st, out := check(t, c, "gpu-1")
		return st == api.HealthCritical && strings.Contains(out, "connection refused")
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, http.StatusServiceUnavailable, chat(t, m, "m"))

	// Deregistered: gone from the mesh, which now has no node at all.
	llmesh(t, agent, "node", "deregister", "-id", "gpu-1")
	m.WaitModels(t, 0)
	assert.NotContains(t, llmesh(t, agent, "node", "list"), "gpu-1")
	assert.Equal(t, http.StatusServiceUnavailable, chat(t, m, "m"))
}

func TestBadRegistrationIsReportedAndSkipped(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	good := meshtest.StartNode(t, "good", simnode.Config{Models: []string{"m"}})
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})

	// Registered by the local agent (as a node's own agent would), with a
	// kind llmesh does not know.
	require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "bad", Name: "llm", Address: "127.0.0.1", Port: 1, Meta: map[string]string{"llmesh-kind": "tgi"},
	}))
	llmesh(t, agent, "node", "register", "-id", "good", "-url", good.URL, "-kind", "ollama")
	m.WaitModels(t, 1)
	assert.Equal(t, http.StatusOK, chat(t, m, "m"))
	require.Eventually(t, func() bool {
		st, out := check(t, c, "bad")
		return st == api.HealthCritical && strings.Contains(out, `llmesh-kind "tgi"`)
	}, 10*time.Second, 20*time.Millisecond)
}

func TestStaticNodesAreRegisteredInConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "static-1", simnode.Config{Models: []string{"m"}})
	meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr})

	require.Eventually(t, func() bool {
		st, _ := check(t, c, "static-1")
		return st == api.HealthPassing
	}, 10*time.Second, 20*time.Millisecond)
	node, _, err := c.Catalog().Node("llmesh-static-1", nil)
	require.NoError(t, err)
	require.NotNil(t, node)
	assert.Equal(t, "true", node.Node.Meta["external-node"])
}

// Consul going away for a while and coming back (with its state lost, as
// a dev agent does) costs no request: healthmon keeps its last view and
// registers its static nodes again within seconds of Consul's return,
// however long Consul was gone.
func TestConsulRestartUnderLoad(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "static-1", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{n}, meshtest.Options{Consul: agent.HTTPAddr, ConsulDiscovery: true,
		HealthmonArgs: []string{"-consul-wait", "10s"}}) // the default blocking query
	require.Eventually(t, func() bool { return passing(t, c, "llmesh-adapter") == 1 }, 20*time.Second, 50*time.Millisecond)
	// healthmon's view is what carries the router through: until the
	// router has found healthmon in Consul it routes on Consul's own view,
	// which a rebuilt Consul starts empty.
	m.WaitRouterOnHealthmon(t)

	load := meshtest.StartLoad(t, 2, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	load.WaitOK(t, 50, 10*time.Second)
	agent.Stop(t)
	// Down for 20s: long enough for backoffs that double to grow past
	// what "within seconds" allows.
	outage := time.Now().Add(20 * time.Second)
	for time.Now().Before(outage) {
		load.WaitOK(t, 20, 10*time.Second)
	}
	agent.Restart(t)
	require.Eventually(t, func() bool {
		st, _ := check(t, c, "static-1")
		return st == api.HealthPassing
	}, 5*time.Second, 50*time.Millisecond, "static node re-registered with a passing check within 5s")
	require.Eventually(t, func() bool { return passing(t, c, "llmesh-adapter") == 1 }, 20*time.Second, 50*time.Millisecond,
		"the adapter registered itself again")
	load.WaitOK(t, 50, 10*time.Second)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
}

// Consul coming back without its state (a rebuilt dev agent) drops no
// node while the nodes register again: a node its own agent registered
// keeps serving under load through the restart, and after its agent has
// registered it again.
func TestNodesSurviveConsulLosingItsState(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	n := meshtest.StartNode(t, "agent-1", simnode.Config{Models: []string{"m"}})
	registerOnAgent(t, c, "agent-1", n.URL)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	m.WaitModels(t, 1)
	m.WaitRouterOnHealthmon(t)

	load := meshtest.StartLoad(t, 2, m.RESTURL+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	defer load.Stop()
	load.WaitOK(t, 20, 10*time.Second)
	agent.Restart(t) // its registration of agent-1 is gone
	// healthmon's watch sees Consul again, without the node, and keeps it.
	require.Eventually(t, func() bool { return countLogs(m, "healthmon", "consul reachable again") > 0 }, 20*time.Second, 50*time.Millisecond)
	load.WaitOK(t, 50, 20*time.Second)
	registerOnAgent(t, c, "agent-1", n.URL) // as the node's own agent would
	require.Eventually(t, func() bool {
		st, _ := check(t, c, "agent-1")
		return st == api.HealthPassing
	}, 20*time.Second, 50*time.Millisecond)
	load.WaitOK(t, 20, 10*time.Second)
	load.Stop()
	assert.Zero(t, load.Failed(), "first failure: %s", load.FirstFailure())
}

// A node registered with TLS settings and headers keeps them in Consul
// Meta (names and paths, never values of secrets), and a TLS file the
// adapter cannot read is the reason on the node's check.
func TestRegisterWithTLSAndHeaders(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	// The adapter binds ORG_KEY to the node's host, so the TLS file is
	// what is wrong with it.
	meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true,
		Env: []string{"LLMESH_ADAPTER_SECRET_ENV=ORG_KEY=127.0.0.1"}})

	llmesh(t, agent, "node", "register", "-id", "gw-1", "-url", "https://127.0.0.1:1/v1", "-kind", "vllm",
		"-tls-ca-file", "/nonexistent/llmesh-ca.pem", "-tls-server-name", "gw.internal",
		"-header", "X-Org: foo", "-header-env", "X-Api-Org=ORG_KEY")
	svcs, _, err := c.Catalog().Service("llm", "", nil)
	require.NoError(t, err)
	require.Len(t, svcs, 1)
	assert.Equal(t, map[string]string{
		"llmesh-kind": "vllm", "llmesh-scheme": "https", "llmesh-tls-ca-file": "/nonexistent/llmesh-ca.pem",
		"llmesh-tls-server-name": "gw.internal", "llmesh-header-X-Org": "foo", "llmesh-env-header-X-Api-Org": "ORG_KEY",
	}, svcs[0].ServiceMeta, "the /v1 of a vllm URL is dropped: the adapter adds it")
	assert.Equal(t, 1, svcs[0].ServicePort)

	require.Eventually(t, func() bool {
		st, out := check(t, c, "gw-1")
		return st == api.HealthCritical && strings.Contains(out, "tls_ca_file /nonexistent/llmesh-ca.pem: no such file or directory")
	}, 10*time.Second, 20*time.Millisecond)

	cmd := exec.Command(bins["llmesh"], "node", "register", "-id", "bad", "-url", "http://127.0.0.1:1", "-kind", "vllm",
		"-tls-cert-file", "/c.pem", "-header", "Host: evil")
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+agent.HTTPAddr)
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "tls settings need an https url")
	assert.Contains(t, string(out), "header Host: set by the adapter itself")
}

// A llama-server loading its model is a warning in Consul (alive, not
// passing); a node refusing llmesh's credentials is critical and says
// what to fix.
func TestChecksSayLoadingAndMisconfigured(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	llama := meshtest.StartNode(t, "llama-1", simnode.Config{Flavor: "llamacpp", Models: []string{"m"}, Faults: simnode.Faults{Loading: true}})
	locked := meshtest.StartNode(t, "vllm-1", simnode.Config{Flavor: "vllm", Models: []string{"v"}, APIKey: "a-key-llmesh-does-not-have"})
	llmesh(t, agent, "node", "register", "-id", "llama-1", "-url", llama.URL, "-kind", "llamacpp")
	llmesh(t, agent, "node", "register", "-id", "vllm-1", "-url", locked.URL, "-kind", "vllm")

	require.Eventually(t, func() bool {
		st, out := check(t, c, "llama-1")
		return st == api.HealthWarning && strings.Contains(out, "loading: llamacpp: loading the model")
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		st, out := check(t, c, "vllm-1")
		return st == api.HealthCritical && strings.Contains(out, "misconfigured: 401 from "+locked.URL+"/v1/models")
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, http.StatusServiceUnavailable, chat(t, m, "v"))

	// Loaded: passing, and it serves.
	llama.SetFaults(simnode.Faults{})
	m.WaitModels(t, 1)
	assert.Equal(t, http.StatusOK, chat(t, m, "m"))
	require.Eventually(t, func() bool {
		st, _ := check(t, c, "llama-1")
		return st == api.HealthPassing
	}, 10*time.Second, 20*time.Millisecond)
}
