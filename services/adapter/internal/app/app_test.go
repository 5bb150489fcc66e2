package app

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDefaults(t *testing.T) {
	cfg, err := parse(nil, &bytes.Buffer{}, envMap(nil))
	require.NoError(t, err)
	assert.Equal(t, Config{
		GRPCAddr: "127.0.0.1:9091", LogFormat: "text", LogLevel: "info",
		Grace: 10 * time.Second, ProbeTimeout: 5 * time.Second, ConnectTimeout: 5 * time.Second,
	}, cfg)
}

func TestParseEnvAndFlags(t *testing.T) {
	env := envMap(map[string]string{
		"LLMESH_ADAPTER_ADDR":       "127.0.0.1:7000",
		"LLMESH_ADAPTER_LOG_FORMAT": "json",
		"LLMESH_ADAPTER_GRACE":      "3s",
	})
	cfg, err := parse([]string{"-grpc-addr", "127.0.0.1:0", "-log-level", "debug"}, &bytes.Buffer{}, env)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:0", cfg.GRPCAddr, "a flag beats the environment")
	assert.Equal(t, "json", cfg.LogFormat, "the environment beats the default")
	assert.Equal(t, "debug", cfg.LogLevel)
	assert.Equal(t, 3*time.Second, cfg.Grace)
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := parse([]string{
		"-grpc-addr", "nonsense", "-log-format", "xml", "-grace", "-1s", "-probe-timeout", "soon", "extra",
	}, &bytes.Buffer{}, envMap(map[string]string{"LLMESH_ADAPTER_CONNECT_TIMEOUT": "0s"}))
	require.Error(t, err)
	for _, want := range []string{"-grpc-addr", "xml", `-grace "-1s": must be positive`, `LLMESH_ADAPTER_CONNECT_TIMEOUT="0s" (-connect-timeout): must be positive`, "-probe-timeout", "-connect-timeout", "unexpected arguments"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestParseRefusesABadConsulSwitch(t *testing.T) {
	_, err := parse(nil, &bytes.Buffer{}, envMap(map[string]string{"LLMESH_CONSUL": "yes"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `LLMESH_CONSUL="yes"`)
	cfg, err := parse(nil, &bytes.Buffer{}, envMap(map[string]string{"LLMESH_CONSUL": "true"}))
	require.NoError(t, err)
	assert.True(t, cfg.Consul)
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, Run(t.Context(), []string{"-h"}, &out))
	assert.Contains(t, out.String(), "-grpc-addr")
	assert.Contains(t, out.String(), "[LLMESH_ADAPTER_GRPC_ADDR or LLMESH_ADAPTER_ADDR]")
}

// syncBuffer is a bytes.Buffer the server's logger and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-grpc-addr", "127.0.0.1:0"}, &logs, envMap(nil)) }()

	listening := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		m := listening.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 5*time.Second, 10*time.Millisecond, "no listening line in %q", logs.String())

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: adapterv1.AdapterService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())

	// A real probe of a port nothing listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + lis.Addr().String()
	require.NoError(t, lis.Close())
	resp, err := adapterv1.NewAdapterServiceClient(conn).Probe(ctx, &adapterv1.ProbeRequest{
		Node: &nodev1.Node{Id: "dead", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: dead},
	})
	require.NoError(t, err)
	assert.False(t, resp.GetResult().GetUp())
	assert.Contains(t, resp.GetResult().GetReason(), "connection refused")
	require.NoError(t, conn.Close())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assert.Contains(t, logs.String(), "msg=stopped")
}

func TestRunFailsToListen(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	err = run(t.Context(), []string{"-grpc-addr", lis.Addr().String()}, &bytes.Buffer{}, envMap(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen")
}
