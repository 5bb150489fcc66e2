package app

import (
	"io"
	"time"

	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/probe"
	"github.com/llmesh/llmesh/services/meshkit/config"
)

// Config is the adapter's configuration.
type Config struct {
	GRPCAddr       string        // -grpc-addr
	LogFormat      string        // -log-format: text or json
	LogLevel       string        // -log-level
	Grace          time.Duration // -grace
	ProbeTimeout   time.Duration // -probe-timeout
	ConnectTimeout time.Duration // -connect-timeout
	AdminAddr      string        // -admin-addr: /debug/pprof; empty is off
	Consul         bool          // -consul: register in Consul as llmesh-adapter
	Healthcheck    bool          // -healthcheck: check the instance at GRPCAddr instead of serving
}

// parse fills a Config from flags, each falling back to its environment
// variable (read with lookup), and reports every problem at once. It
// returns config.ErrHelp after printing the usage for -h.
func parse(args []string, stderr io.Writer, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	err := flags(&c, lookup, stderr).Parse(args)
	return c, err
}

// flags registers the adapter's flags, filling c.
func flags(c *Config, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.New("adapter", lookup, stderr)
	s.Addr(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9091", "gRPC listen address").Env(config.EnvAdapterAddr)
	s.Duration(&c.ProbeTimeout, "probe-timeout", probe.DefaultTimeout, "upper bound of one node probe", config.Positive[time.Duration])
	s.Duration(&c.ConnectTimeout, "connect-timeout", nodeconn.DefaultConnectTimeout, "TCP connect timeout to nodes", config.Positive[time.Duration])
	s.Grace(&c.Grace, "requests in flight")
	s.Consul(&c.Consul, "register in Consul so routers and healthmons find this adapter")
	s.Admin(&c.AdminAddr, "/debug/pprof")
	s.Logging(&c.LogFormat, &c.LogLevel)
	s.Healthcheck(&c.Healthcheck)
	return s
}
