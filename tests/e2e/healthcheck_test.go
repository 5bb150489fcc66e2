package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/meshtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// healthcheck runs a service binary with -healthcheck and returns its exit
// code and what it wrote to stderr.
func healthcheck(t *testing.T, svc string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bins[svc], append([]string{"-healthcheck"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	assert.Less(t, time.Since(start), 10*time.Second, "%s -healthcheck took too long", svc)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stderr.String()
}

// Each binary checks the instance its flags and environment describe —
// the way a container's health check runs it — and says why when it is
// not serving.
func TestHealthcheckFlag(t *testing.T) {
	node := meshtest.StartNode(t, "n", simnode.Config{Models: []string{"m"}})
	m := meshtest.Start(t, bins, []*meshtest.Node{node}, meshtest.Options{})
	_, healthmonPort, err := net.SplitHostPort(m.HealthmonAddr)
	require.NoError(t, err)

	code, stderr := healthcheck(t, "router", nil, "-grpc-addr", m.GRPCAddr)
	assert.Equal(t, 0, code, stderr)
	code, stderr = healthcheck(t, "adapter", []string{"LLMESH_ADAPTER_ADDR=" + m.AdapterAddr})
	assert.Equal(t, 0, code, "the shared variable names the address: %s", stderr)
	code, stderr = healthcheck(t, "healthmon", []string{"LLMESH_HEALTHMON_GRPC_ADDR=0.0.0.0:" + healthmonPort})
	assert.Equal(t, 0, code, "every interface is checked over loopback: %s", stderr)

	m.Stop(t, "adapter")
	code, stderr = healthcheck(t, "adapter", []string{"LLMESH_ADAPTER_ADDR=" + m.AdapterAddr})
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasPrefix(stderr, "adapter: healthcheck "+m.AdapterAddr+": "), "stderr: %q", stderr)
	assert.Contains(t, stderr, "connection refused")
	assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)

	code, stderr = healthcheck(t, "router", nil, "-grpc-addr", "127.0.0.1:0")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `port "0"`)
}
