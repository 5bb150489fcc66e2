package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/router/internal/edge"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/llmesh/llmesh/services/router/internal/routing"
)

// Config is everything the router is told at start.
type Config struct {
	HTTPAddr      string
	GRPCAddr      string
	AdapterAddr   string
	HealthmonAddr string
	MaxAttempts   int
	Policy        string
	Cooldown      time.Duration
	FirstToken    routing.FirstTokenTimeouts
	MaxInFlight   int
	Queue         routing.Queue
	Aliases       map[string]string
	MaxBodyBytes  int64
	Grace         time.Duration
	AdminAddr     string
	// Consul registers the router and, unless their addresses are given,
	// finds adapters and healthmons there.
	Consul              bool
	ConsulService       string
	AdapterFromConsul   bool
	HealthmonFromConsul bool
	LogFormat           string
	LogLevel            string
}

// parse fills a Config from flags, each falling back to an environment
// variable, and reports every problem at once.
func parse(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.HTTPAddr, "http-addr", env("LLMESH_ROUTER_HTTP_ADDR", "127.0.0.1:8080"), "REST (OpenAI-compatible) listen address [LLMESH_ROUTER_HTTP_ADDR]")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("LLMESH_ROUTER_GRPC_ADDR", "127.0.0.1:9090"), "native gRPC listen address [LLMESH_ROUTER_GRPC_ADDR]")
	fs.StringVar(&c.AdapterAddr, "adapter-addr", env("LLMESH_ADAPTER_ADDR", "127.0.0.1:9091"), "adapter gRPC address [LLMESH_ADAPTER_ADDR]")
	fs.StringVar(&c.HealthmonAddr, "healthmon-addr", env("LLMESH_HEALTHMON_ADDR", "127.0.0.1:9092"), "healthmon gRPC address [LLMESH_HEALTHMON_ADDR]")
	fs.IntVar(&c.MaxAttempts, "max-attempts", routing.DefaultMaxAttempts, "nodes one request may try before it fails")
	fs.StringVar(&c.Policy, "policy", env("LLMESH_ROUTER_POLICY", policy.NameP2C), "routing policy: p2c, round-robin or least-in-flight [LLMESH_ROUTER_POLICY]")
	fs.DurationVar(&c.Cooldown, "breaker-cooldown", nodestats.DefaultCooldown, "how long a node that refused a connection stays out before a trial request (doubles per failed trial)")
	fs.DurationVar(&c.FirstToken.Loaded, "first-token-timeout", routing.DefaultFirstTokenLoaded, "longest wait for a stream's first token on a node with the model loaded; then the node counts as hung")
	fs.DurationVar(&c.FirstToken.Cold, "cold-first-token-timeout", routing.DefaultFirstTokenCold, "the same where the model must be loaded first (a cold load takes minutes)")
	fs.IntVar(&c.MaxInFlight, "node-max-inflight", 0, "requests in flight per node; beyond it requests queue, then get 429 (0: no cap)")
	fs.IntVar(&c.Queue.Size, "queue-size", 256, "requests that may wait for a free node when all are at -node-max-inflight")
	fs.DurationVar(&c.Queue.Wait, "queue-wait", 2*time.Second, "longest wait for a free node before 429")
	c.Aliases = map[string]string{}
	fs.Func("model-alias", "NAME=MODEL: requests for NAME go to MODEL, e.g. default=llama3.2:3b (repeatable)", func(v string) error {
		name, model, ok := strings.Cut(v, "=")
		if !ok || name == "" || model == "" {
			return fmt.Errorf("%q: want NAME=MODEL", v)
		}
		c.Aliases[name] = model
		return nil
	})
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", edge.DefaultMaxBodyBytes, "largest accepted request body")
	fs.DurationVar(&c.Grace, "grace", 10*time.Second, "how long shutdown waits for requests in flight")
	consulDefault, _ := strconv.ParseBool(os.Getenv("LLMESH_CONSUL"))
	fs.BoolVar(&c.Consul, "consul", consulDefault, "register in Consul and find adapters and healthmons there unless their addresses are given (CONSUL_HTTP_ADDR etc.) [LLMESH_CONSUL]")
	fs.StringVar(&c.ConsulService, "consul-service", env("LLMESH_CONSUL_SERVICE", "llm"), "Consul service name of LLM nodes, for the fallback when healthmon is unreachable [LLMESH_CONSUL_SERVICE]")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("LLMESH_ROUTER_ADMIN_ADDR", ""), "operator endpoints (/debug/pprof); empty: off [LLMESH_ROUTER_ADMIN_ADDR]")
	fs.StringVar(&c.LogFormat, "log-format", env("LLMESH_LOG_FORMAT", "text"), "log format: text or json [LLMESH_LOG_FORMAT]")
	fs.StringVar(&c.LogLevel, "log-level", env("LLMESH_LOG_LEVEL", "info"), "log level [LLMESH_LOG_LEVEL]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	_, adapterEnv := os.LookupEnv("LLMESH_ADAPTER_ADDR")
	_, healthmonEnv := os.LookupEnv("LLMESH_HEALTHMON_ADDR")
	c.AdapterFromConsul = c.Consul && !explicit["adapter-addr"] && !adapterEnv
	c.HealthmonFromConsul = c.Consul && !explicit["healthmon-addr"] && !healthmonEnv
	var errs []error
	for name, addr := range map[string]string{"http-addr": c.HTTPAddr, "grpc-addr": c.GRPCAddr, "adapter-addr": c.AdapterAddr, "healthmon-addr": c.HealthmonAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: %w", name, addr, err))
		}
	}
	if _, err := policy.ByName(c.Policy); err != nil {
		errs = append(errs, fmt.Errorf("-policy: %w", err))
	}
	if c.Cooldown <= 0 {
		errs = append(errs, fmt.Errorf("-breaker-cooldown %s: must be positive", c.Cooldown))
	}
	if c.FirstToken.Loaded <= 0 || c.FirstToken.Cold <= 0 {
		errs = append(errs, errors.New("-first-token-timeout and -cold-first-token-timeout must be positive"))
	}
	if c.Queue.Size < 0 || c.Queue.Wait < 0 {
		errs = append(errs, errors.New("-queue-size and -queue-wait must not be negative"))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("-node-max-inflight %d: must be 0 or more", c.MaxInFlight))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("-max-attempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("-max-body-bytes %d: must be positive", c.MaxBodyBytes))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	return c, errors.Join(errs...)
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}
