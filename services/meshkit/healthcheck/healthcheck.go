// Package healthcheck is the -healthcheck mode of llmesh's services: one
// call to the standard gRPC health service (grpc.health.v1.Health/Check,
// service "") of the instance a configuration describes, so that a
// container with no shell and no curl (a scratch image) can be
// health-checked by its own binary: HEALTHCHECK CMD ["/router",
// "-healthcheck"] with the service's environment.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Timeout bounds one check: dialling, the call and its answer.
const Timeout = 3 * time.Second

// DialAddr is the address to reach a server listening on listen from the
// same host: an unspecified host (0.0.0.0:9091, :9091) becomes 127.0.0.1,
// [::] becomes [::1]; any other host is kept. Port 0 is an error: the
// server's port is then not known in advance.
func DialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("address %q: want host:port", listen)
	}
	if port == "0" || port == "" {
		return "", fmt.Errorf("address %q: port %q: a health check needs the port the service listens on", listen, port)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Check asks the gRPC health service of the server listening on listen
// (see DialAddr) for its overall health and returns nil when it answers
// SERVING within timeout. The error says why not in one line.
func Check(ctx context.Context, listen string, timeout time.Duration) error {
	addr, err := DialAddr(listen)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("healthcheck %s: no answer within %s", addr, timeout)
	case err != nil:
		return fmt.Errorf("healthcheck %s: %w", addr, err)
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return fmt.Errorf("healthcheck %s: %s", addr, resp.GetStatus())
	}
	return nil
}
