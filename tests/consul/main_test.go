// Package consul tests llmesh with a real Consul agent (tests/consultest,
// built by `make consul`): LLM nodes discovered from Consul, registered
// with `llmesh node register`, verdicts written back as checks, bad
// registrations reported, and Consul outages survived.
package consul

import (
	"fmt"
	"os"
	"testing"

	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
)

var bins map[string]string

func TestMain(m *testing.M) {
	if _, err := consultest.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "llmesh-consul-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err = meshtest.Binaries(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
