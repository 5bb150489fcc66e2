// Package app wires the healthmon process: the node list, the probe loops
// (through the adapter) and the node-state stream served to routers.
package app

import (
	"context"
	"fmt"
	"io"
	"net"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	"github.com/llmesh/llmesh/services/healthmon/internal/monitor"
	"github.com/llmesh/llmesh/services/healthmon/internal/nodesfile"
	"github.com/llmesh/llmesh/services/healthmon/internal/watchsvc"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/logging"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Run runs healthmon until ctx is done.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log = log.With("component", "healthmon")
	nodes, err := nodesfile.Resolve(cfg.NodesFile, nodesfile.FromEnv())
	if err != nil {
		return err
	}

	conn, err := grpc.NewClient(cfg.AdapterAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	healthmonv1.RegisterHealthmonServiceServer(srv.GRPC, watchsvc.New(mon))

	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.GetId() + "=" + n.GetBaseUrl()
	}
	log.Info("listening", "grpc", lis.Addr().String(), "adapter", cfg.AdapterAddr, "nodes", ids)
	mon.SetNodes(ctx, nodes)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return admin.Serve(gctx, cfg.AdminAddr, log) })
	g.Go(func() error { return srv.Serve(gctx, lis, cfg.Grace) })
	err = g.Wait()
	mon.Stop()
	log.Info("stopped")
	return err
}
