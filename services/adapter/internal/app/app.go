// Package app runs the adapter process: configuration from flags and
// environment, the gRPC server, and a graceful stop when ctx ends.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/adapter/internal/service"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/llmesh/llmesh/services/meshkit/consulreg"
	"github.com/llmesh/llmesh/services/meshkit/envvar"
	"github.com/llmesh/llmesh/services/meshkit/grpcserver"
	"github.com/llmesh/llmesh/services/meshkit/logging"
	"golang.org/x/sync/errgroup"
)

// Config is the adapter's configuration.
type Config struct {
	GRPCAddr       string        // -grpc-addr, LLMESH_ADAPTER_ADDR
	LogFormat      string        // -log-format, LLMESH_ADAPTER_LOG_FORMAT: text or json
	LogLevel       string        // -log-level, LLMESH_ADAPTER_LOG_LEVEL
	Grace          time.Duration // -grace, LLMESH_ADAPTER_GRACE
	ProbeTimeout   time.Duration // -probe-timeout, LLMESH_ADAPTER_PROBE_TIMEOUT
	ConnectTimeout time.Duration // -connect-timeout, LLMESH_ADAPTER_CONNECT_TIMEOUT
	AdminAddr      string        // -admin-addr, LLMESH_ADAPTER_ADMIN_ADDR: /debug/pprof; empty is off
	Consul         bool          // -consul, LLMESH_CONSUL: register in Consul as llmesh-adapter
}

// Run runs the adapter until ctx is done. Node API keys are read from the
// process environment, by the names the nodes give.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	return run(ctx, args, stderr, os.LookupEnv)
}

func run(ctx context.Context, args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	cfg, err := ParseConfig(args, stderr, lookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err // validated already; kept for safety
	}

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	pool := nodeconn.NewPool(nodeconn.Options{LookupEnv: lookupEnv, ConnectTimeout: cfg.ConnectTimeout, Log: log})
	defer pool.Close()

	srv := grpcserver.New(log)
	adapterv1.RegisterAdapterServiceServer(srv.GRPC, service.New(log, pool, probe.New(pool, cfg.ProbeTimeout)))

	log.Info("listening", "addr", lis.Addr().String())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return admin.Serve(ctx, cfg.AdminAddr, log) })
	if cfg.Consul {
		consul, err := api.NewClient(api.DefaultConfig())
		if err != nil {
			return fmt.Errorf("consul client: %w", err)
		}
		g.Go(func() error {
			return consulreg.Keep(ctx, consul, consulreg.Instance{Name: "llmesh-adapter", Addr: lis.Addr()}, log)
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

// ParseConfig reads args, with environment fallbacks, and validates the
// result, reporting every problem at once. It returns flag.ErrHelp after
// printing the usage for -h.
func ParseConfig(args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) (Config, error) {
	env := func(name, def string) string {
		if v, ok := lookupEnv(name); ok && v != "" {
			return v
		}
		return def
	}
	var raw struct{ addr, format, level, grace, probeTimeout, connectTimeout, admin string }
	var consul bool
	consulDefault, err := envvar.Bool(lookupEnv, "LLMESH_CONSUL")
	if err != nil {
		return Config{}, err
	}
	fs := flag.NewFlagSet("adapter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&raw.addr, "grpc-addr", env("LLMESH_ADAPTER_ADDR", "127.0.0.1:9091"), "gRPC listen address (env LLMESH_ADAPTER_ADDR)")
	fs.StringVar(&raw.format, "log-format", env("LLMESH_ADAPTER_LOG_FORMAT", "text"), "log format: text or json (env LLMESH_ADAPTER_LOG_FORMAT)")
	fs.StringVar(&raw.level, "log-level", env("LLMESH_ADAPTER_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env LLMESH_ADAPTER_LOG_LEVEL)")
	fs.StringVar(&raw.grace, "grace", env("LLMESH_ADAPTER_GRACE", "10s"), "graceful stop deadline (env LLMESH_ADAPTER_GRACE)")
	fs.StringVar(&raw.probeTimeout, "probe-timeout", env("LLMESH_ADAPTER_PROBE_TIMEOUT", probe.DefaultTimeout.String()), "upper bound of one node probe (env LLMESH_ADAPTER_PROBE_TIMEOUT)")
	fs.StringVar(&raw.connectTimeout, "connect-timeout", env("LLMESH_ADAPTER_CONNECT_TIMEOUT", nodeconn.DefaultConnectTimeout.String()), "TCP connect timeout to nodes (env LLMESH_ADAPTER_CONNECT_TIMEOUT)")
	fs.BoolVar(&consul, "consul", consulDefault, "register in Consul (found through CONSUL_HTTP_ADDR etc.) so routers and healthmons find this adapter (env LLMESH_CONSUL)")
	fs.StringVar(&raw.admin, "admin-addr", env("LLMESH_ADAPTER_ADMIN_ADDR", ""), "operator endpoints (/debug/pprof); empty: off (env LLMESH_ADAPTER_ADMIN_ADDR)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}

	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	cfg := Config{GRPCAddr: raw.addr, LogFormat: raw.format, LogLevel: raw.level, AdminAddr: raw.admin, Consul: consul}
	if err := validateAddr(raw.addr); err != nil {
		errs = append(errs, fmt.Errorf("-grpc-addr: %w", err))
	}
	if raw.admin != "" {
		if err := validateAddr(raw.admin); err != nil {
			errs = append(errs, fmt.Errorf("-admin-addr: %w", err))
		}
	}
	if _, err := logging.New(io.Discard, raw.format, raw.level); err != nil {
		errs = append(errs, err)
	}
	duration := func(flagName, v string, dst *time.Duration) {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("-%s: %w", flagName, err))
		case d <= 0:
			errs = append(errs, fmt.Errorf("-%s %s: must be positive", flagName, v))
		default:
			*dst = d
		}
	}
	duration("grace", raw.grace, &cfg.Grace)
	duration("probe-timeout", raw.probeTimeout, &cfg.ProbeTimeout)
	duration("connect-timeout", raw.connectTimeout, &cfg.ConnectTimeout)
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func validateAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	return nil
}
