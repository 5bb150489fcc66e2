package app

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/services/meshkit/config"
)

// The adapter reads the shared LLMESH_LOG_* as the other services do, and
// its own LLMESH_ADAPTER_LOG_* beat them.
func TestParseSharedLogVariables(t *testing.T) {
	cfg, err := parse(nil, io.Discard, envMap(map[string]string{
		"LLMESH_LOG_FORMAT":        "json",
		"LLMESH_LOG_LEVEL":         "warn",
		"LLMESH_ADAPTER_LOG_LEVEL": "debug",
		"LLMESH_ADAPTER_GRPC_ADDR": "127.0.0.1:7001",
		"LLMESH_ADAPTER_ADDR":      "127.0.0.1:7002",
	}))
	require.NoError(t, err)
	assert.Equal(t, "json", cfg.LogFormat)
	assert.Equal(t, "debug", cfg.LogLevel)
	assert.Equal(t, "127.0.0.1:7001", cfg.GRPCAddr)
}

// docs/configuration.md lists exactly the flags the adapter registers,
// with their variables and defaults.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/configuration.md")
	require.NoError(t, err)
	var c Config
	for _, p := range config.CheckDoc(string(doc), "adapter", flags(&c, envMap(nil), io.Discard).Flags()) {
		t.Error("docs/configuration.md: " + p)
	}
}
