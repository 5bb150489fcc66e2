package consul

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
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

// aclTokens creates, on an agent with ACLs, one token per policy file of
// deployments/consul/acl (named without .hcl), each holding that policy
// only.
func aclTokens(t *testing.T, agent *consultest.Agent, names ...string) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	for _, name := range names {
		rules, err := os.ReadFile("../../deployments/consul/acl/" + name + ".hcl")
		require.NoError(t, err)
		tokens[name] = agent.Token(t, name, string(rules))
	}
	return tokens
}

// llmeshAs runs the llmesh command with token as its CONSUL_HTTP_TOKEN.
func llmeshAs(agent *consultest.Agent, token string, args ...string) (string, error) {
	cmd := exec.Command(bins["llmesh"], args...)
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+agent.HTTPAddr, "CONSUL_HTTP_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The mesh runs on a Consul agent that denies what no token allows, each
// service holding a token with exactly its policy from
// deployments/consul/acl: services find each other, nodes registered with
// the CLI's token and with a node's own token are probed, checked and
// served, healthmon's states reach KV for the routers' fallback, and no
// process is ever denied. A healthmon or a router whose token lacks a
// rule says so.
func TestLeastPrivilegeACLs(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{ACL: true})
	admin := agent.Client(t)
	tok := aclTokens(t, agent, "llmesh-router", "llmesh-adapter", "llmesh-healthmon", "llmesh-node", "llmesh-keys", "llm-node")

	static := meshtest.StartNode(t, "static-1", simnode.Config{Models: []string{"s"}})
	gpu := meshtest.StartNode(t, "gpu-1", simnode.Config{Models: []string{"m"}})
	own := meshtest.StartNode(t, "own-1", simnode.Config{Models: []string{"o"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{static}, meshtest.Options{
		Consul: agent.HTTPAddr, ConsulDiscovery: true, NoModelWait: true,
		AdapterEnv:   []string{"CONSUL_HTTP_TOKEN=" + tok["llmesh-adapter"]},
		HealthmonEnv: []string{"CONSUL_HTTP_TOKEN=" + tok["llmesh-healthmon"]},
		RouterEnv:    []string{"CONSUL_HTTP_TOKEN=" + tok["llmesh-router"]},
	})

	// The operator registers a node with the CLI's token; the service
	// tokens may not.
	out, err := llmeshAs(agent, tok["llmesh-node"], "node", "register", "-id", "gpu-1", "-url", gpu.URL, "-kind", "ollama")
	require.NoError(t, err, out)
	out, err = llmeshAs(agent, tok["llmesh-router"], "node", "register", "-id", "rogue", "-url", gpu.URL, "-kind", "ollama")
	require.Error(t, err)
	assert.Contains(t, out, "Permission denied")
	// A node registers itself with its own agent and token, as its
	// service definition would.
	u, err := url.Parse(own.URL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	require.NoError(t, agent.ClientWithToken(t, tok["llm-node"]).Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "own-1", Name: "llm", Address: "127.0.0.1", Port: port, Meta: map[string]string{"llmesh-kind": "ollama"},
	}))

	m.WaitModels(t, 3)
	for _, model := range []string{"s", "m", "o"} {
		assert.Equal(t, http.StatusOK, chat(t, m, model), model)
	}
	// healthmon's verdicts are checks on each kind of registration: a
	// catalog check on the nodes it and the CLI registered, a TTL check
	// through the agent on the agent's own node.
	for _, id := range []string{"static-1", "gpu-1", "own-1"} {
		require.Eventually(t, func() bool {
			st, _ := check(t, admin, id)
			return st == api.HealthPassing
		}, 20*time.Second, 50*time.Millisecond, id)
	}
	require.Eventually(t, func() bool {
		kv, _, err := admin.KV().Get("llmesh/nodes/gpu-1", nil)
		return err == nil && kv != nil
	}, 20*time.Second, 50*time.Millisecond, "healthmon keeps node states in KV")
	for _, svc := range []string{"llmesh-router", "llmesh-adapter", "llmesh-healthmon"} {
		entries, _, err := admin.Health().Service(svc, "", true, nil)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "%s registered itself", svc)
	}
	out, err = llmeshAs(agent, tok["llmesh-node"], "node", "list")
	require.NoError(t, err, out)
	assert.Contains(t, out, "gpu-1")

	// Without healthmon a router that starts now routes on its verdicts
	// in Consul, reading the llm service and the node states in KV.
	m.Stop(t, "healthmon")
	late := m.StartRouter(t)
	require.Eventually(t, func() bool { return chatAt(t, late, "m") == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"a router without healthmon routes on its verdicts in consul")

	out, err = llmeshAs(agent, tok["llmesh-node"], "node", "deregister", "-id", "gpu-1")
	require.NoError(t, err, out)

	// The keys policy writes under llmesh/keys/ and nowhere else.
	keys := agent.ClientWithToken(t, tok["llmesh-keys"]).KV()
	_, err = keys.Put(&api.KVPair{Key: "llmesh/keys/example", Value: []byte("{}")}, nil)
	require.NoError(t, err)
	_, err = keys.Put(&api.KVPair{Key: "llmesh/nodes/example", Value: []byte("{}")}, nil)
	require.Error(t, err)

	for _, svc := range []string{"router", "adapter", "healthmon"} {
		for _, log := range m.Logs(svc) {
			assert.NotContains(t, log, "Permission denied", svc)
			assert.NotContains(t, log, "ACL not found", svc)
			assert.NotContains(t, log, "ACLs hide", svc)
		}
	}

	t.Run("a healthmon whose token lacks the lock's key says so", func(t *testing.T) {
		rules, err := os.ReadFile("../../deployments/consul/acl/llmesh-healthmon.hcl")
		require.NoError(t, err)
		lacking := strings.Replace(string(rules), "key \"llmesh/healthmon/check-writer\" {\n  policy = \"write\"\n}\n", "", 1)
		require.NotEqual(t, string(rules), lacking)
		m.StartHealthmonEnv(t, "CONSUL_HTTP_TOKEN="+agent.Token(t, "healthmon-without-lock", lacking))
		require.Eventually(t, func() bool {
			logs := m.Logs("healthmon")
			last := logs[len(logs)-1]
			return strings.Contains(last, "cannot take the check-writer lock") && strings.Contains(last, "Permission denied") &&
				strings.Contains(last, "llmesh-healthmon.hcl")
		}, 30*time.Second, 50*time.Millisecond)
		assert.NotContains(t, m.Logs("healthmon")[1], "holding the writer lock")
	})

	t.Run("a router whose token lacks node:read says so", func(t *testing.T) {
		rules, err := os.ReadFile("../../deployments/consul/acl/llmesh-router.hcl")
		require.NoError(t, err)
		lacking := strings.Replace(string(rules), "node_prefix \"\" {\n  policy = \"read\"\n}\n", "", 1)
		require.NotEqual(t, string(rules), lacking)
		rest := m.StartRouterEnv(t, "CONSUL_HTTP_TOKEN="+agent.Token(t, "router-without-node-read", lacking))
		require.Eventually(t, func() bool {
			logs := m.Logs("router")
			return strings.Contains(logs[len(logs)-1], `ACLs hide instances of the service from this process's token`)
		}, 30*time.Second, 50*time.Millisecond)
		assert.NotEqual(t, http.StatusOK, chatAt(t, rest, "s"), "it finds no adapter")
	})
}
