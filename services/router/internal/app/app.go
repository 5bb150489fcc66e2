// Package app wires the router process: the native gRPC API, the REST
// edge, the adapter client and the healthmon node stream.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/config"
	"github.com/llmesh/llmesh/services/meshkit/connlimit"
	"github.com/llmesh/llmesh/services/meshkit/consulreg"
	"github.com/llmesh/llmesh/services/meshkit/consulresolver"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/healthcheck"
	"github.com/llmesh/llmesh/services/meshkit/logging"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"github.com/llmesh/llmesh/services/meshkit/telemetry"
	"github.com/llmesh/llmesh/services/router/internal/consulfallback"
	"github.com/llmesh/llmesh/services/router/internal/debugnodes"
	"github.com/llmesh/llmesh/services/router/internal/edge"
	"github.com/llmesh/llmesh/services/router/internal/failreport"
	"github.com/llmesh/llmesh/services/router/internal/grpcutf8"
	"github.com/llmesh/llmesh/services/router/internal/healthwatch"
	"github.com/llmesh/llmesh/services/router/internal/inference"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"github.com/llmesh/llmesh/services/router/internal/ollamaedge"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/llmesh/llmesh/services/router/internal/reqbody"
	"github.com/llmesh/llmesh/services/router/internal/routing"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Run runs the router until ctx is done.
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
	log = log.With("component", "router")
	tel, err := telemetry.Setup(ctx, "llmesh-router", "", os.LookupEnv)
	if err != nil {
		return err
	}
	defer telemetry.Flush(ctx, tel, log)

	var consul *api.Client
	consulConfig := api.DefaultConfig() // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …
	if cfg.Consul {
		if consul, err = api.NewClient(consulConfig); err != nil {
			return fmt.Errorf("consul client: %w", err)
		}
	}
	dial := func(addr string, fromConsul bool, service string) (*grpc.ClientConn, string, error) {
		opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, grpcserver.ClientOptions()...)
		if fromConsul {
			addr = consulresolver.Target(service)
			opts = append(opts, consulresolver.DialOptions(consul, log)...)
		}
		conn, err := grpc.NewClient(addr, opts...)
		return conn, addr, err
	}
	adapterConn, adapterTarget, err := dial(cfg.AdapterAddr, cfg.AdapterFromConsul, "llmesh-adapter")
	if err != nil {
		return fmt.Errorf("adapter client: %w", err)
	}
	defer adapterConn.Close()
	healthmonConn, healthmonTarget, err := dial(cfg.HealthmonAddr, cfg.HealthmonFromConsul, "llmesh-healthmon")
	if err != nil {
		return fmt.Errorf("healthmon client: %w", err)
	}
	defer healthmonConn.Close()

	table := nodetable.New()
	pol, _ := policy.ByName(cfg.Policy) // validated by parse
	stats := nodestats.New(cfg.Cooldown, nil)
	reports := failreport.New(64)
	obs := observe.New(otel.GetTracerProvider(), otel.GetMeterProvider(), observe.KnownIn(table))
	router := routing.New(table, adapterv1.NewAdapterServiceClient(adapterConn), routing.Options{
		MaxAttempts: cfg.MaxAttempts, Policy: pol, Stats: stats,
		Limits: &cfg.Limits, Routes: cfg.Routes, Queue: cfg.Queue, OnNodeFailed: reports.Failed,
		Observe: obs,
	})
	svc := inference.New(router, table, cfg.Routes)

	grpcLis, err := listen("grpc", cfg.GRPCAddr, cfg.Edge.MaxConnsPerClient, nil, log)
	if err != nil {
		return err
	}
	httpLis, err := listen("http", cfg.HTTPAddr, cfg.Edge.MaxConnsPerClient, tooManyConnections, log)
	if err != nil {
		grpcLis.Close()
		return err
	}
	// Native clients may send what REST clients may: -max-body-bytes.
	// A string that is not UTF-8 is INVALID_ARGUMENT naming the field.
	gsrv := grpcserver.New(log, append(append(grpcutf8.ServerOptions(), grpc.MaxRecvMsgSize(int(min(cfg.MaxBodyBytes, math.MaxInt32)))),
		edgeGRPCOptions(cfg.Edge)...)...)
	routerv1.RegisterInferenceServiceServer(gsrv.GRPC, svc)
	rest, err := edge.New(ctx, svc, edge.Options{Log: log, MaxBodyBytes: cfg.MaxBodyBytes})
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	ollama := ollamaedge.New(ollamaedge.Options{Routing: router, Table: table, Routes: cfg.Routes, Log: log,
		MaxBodyBytes: cfg.MaxBodyBytes})
	// Headers must arrive within -http-read-header-timeout and a body
	// within -body-read-timeout; answers have no time limit (a stream may
	// run for hours).
	hsrv := &http.Server{Handler: reqbody.WithTimeout(traced(bothAPIs(rest, ollama)), cfg.BodyReadTimeout),
		ReadHeaderTimeout: cfg.Edge.ReadHeaderTimeout, IdleTimeout: cfg.Edge.IdleTimeout, MaxHeaderBytes: cfg.Edge.MaxHeaderBytes}
	log.Info("listening", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(),
		"adapter", adapterTarget, "healthmon", healthmonTarget)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gsrv.Serve(ctx, grpcLis, cfg.Grace) })
	g.Go(func() error {
		if err := hsrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Grace)
		defer cancel()
		if err := hsrv.Shutdown(sctx); err != nil {
			return hsrv.Close()
		}
		return nil
	})
	if consul != nil {
		g.Go(func() error {
			return consulreg.Keep(ctx, consul, consulreg.Instance{Name: "llmesh-router", Addr: grpcLis.Addr(), Agent: consulConfig.Address}, log)
		})
	}
	w := &healthwatch.Watcher{Client: healthmonv1.NewHealthmonServiceClient(healthmonConn), Table: table, Log: log,
		OnUp: stats.Recovered, OnDown: stats.Leave}
	if consul != nil {
		fb := &consulfallback.Fallback{Client: consul, Service: cfg.ConsulService, Table: table, Log: log}
		w.OnLost, w.OnResumed = fb.Activate, fb.Deactivate
		g.Go(func() error { return fb.Run(ctx) })
	}
	source := func() string {
		switch {
		case w.Live():
			return debugnodes.SourceHealthmon
		case consul != nil:
			return debugnodes.SourceConsul
		}
		return debugnodes.SourceLastKnown
	}
	if err := observe.Gauges(otel.GetMeterProvider(), table, stats, router.Waiting, source); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := observe.RefusedConnections(otel.GetMeterProvider(), map[string]func() int64{"http": httpLis.Refused, "grpc": grpcLis.Refused}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	g.Go(func() error {
		return admin.Serve(ctx, cfg.AdminAddr, log, admin.Route{Pattern: debugnodes.Path, Handler: debugnodes.Handler(source, table, stats)},
			tel.Route())
	})
	g.Go(func() error {
		w.Run(ctx)
		return nil
	})
	g.Go(func() error {
		reports.Run(ctx, healthmonv1.NewHealthmonServiceClient(healthmonConn))
		return nil
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// listen listens on addr with at most maxPerClient connections from one
// client IP address (0: no cap); over it a connection gets refuse (if
// any) and is closed.
func listen(name, addr string, maxPerClient int, refuse []byte, log *slog.Logger) (*connlimit.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	return connlimit.Wrap(lis, connlimit.Options{Max: maxPerClient, Name: name, Refuse: refuse, Log: log}), nil
}

// tooManyConnections is what a REST client over -max-conns-per-client
// gets before its connection is closed: a 429 in OpenAI's error shape.
var tooManyConnections = func() []byte {
	body := openaijson.MarshalError(openaijson.ErrorObject{
		Message: "too many connections from this address; close some or wait, then retry",
		Type:    apierror.TypeRateLimit, Code: "too_many_connections",
	})
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s", len(body), body)
}()

// edgeGRPCOptions bound what one native gRPC client connection may hold:
// its preface must arrive within the header timeout, its header list is
// capped like REST headers, it may run at most
// edgeMaxConcurrentStreams calls at once (more wait for a free slot on
// the client's side), and pings more often than every
// edgeMinPingInterval end it (GOAWAY ENHANCE_YOUR_CALM).
func edgeGRPCOptions(e EdgeLimits) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(e.ReadHeaderTimeout),
		grpc.MaxHeaderListSize(uint32(e.MaxHeaderBytes)),
		grpc.MaxConcurrentStreams(edgeMaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: edgeMinPingInterval, PermitWithoutStream: true}),
	}
}

// The native gRPC edge's fixed per-connection bounds.
const (
	edgeMaxConcurrentStreams = 1024
	edgeMinPingInterval      = 10 * time.Second
)

// bothAPIs serves the Ollama API ("/" and /api/*) and the OpenAI one
// (everything else) on one port.
func bothAPIs(openai, ollama http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ollamaedge.Serves(r.URL.Path) {
			ollama.ServeHTTP(w, r.WithContext(observe.WithEdge(r.Context(), observe.EdgeOllama)))
			return
		}
		openai.ServeHTTP(w, r.WithContext(observe.WithEdge(r.Context(), observe.EdgeOpenAI)))
	})
}

// traced gives every HTTP request a server span (joined to the trace of
// a W3C traceparent it carries) named by method and path pattern-free:
// "POST /v1/chat/completions".
func traced(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "llmesh-router", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
}
