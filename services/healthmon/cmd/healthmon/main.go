// Command healthmon is llmesh's health monitor: it probes every LLM node
// through the adapter and streams node state to routers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/llmesh/llmesh/services/healthmon/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "healthmon:", err)
		os.Exit(1)
	}
}
