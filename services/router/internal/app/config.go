package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/envvar"

	"github.com/llmesh/llmesh/services/router/internal/edge"
	"github.com/llmesh/llmesh/services/router/internal/limits"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"github.com/llmesh/llmesh/services/router/internal/reqbody"
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
	Limits        limits.Set
	Queue         routing.Queue
	Routes        *modelroutes.Table
	MaxBodyBytes  int64
	// BodyReadTimeout bounds how long a REST client may take to send a
	// request body (408 after it); 0 means no limit.
	BodyReadTimeout time.Duration
	Grace           time.Duration
	AdminAddr       string
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
	fs.DurationVar(&c.Cooldown, "breaker-cooldown", nodestats.DefaultCooldown, "how long a node that failed a request stays out before a trial request (doubles per failed trial)")
	c.Limits = limits.Defaults()
	if v := os.Getenv("LLMESH_ROUTER_NODE_LIMITS"); v != "" {
		for _, one := range strings.Split(v, ";") {
			if err := c.Limits.Set(one); err != nil {
				return c, fmt.Errorf("LLMESH_ROUTER_NODE_LIMITS: %w", err)
			}
		}
	}
	fs.Func("node-limits", "timeouts and in-flight caps per node kind: "+limits.Syntax+" (repeatable; env LLMESH_ROUTER_NODE_LIMITS, ;-separated) [LLMESH_ROUTER_NODE_LIMITS]", c.Limits.Set)
	fs.IntVar(&c.Queue.Size, "queue-size", 256, "requests that may wait for a free node when every candidate is at its in-flight cap; one more is refused with 429 (0: none wait)")
	fs.DurationVar(&c.Queue.Wait, "queue-wait", 0, "optional cap on a request's wait for a free node, then 429; 0: it waits as long as its deadline (client timeout, x-stainless-timeout) and its first-token budget allow")
	c.Routes = &modelroutes.Table{}
	fs.Func("model-alias", "NAME=MODEL or NAME=MODEL@GROUP: requests for NAME go to MODEL (on the nodes of GROUP only), e.g. default=llama3.2:3b (repeatable)", c.Routes.AddAlias)
	fs.Func("model-tiers", "NAME=MODE: where cloud nodes stand for model or alias NAME: local-first (default), cloud-first, local-only or cloud-only (repeatable)", c.Routes.AddTiers)
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", edge.DefaultMaxBodyBytes, "largest accepted request body")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", reqbody.DefaultTimeout, "longest a REST client may take to send a request body before 408 (0: no limit); answers, streamed or not, are not limited")
	fs.DurationVar(&c.Grace, "grace", 10*time.Second, "how long shutdown waits for requests in flight")
	consulDefault, err := envvar.Bool(os.LookupEnv, "LLMESH_CONSUL")
	if err != nil {
		return c, err
	}
	fs.BoolVar(&c.Consul, "consul", consulDefault, "register in Consul and find adapters and healthmons there unless their addresses are given (CONSUL_HTTP_ADDR etc.) [LLMESH_CONSUL]")
	fs.StringVar(&c.ConsulService, "consul-service", env("LLMESH_CONSUL_SERVICE", "llm"), "Consul service name of LLM nodes, for the fallback when healthmon is unreachable [LLMESH_CONSUL_SERVICE]")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("LLMESH_ROUTER_ADMIN_ADDR", ""), "operator endpoints (/debug/nodes, /debug/pprof); empty: off [LLMESH_ROUTER_ADMIN_ADDR]")
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
	if c.Queue.Size < 0 || c.Queue.Wait < 0 {
		errs = append(errs, errors.New("-queue-size and -queue-wait must not be negative"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("-max-attempts %d: must be at least 1", c.MaxAttempts))
	}
	if c.BodyReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("-body-read-timeout %s: must not be negative", c.BodyReadTimeout))
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
