// Package app wires the healthmon process: the node list, the probe loops
// (through the adapter) and the node-state stream served to routers.
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
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/healthmon/internal/consulsource"
	"github.com/llmesh/llmesh/services/healthmon/internal/monitor"
	"github.com/llmesh/llmesh/services/healthmon/internal/watchsvc"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/consulreg"
	"github.com/llmesh/llmesh/services/meshkit/consulresolver"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/healthcheck"
	"github.com/llmesh/llmesh/services/meshkit/logging"
	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
	"github.com/llmesh/llmesh/services/meshkit/telemetry"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Run runs healthmon until ctx is done.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parse(args, stderr, os.LookupEnv)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Healthcheck {
		return healthcheck.Check(ctx, cfg.GRPCAddr, healthcheck.Timeout)
	}
	log, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log = log.With("component", "healthmon")
	tel, err := telemetry.Setup(ctx, "llmesh-healthmon", "", os.LookupEnv)
	if err != nil {
		return err
	}
	defer telemetry.Flush(ctx, tel, log)
	var nodes []*nodev1.Node
	switch env := nodesfile.FromEnv(); {
	case !cfg.Consul:
		nodes, err = nodesfile.Resolve(cfg.NodesFile, env)
	case cfg.NodesFile != "" || env.OpenAIBaseURL != "":
		// With Consul, static nodes are registered there and discovered
		// like any other; the local Ollama default does not apply.
		nodes, err = nodesfile.Resolve(cfg.NodesFile, env)
	}
	if err != nil {
		return err
	}
	var consul *api.Client
	consulConfig := api.DefaultConfig() // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …
	if cfg.Consul {
		if consul, err = api.NewClient(consulConfig); err != nil {
			return fmt.Errorf("consul client: %w", err)
		}
	}

	adapterTarget, dialOpts := cfg.AdapterAddr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, grpcserver.ClientOptions()...)
	if cfg.AdapterFromConsul {
		adapterTarget = consulresolver.Target("llmesh-adapter")
		dialOpts = append(dialOpts, consulresolver.DialOptions(consul, log)...)
	}
	conn, err := grpc.NewClient(adapterTarget, dialOpts...)
	if err != nil {
		return fmt.Errorf("adapter client: %w", err)
	}
	defer conn.Close()

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	mon := monitor.New(cfg.Probe, monitor.AdapterProber{Client: adapterv1.NewAdapterServiceClient(conn)}, log)
	srv := grpcserver.New(log)
	g, gctx := errgroup.WithContext(ctx)
	healthmonv1.RegisterHealthmonServiceServer(srv.GRPC, watchsvc.New(gctx, mon))

	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.GetId() + "=" + n.GetBaseUrl()
	}
	log.Info("listening", "grpc", lis.Addr().String(), "adapter", adapterTarget, "nodes", ids, "consul", cfg.Consul)
	g.Go(func() error { return admin.Serve(gctx, cfg.AdminAddr, log, tel.Route()) })
	g.Go(func() error { return srv.Serve(gctx, lis, cfg.Grace) })
	if consul == nil {
		mon.SetNodes(ctx, nodes)
	} else {
		g.Go(func() error {
			return consulreg.Keep(gctx, consul, consulreg.Instance{Name: "llmesh-healthmon", Addr: lis.Addr(), Agent: consulConfig.Address}, log)
		})
		src := &consulsource.Source{Client: consul, Service: cfg.ConsulService, Nodes: mon, Log: log, Static: nodes, Wait: cfg.ConsulWait,
			CheckTTL: cfg.ConsulCheckTTL}
		g.Go(func() error { return src.Run(gctx) })
	}
	err = g.Wait()
	mon.Stop(ctx)
	log.Info("stopped")
	return err
}
