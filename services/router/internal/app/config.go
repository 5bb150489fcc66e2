package app

import (
	"io"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/config"

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
	// Edge is how the REST and native gRPC listeners treat their clients'
	// connections.
	Edge      EdgeLimits
	Grace     time.Duration
	AdminAddr string
	// Consul registers the router and, unless their addresses are given,
	// finds adapters and healthmons there.
	Consul              bool
	ConsulService       string
	AdapterFromConsul   bool
	HealthmonFromConsul bool
	LogFormat           string
	LogLevel            string
	// Healthcheck checks the instance at GRPCAddr instead of serving.
	Healthcheck bool
}

// EdgeLimits bound what one client connection may hold at the edge.
type EdgeLimits struct {
	// ReadHeaderTimeout bounds a REST request's headers (and a gRPC
	// connection's HTTP/2 preface).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive REST connection idle that long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a REST request line and headers (431 above)
	// and a gRPC request's header list.
	MaxHeaderBytes int
	// MaxConnsPerClient caps the connections one client IP address holds
	// open on each listener; 0: no cap.
	MaxConnsPerClient int
}

// The edge's defaults.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConnsPerClient = 256
)

// parse fills a Config from flags, each falling back to its environment
// variable (read with lookup), and reports every problem at once. It
// returns config.ErrHelp after printing the usage for -h.
func parse(args []string, stderr io.Writer, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	s := flags(&c, lookup, stderr)
	err := s.Parse(args)
	c.AdapterFromConsul = c.Consul && !s.Given("adapter-addr")
	c.HealthmonFromConsul = c.Consul && !s.Given("healthmon-addr")
	return c, err
}

// flags registers the router's flags, filling c.
func flags(c *Config, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.New("router", lookup, stderr)
	s.Addr(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST (OpenAI-compatible) listen address")
	s.Addr(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "native gRPC listen address")
	s.Addr(&c.AdapterAddr, "adapter-addr", "127.0.0.1:9091", "adapter gRPC address; with -consul, unless given, adapters are found in Consul").Env(config.EnvAdapterAddr)
	s.Addr(&c.HealthmonAddr, "healthmon-addr", "127.0.0.1:9092", "healthmon gRPC address; with -consul, unless given, healthmons are found in Consul").Env(config.EnvHealthmonAddr)
	s.Int(&c.MaxAttempts, "max-attempts", routing.DefaultMaxAttempts, "nodes one request may try before it fails", config.AtLeast(1))
	s.String(&c.Policy, "policy", policy.NameP2C, "routing policy: p2c, round-robin or least-in-flight", func(v string) error {
		_, err := policy.ByName(v)
		return err
	})
	s.Duration(&c.Cooldown, "breaker-cooldown", nodestats.DefaultCooldown, "how long a node that failed a request stays out before a trial request (doubles per failed trial)", config.Positive[time.Duration])
	c.Limits = limits.Defaults()
	s.List("node-limits", "timeouts and in-flight caps per node kind: "+limits.Syntax+" (repeatable)", c.Limits.Set)
	s.Int(&c.Queue.Size, "queue-size", 256, "requests that may wait for a free node when every candidate is at its in-flight cap; one more is refused with 429 (0: none wait)", config.NotNegative[int])
	s.Duration(&c.Queue.Wait, "queue-wait", 0, "optional cap on a request's wait for a free node, then 429; 0: it waits as long as its deadline (client timeout, x-stainless-timeout) and its first-token budget allow", config.NotNegative[time.Duration])
	c.Routes = &modelroutes.Table{}
	s.List("model-alias", "NAME=MODEL or NAME=MODEL@GROUP: requests for NAME go to MODEL (on the nodes of GROUP only), e.g. default=llama3.2:3b (repeatable)", c.Routes.AddAlias)
	s.List("model-tiers", "NAME=MODE: where cloud nodes stand for model or alias NAME: local-first (default), cloud-first, local-only or cloud-only (repeatable)", c.Routes.AddTiers)
	s.Int64(&c.MaxBodyBytes, "max-body-bytes", edge.DefaultMaxBodyBytes, "largest accepted request body", config.Positive[int64])
	s.Duration(&c.BodyReadTimeout, "body-read-timeout", reqbody.DefaultTimeout, "longest a REST client may take to send a request body before 408 (0: no limit); answers, streamed or not, are not limited", config.NotNegative[time.Duration])
	s.Duration(&c.Edge.ReadHeaderTimeout, "http-read-header-timeout", DefaultReadHeaderTimeout, "longest a REST client may take to send a request's headers (and a gRPC client its connection preface) before the connection is closed", config.Positive[time.Duration])
	s.Duration(&c.Edge.IdleTimeout, "http-idle-timeout", DefaultIdleTimeout, "how long a REST keep-alive connection may sit idle between requests before it is closed", config.Positive[time.Duration])
	s.Int(&c.Edge.MaxHeaderBytes, "http-max-header-bytes", DefaultMaxHeaderBytes, "largest REST request line plus headers (431 above) and gRPC header list", config.AtLeast(4096))
	s.Int(&c.Edge.MaxConnsPerClient, "max-conns-per-client", DefaultMaxConnsPerClient, "connections one client IP address may hold open on each of the REST and gRPC listeners; more are refused at once (REST: 429) (0: no cap)", config.NotNegative[int])
	s.Grace(&c.Grace, "requests in flight")
	s.Consul(&c.Consul, "register in Consul and find adapters and healthmons there unless their addresses are given")
	s.ConsulService(&c.ConsulService, "Consul service name of LLM nodes, for the fallback when healthmon is unreachable")
	s.Admin(&c.AdminAddr, "/debug/nodes, /debug/pprof")
	s.Logging(&c.LogFormat, &c.LogLevel)
	s.Healthcheck(&c.Healthcheck)
	return s
}
