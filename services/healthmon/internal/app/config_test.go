package app

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/services/meshkit/config"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDefaults(t *testing.T) {
	c, err := parse(nil, io.Discard, envMap(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9092", c.GRPCAddr)
	assert.Equal(t, "127.0.0.1:9091", c.AdapterAddr)
	assert.Equal(t, 5*time.Second, c.Probe.Interval)
	assert.Equal(t, 0.2, c.Probe.Jitter)
	assert.Equal(t, 2, c.Probe.Rise)
	assert.Equal(t, 10*time.Second, c.Grace, "the same default as the other services")
	assert.Equal(t, 10*time.Minute, c.ConsulCheckTTL)
	assert.Equal(t, "llm", c.ConsulService)
}

func TestParseEveryFlagReadsItsVariable(t *testing.T) {
	c, err := parse([]string{"-rise", "4"}, io.Discard, envMap(map[string]string{
		"LLMESH_HEALTHMON_RISE":             "3", // the flag beats it
		"LLMESH_HEALTHMON_FALL":             "5",
		"LLMESH_HEALTHMON_PROBE_INTERVAL":   "2s",
		"LLMESH_HEALTHMON_PROBE_JITTER":     "0.5",
		"LLMESH_HEALTHMON_CONSUL_CHECK_TTL": "1m",
		"LLMESH_NODES_FILE":                 "nodes.yaml",
		"LLMESH_HEALTHMON_ADDR":             "127.0.0.1:7000",
		"LLMESH_CONSUL_SERVICE":             "gpu",
		"LLMESH_HEALTHMON_CONSUL_SERVICE":   "llm-2", // its own name beats the shared one
	}))
	require.NoError(t, err)
	assert.Equal(t, 4, c.Probe.Rise)
	assert.Equal(t, 5, c.Probe.Fall)
	assert.Equal(t, 2*time.Second, c.Probe.Interval)
	assert.Equal(t, 0.5, c.Probe.Jitter)
	assert.Equal(t, time.Minute, c.ConsulCheckTTL)
	assert.Equal(t, "nodes.yaml", c.NodesFile)
	assert.Equal(t, "127.0.0.1:7000", c.GRPCAddr)
	assert.Equal(t, "llm-2", c.ConsulService)
}

func TestParseFindsAdaptersInConsulUnlessGiven(t *testing.T) {
	c, err := parse([]string{"-consul"}, io.Discard, envMap(nil))
	require.NoError(t, err)
	assert.True(t, c.AdapterFromConsul)
	c, err = parse([]string{"-consul"}, io.Discard, envMap(map[string]string{"LLMESH_ADAPTER_ADDR": "127.0.0.1:1"}))
	require.NoError(t, err)
	assert.False(t, c.AdapterFromConsul)
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := parse([]string{"-probe-jitter", "1", "-rise", "0", "-consul-check-ttl", "10ms"}, io.Discard, envMap(map[string]string{
		"LLMESH_HEALTHMON_PROBE_TIMEOUT": "5",
		"LLMESH_HEALTHMON_GRACE":         "0s",
	}))
	require.Error(t, err)
	for _, want := range []string{
		`-probe-jitter "1": want 0 ≤ jitter < 1`, `-rise "0": must be at least 1`, `-consul-check-ttl "10ms": must be at least 1s`,
		`LLMESH_HEALTHMON_PROBE_TIMEOUT="5" (-probe-timeout)`, `LLMESH_HEALTHMON_GRACE="0s" (-grace): must be positive`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, Run(t.Context(), []string{"-h"}, &out))
	assert.Contains(t, out.String(), "[LLMESH_HEALTHMON_NODES or LLMESH_NODES_FILE]")
}

// docs/configuration.md lists exactly the flags healthmon registers, with
// their variables and defaults.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/configuration.md")
	require.NoError(t, err)
	var c Config
	for _, p := range config.CheckDoc(string(doc), "healthmon", flags(&c, envMap(nil), io.Discard).Flags()) {
		t.Error("docs/configuration.md: " + p)
	}
}
