// Package grpcserver runs an llmesh gRPC server: the standard gRPC health
// service, reflection, errors converted to status codes once at the
// boundary, and a graceful stop bounded in time.
package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Server is a gRPC server with health and reflection registered.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger
}

// MaxMessageBytes bounds one message between llmesh's own services, both
// ways: an embedding batch of thousands of long vectors, or a request
// carrying images, is far over gRPC's 4 MiB default. The router's public
// gRPC server bounds what clients send by its -max-body-bytes instead.
const MaxMessageBytes = 256 << 20

// ReconnectMaxDelay caps the wait between two attempts to reconnect to
// one of llmesh's own services. gRPC's default grows to 120 s, so a
// router could take minutes to follow a healthmon (or reach an adapter)
// that came back after a long outage.
const ReconnectMaxDelay = 2 * time.Second

// ClientOptions are the dial options of a client of llmesh's own
// services: messages up to MaxMessageBytes either way, reconnects at
// most ReconnectMaxDelay apart, and OpenTelemetry's stats handler (a span
// per call, the trace context sent along, rpc.client.* metrics).
func ClientOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: ReconnectMaxDelay},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
}

// New makes a server taking messages up to MaxMessageBytes (opts may say
// otherwise), with OpenTelemetry's stats handler (a span per call joined
// to the caller's trace, rpc.server.* metrics; health checks left out).
// Register services on s.GRPC before Serve.
func New(log *slog.Logger, opts ...grpc.ServerOption) *Server {
	opts = append([]grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
		grpc.ChainUnaryInterceptor(unaryStatus),
		grpc.ChainStreamInterceptor(streamStatus),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	}, opts...)
	s := &Server{GRPC: grpc.NewServer(opts...), Health: health.NewServer(), log: log}
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// Serve serves on lis until ctx is done, then marks every service
// NOT_SERVING, stops gracefully within grace and forcefully after that.
// It returns nil after a stop caused by ctx.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	served := make(chan error, 1)
	go func() { served <- s.GRPC.Serve(lis) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	s.Health.Shutdown() // every service NOT_SERVING
	stopped := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(grace):
		s.log.Warn("graceful stop timed out; stopping", "grace", grace)
		s.GRPC.Stop()
		<-stopped
	}
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// AsStatus converts err to a gRPC status error keeping the code its cause
// deserves: errors that carry a status keep it, context errors become
// CANCELLED or DEADLINE_EXCEEDED, anything else stays UNKNOWN.
func AsStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return err
}

func unaryStatus(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, AsStatus(err)
}

func streamStatus(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return AsStatus(h(srv, ss))
}
