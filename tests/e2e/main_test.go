// Package e2e drives the real mesh — router, adapter and healthmon as
// processes on 127.0.0.1 — with the official OpenAI Go SDK, raw HTTP and
// native gRPC, against simulated nodes.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/llmesh/llmesh/tests/meshtest"
)

var bins map[string]string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llmesh-e2e-bin-")
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
