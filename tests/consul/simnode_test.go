package consul

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// simnodeProc is a simnode process and what it logs.
type simnodeProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startSimnode runs bin/simnode with args against the agent until the
// test ends.
func startSimnode(t *testing.T, agent *consultest.Agent, args ...string) *simnodeProc {
	t.Helper()
	p := &simnodeProc{cmd: exec.Command(bins["simnode"], args...), log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+agent.HTTPAddr)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("---- simnode log ----\n%s", p.log)
		}
	})
	return p
}

// agentService returns the agent's registration of id, nil when it has none.
func agentService(t *testing.T, c *api.Client, id string) *api.AgentService {
	t.Helper()
	svc, _, err := c.Agent().Service(id, nil)
	var se api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return nil
	}
	require.NoError(t, err)
	return svc
}

// A demo node registers itself in Consul the way a node's own agent would:
// once Consul answers (it may start later), again when Consul loses it,
// and it leaves on a graceful stop. The mesh finds it and serves its model.
func TestSimnodeRegistersItself(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client(t)
	agent.Stop(t)

	// Consul is not up yet: simnode serves and keeps trying.
	sim := startSimnode(t, agent, "-addr", "127.0.0.1:0", "-flavor", "vllm", "-models", "demo-model",
		"-consul-register", "-node-id", "sim-1")
	require.Eventually(t, func() bool { return strings.Contains(sim.log.String(), "consul registration failed; retrying") },
		10*time.Second, 20*time.Millisecond, "simnode says Consul is away")
	agent.Restart(t)

	var svc *api.AgentService
	require.Eventually(t, func() bool { svc = agentService(t, c, "sim-1"); return svc != nil }, 10*time.Second, 50*time.Millisecond,
		"registered once Consul answers")
	assert.Equal(t, "llm", svc.Service)
	assert.Equal(t, "127.0.0.1", svc.Address)
	assert.Equal(t, map[string]string{"llmesh-kind": "vllm", "llmesh-scheme": "http"}, svc.Meta)
	assert.Contains(t, sim.log.String(), "msg=listening addr=127.0.0.1:"+strconv.Itoa(svc.Port))

	m := meshtest.StartRefs(t, bins, nil, meshtest.Options{Consul: agent.HTTPAddr, NoModelWait: true})
	m.WaitModels(t, 1)
	assert.Equal(t, http.StatusOK, chat(t, m, "demo-model"))
	require.Eventually(t, func() bool { st, _ := check(t, c, "sim-1"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)

	// healthmon's check stays on the service: simnode does not renew a
	// registration the agent still has (that would replace the checks).
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st, out := check(t, c, "sim-1")
		require.Equal(t, api.HealthPassing, st, "llmesh's check flapped: %s", out)
	}

	// Consul loses it: registered again within simnode's 5 s look, and
	// judged again by healthmon.
	require.NoError(t, c.Agent().ServiceDeregister("sim-1"))
	require.Eventually(t, func() bool { return agentService(t, c, "sim-1") != nil }, 15*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { st, _ := check(t, c, "sim-1"); return st == api.HealthPassing }, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, sim.log.String(), "registered in consul again")
	assert.Equal(t, http.StatusOK, chat(t, m, "demo-model"))

	// A graceful stop deregisters it, and the mesh drops its model.
	require.NoError(t, sim.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-sim.done:
	case <-time.After(10 * time.Second):
		t.Fatal("simnode ignored SIGTERM")
	}
	require.NoError(t, sim.err, "simnode exits 0 on SIGTERM")
	assert.Nil(t, agentService(t, c, "sim-1"), "deregistered on a graceful stop")
	assert.Contains(t, sim.log.String(), "deregistered from consul")
	m.WaitModels(t, 0)
}
