// Package app runs the adapter process: configuration from flags and
// environment, the gRPC server, and a graceful stop when ctx ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/hashicorp/consul/api"
	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/adapter/internal/service"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/consulreg"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/healthcheck"
	"github.com/llmesh/llmesh/services/meshkit/logging"
	"github.com/llmesh/llmesh/services/meshkit/telemetry"
	"golang.org/x/sync/errgroup"
)

// Run runs the adapter until ctx is done. Node API keys are read from the
// process environment, by the names the nodes give.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	return run(ctx, args, stderr, os.LookupEnv)
}

func run(ctx context.Context, args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	cfg, err := parse(args, stderr, lookupEnv)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Healthcheck {
		return healthcheck.Check(ctx, cfg.GRPCAddr, healthcheck.Timeout)
	}
	openAIBaseURL, _ := lookupEnv("OPENAI_BASE_URL")
	trust, err := nodetrust.New(nodetrust.Config{SecretEnv: cfg.SecretEnv, Allow: cfg.NodeAllow, NodesFile: cfg.NodesFile, OpenAIBaseURL: openAIBaseURL})
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err // validated already; kept for safety
	}
	tel, err := telemetry.Setup(ctx, "llmesh-adapter", "", os.LookupEnv)
	if err != nil {
		return err
	}
	defer telemetry.Flush(ctx, tel, log)

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: lookupEnv, ConnectTimeout: cfg.ConnectTimeout, Log: log, Trust: trust})
	defer pool.Close()

	srv := grpcserver.New(log)
	adapterv1.RegisterAdapterServiceServer(srv.GRPC, service.New(log, pool, probe.New(pool, cfg.ProbeTimeout)))

	log.Info("listening", "addr", lis.Addr().String())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return admin.Serve(ctx, cfg.AdminAddr, log, tel.Route()) })
	consulConfig := api.DefaultConfig() // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …
	if cfg.Consul {
		consul, err := api.NewClient(consulConfig)
		if err != nil {
			return fmt.Errorf("consul client: %w", err)
		}
		g.Go(func() error {
			return consulreg.Keep(ctx, consul, consulreg.Instance{Name: "llmesh-adapter", Addr: lis.Addr(), Agent: consulConfig.Address}, log)
		})
	}
	g.Go(func() error {
		if err := srv.Serve(ctx, lis, cfg.Grace); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}
