// Command simnode runs a simulated Ollama node over HTTP until SIGINT or
// SIGTERM. Package github.com/llmesh/llmesh/services/simnode/simnode
// documents the behaviour and every flag; "simnode -h" lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		// -h printed the usage; asking for help is not a failure.
	case errors.Is(err, errUsage):
		os.Exit(2) // the flag package already explained the problem
	default:
		fmt.Fprintln(os.Stderr, "simnode:", err)
		os.Exit(1)
	}
}
