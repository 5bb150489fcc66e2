// Package consul tests llmesh with a real Consul agent (tests/consultest,
// built by `make consul`): LLM nodes discovered from Consul, registered
// with `llmesh node register`, verdicts written back as checks, bad
// registrations reported, and Consul outages survived.
package consul

import (
	"testing"

	"github.com/llmesh/llmesh/tests/consultest"
	"github.com/llmesh/llmesh/tests/meshtest"
)

var bins map[string]string

func TestMain(m *testing.M) { meshtest.Main(m, &bins, consultest.Binary) }
