package healthcheck

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestDialAddr(t *testing.T) {
	cases := []struct{ listen, want, wantErr string }{
		{listen: "0.0.0.0:9091", want: "127.0.0.1:9091"},
		{listen: ":9091", want: "127.0.0.1:9091"},
		{listen: "[::]:9092", want: "[::1]:9092"},
		{listen: "127.0.0.1:9090", want: "127.0.0.1:9090"},
		{listen: "10.0.0.5:9090", want: "10.0.0.5:9090"},
		{listen: "[fd00::5]:9090", want: "[fd00::5]:9090"},
		{listen: "router:9090", want: "router:9090"},
		{listen: "127.0.0.1:0", wantErr: `port "0"`},
		{listen: "9090", wantErr: "want host:port"},
	}
	for _, tc := range cases {
		t.Run(tc.listen, func(t *testing.T) {
			got, err := DialAddr(tc.listen)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// serve runs an llmesh gRPC server on a loopback port and returns the
// server and the port.
func serve(t *testing.T) (*grpcserver.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpcserver.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return srv, port
}

func TestCheck(t *testing.T) {
	srv, port := serve(t)

	// The listen address of every interface is checked over loopback.
	require.Eventually(t, func() bool { return Check(t.Context(), "0.0.0.0:"+port, Timeout) == nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, Check(t.Context(), ":"+port, Timeout))

	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	err := Check(t.Context(), "127.0.0.1:"+port, Timeout)
	require.Error(t, err)
	assert.Equal(t, "healthcheck 127.0.0.1:"+port+": NOT_SERVING", err.Error())
}

func TestCheckNothingListening(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())

	start := time.Now()
	err = Check(t.Context(), addr, Timeout)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error(), "\n", "one line")
	assert.Less(t, time.Since(start), Timeout, "a refused connection fails at once")
}

// A server that accepts connections and never speaks gRPC fails the check
// when its time is up.
func TestCheckHungServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := lis.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })

	err = Check(t.Context(), lis.Addr().String(), 300*time.Millisecond)
	require.Error(t, err)
	assert.True(t, strings.HasSuffix(err.Error(), "no answer within 300ms"), "got %v", err)
}
