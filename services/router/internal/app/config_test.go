package app

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/router/internal/limits"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDefaults(t *testing.T) {
	c, err := parse(nil, io.Discard, envMap(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	assert.Equal(t, "127.0.0.1:9090", c.GRPCAddr)
	assert.Equal(t, "127.0.0.1:9091", c.AdapterAddr)
	assert.Equal(t, "127.0.0.1:9092", c.HealthmonAddr)
	assert.Equal(t, 3, c.MaxAttempts)
	assert.Equal(t, "p2c", c.Policy)
	assert.Equal(t, 256, c.Queue.Size)
	assert.Equal(t, 10*time.Second, c.Grace)
	assert.Equal(t, "llm", c.ConsulService)
	assert.Equal(t, limits.Defaults(), c.Limits)
	assert.False(t, c.Consul)
	assert.Equal(t, "text", c.LogFormat)
	assert.Equal(t, "info", c.LogLevel)
}

func TestParseEveryFlagReadsItsVariable(t *testing.T) {
	c, err := parse([]string{"-queue-size", "9"}, io.Discard, envMap(map[string]string{
		"LLMESH_ROUTER_QUEUE_SIZE":       "7", // the flag beats it
		"LLMESH_ROUTER_MAX_ATTEMPTS":     "5",
		"LLMESH_ROUTER_BREAKER_COOLDOWN": "3s",
		"LLMESH_ROUTER_QUEUE_WAIT":       "1s",
		"LLMESH_ROUTER_MAX_BODY_BYTES":   "1024",
		"LLMESH_ROUTER_GRACE":            "4s",
		"LLMESH_ROUTER_NODE_LIMITS":      "ollama:max-in-flight=3;vllm:max-in-flight=5",
		"LLMESH_ROUTER_MODEL_ALIAS":      "default=llama3.2:3b;fast=qwen3:0.6b",
		"LLMESH_LOG_FORMAT":              "json",
		"LLMESH_ROUTER_LOG_LEVEL":        "debug",
		"LLMESH_LOG_LEVEL":               "warn", // the router's own name beats it
	}))
	require.NoError(t, err)
	assert.Equal(t, 9, c.Queue.Size)
	assert.Equal(t, 5, c.MaxAttempts)
	assert.Equal(t, 3*time.Second, c.Cooldown)
	assert.Equal(t, time.Second, c.Queue.Wait)
	assert.Equal(t, int64(1024), c.MaxBodyBytes)
	assert.Equal(t, 4*time.Second, c.Grace)
	assert.Equal(t, 3, c.Limits.Kind(nodev1.Kind_KIND_OLLAMA).MaxInFlight)
	assert.Equal(t, 5, c.Limits.Kind(nodev1.Kind_KIND_VLLM).MaxInFlight)
	assert.Len(t, c.Routes.Aliases(), 2)
	assert.Equal(t, "json", c.LogFormat)
	assert.Equal(t, "debug", c.LogLevel)
}

func TestParseFindsServicesInConsulUnlessGiven(t *testing.T) {
	for _, tc := range []struct {
		name               string
		args               []string
		env                map[string]string
		adapter, healthmon bool
	}{
		{"consul", []string{"-consul"}, nil, true, true},
		{"no consul", nil, nil, false, false},
		{"adapter flag", []string{"-consul", "-adapter-addr", "127.0.0.1:1"}, nil, false, true},
		{"shared variables", nil, map[string]string{"LLMESH_CONSUL": "true", "LLMESH_ADAPTER_ADDR": "127.0.0.1:1", "LLMESH_ROUTER_HEALTHMON_ADDR": "127.0.0.1:2"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, io.Discard, envMap(tc.env))
			require.NoError(t, err)
			assert.Equal(t, tc.adapter, c.AdapterFromConsul)
			assert.Equal(t, tc.healthmon, c.HealthmonFromConsul)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := parse([]string{"-policy", "random", "-max-attempts", "0", "-queue-size", "-1"}, io.Discard, envMap(map[string]string{
		"LLMESH_ROUTER_NODE_LIMITS":       "ollama:bogus=1",
		"LLMESH_ROUTER_BODY_READ_TIMEOUT": "soon",
		"LLMESH_CONSUL":                   "yes",
	}))
	require.Error(t, err)
	for _, want := range []string{
		`-policy "random"`, `-max-attempts "0": must be at least 1`, `-queue-size "-1": must not be negative`,
		`LLMESH_ROUTER_NODE_LIMITS="ollama:bogus=1" (-node-limits)`,
		`LLMESH_ROUTER_BODY_READ_TIMEOUT="soon" (-body-read-timeout)`,
		`LLMESH_CONSUL="yes" (-consul): want true or false`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, Run(t.Context(), []string{"-h"}, &out))
	assert.Contains(t, out.String(), "[LLMESH_ROUTER_QUEUE_SIZE]")
	assert.Contains(t, out.String(), "[LLMESH_ROUTER_ADAPTER_ADDR or LLMESH_ADAPTER_ADDR]")
}

// docs/configuration.md lists exactly the flags the router registers, with
// their variables and defaults.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/configuration.md")
	require.NoError(t, err)
	var c Config
	for _, p := range config.CheckDoc(string(doc), "router", flags(&c, envMap(nil), io.Discard).Flags()) {
		t.Error("docs/configuration.md: " + p)
	}
}
