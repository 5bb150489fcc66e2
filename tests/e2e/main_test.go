// Package e2e drives the real mesh — router, adapter and healthmon as
// processes on 127.0.0.1 — with the official OpenAI Go SDK, raw HTTP and
// native gRPC, against simulated nodes.
package e2e

import (
	"testing"

	"github.com/llmesh/llmesh/tests/meshtest"
)

var bins map[string]string

func TestMain(m *testing.M) { meshtest.Main(m, &bins) }
