package nodecli

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// -h prints the usage and succeeds, for the command and each subcommand.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"node", "register", "-h"}, {"node", "deregister", "-help"}, {"node", "list", "-h"}} {
		var stdout, stderr bytes.Buffer
		require.NoError(t, Run(t.Context(), args, &stdout, &stderr), "%q", args)
		assert.Contains(t, stdout.String()+stderr.String(), "-", "%q prints a usage", args)
	}
	var stderr bytes.Buffer
	require.NoError(t, Run(t.Context(), []string{"node", "list", "-h"}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), "[LLMESH_CONSUL_SERVICE]")
}

func TestRegisterFlags(t *testing.T) {
	var e nodesfile.Entry
	var service string
	s := registerFlags(&e, &service, envMap(map[string]string{"LLMESH_CONSUL_SERVICE": "gpu", "LLMESH_NODE_ID": "x"}), io.Discard)
	require.NoError(t, s.Parse([]string{"-id", "a", "-url", "http://h:1", "-max-in-flight", "8", "-header", "X-A: 1", "-header-env", "X-B=VAR"}))
	assert.Equal(t, "gpu", service)
	assert.Equal(t, "a", e.ID)
	assert.Equal(t, int32(8), e.MaxInFlight)
	assert.Equal(t, map[string]nodesfile.HeaderValue{"X-A": {Value: "1"}, "X-B": {Env: "VAR"}}, e.Headers)

	err := registerFlags(&e, &service, envMap(nil), io.Discard).Parse([]string{"-max-in-flight", "lots", "-num-parallel", "1.5", "-header", "bad"})
	require.Error(t, err)
	for _, want := range []string{`-max-in-flight "lots": want a whole number`, `-num-parallel "1.5": want a whole number`, `-header "bad": want 'Name: value'`} {
		assert.Contains(t, err.Error(), want)
	}
}

// docs/configuration.md lists exactly the flags of each llmesh command.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/configuration.md")
	require.NoError(t, err)
	var e nodesfile.Entry
	var id, service string
	for name, s := range map[string]*config.Set{
		"llmesh node register":   registerFlags(&e, &service, envMap(nil), io.Discard),
		"llmesh node deregister": deregisterFlags(&id, &service, envMap(nil), io.Discard),
		"llmesh node list":       listFlags(&service, envMap(nil), io.Discard),
	} {
		for _, p := range config.CheckDoc(string(doc), name, s.Flags()) {
			t.Error("docs/configuration.md: " + p)
		}
	}
}
