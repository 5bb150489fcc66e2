// Command adapter is llmesh's provider-adapter: a stateless gRPC service
// that talks to LLM nodes in their own wire formats.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmesh/llmesh/services/adapter/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "adapter:", err)
		stop()
		os.Exit(1)
	}
}
