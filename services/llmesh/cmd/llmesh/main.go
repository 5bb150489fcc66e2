// Command llmesh is the operator's command line: `llmesh node register`
// puts an LLM node without a Consul agent into the mesh.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmesh/llmesh/services/llmesh/internal/nodecli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := nodecli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "llmesh:", err)
		os.Exit(1)
	}
}
