package app

import (
	"errors"
	"io"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/config"

	"github.com/llmesh/llmesh/services/healthmon/internal/consulsource"
	"github.com/llmesh/llmesh/services/healthmon/internal/monitor"
)

// Config is everything healthmon is told at start.
type Config struct {
	GRPCAddr    string
	AdapterAddr string
	NodesFile   string
	Probe       monitor.Config
	Grace       time.Duration
	AdminAddr   string
	// Consul turns on discovery: nodes come from the Consul service
	// ConsulService, and static nodes are registered there.
	Consul        bool
	ConsulService string
	ConsulWait    time.Duration
	// ConsulCheckTTL is the TTL of the checks healthmon writes to its
	// agent; the writer refreshes them every third of it.
	ConsulCheckTTL time.Duration
	// AdapterFromConsul is set when -consul is on and no -adapter-addr was
	// given: adapters are then found in Consul.
	AdapterFromConsul bool
	LogFormat         string
	LogLevel          string
	// Healthcheck checks the instance at GRPCAddr instead of serving.
	Healthcheck bool
}

// parse fills a Config from flags, each falling back to its environment
// variable (read with lookup), and reports every problem at once. It
// returns config.ErrHelp after printing the usage for -h.
func parse(args []string, stderr io.Writer, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	s := flags(&c, lookup, stderr)
	err := s.Parse(args)
	c.AdapterFromConsul = c.Consul && !s.Given("adapter-addr")
	return c, err
}

// flags registers healthmon's flags, filling c.
func flags(c *Config, lookup func(string) (string, bool), stderr io.Writer) *config.Set {
	s := config.New("healthmon", lookup, stderr)
	s.Addr(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9092", "gRPC listen address").Env(config.EnvHealthmonAddr)
	s.Addr(&c.AdapterAddr, "adapter-addr", "127.0.0.1:9091", "adapter gRPC address; with -consul, unless given, adapters are found in Consul").Env(config.EnvAdapterAddr)
	s.String(&c.NodesFile, "nodes", "", "YAML nodes file; empty: OPENAI_BASE_URL, else the local Ollama").Env(config.EnvNodesFile)
	s.Duration(&c.Probe.Interval, "probe-interval", 5*time.Second, "time between probes of one node", config.Positive[time.Duration])
	s.Float64(&c.Probe.Jitter, "probe-jitter", 0.2, "± fraction of the interval, spreading probes out", func(j float64) error {
		if j < 0 || j >= 1 {
			return errors.New("want 0 ≤ jitter < 1")
		}
		return nil
	})
	s.Duration(&c.Probe.Timeout, "probe-timeout", 5*time.Second, "one probe's time limit: a node that has not answered by then is down (\"no answer within …\")", config.Positive[time.Duration])
	s.Int(&c.Probe.Rise, "rise", 2, "successful probes in a row that bring a down node up", config.AtLeast(1))
	s.Int(&c.Probe.Fall, "fall", 2, "failed probes in a row that take an up node down", config.AtLeast(1))
	s.Grace(&c.Grace, "streams to end")
	s.Consul(&c.Consul, "discover LLM nodes in Consul, register static nodes there and find adapters there unless -adapter-addr is given")
	s.ConsulService(&c.ConsulService, "Consul service name of LLM nodes")
	s.Duration(&c.ConsulWait, "consul-wait", 10*time.Second, "longest wait of one Consul blocking query", config.Positive[time.Duration])
	s.Duration(&c.ConsulCheckTTL, "consul-check-ttl", consulsource.DefaultCheckTTL, "TTL of the checks written to the local Consul agent (refreshed every third of it); they expire this long after the last check writer stopped", config.AtLeast(time.Second))
	s.Admin(&c.AdminAddr, "/debug/pprof")
	s.Logging(&c.LogFormat, &c.LogLevel)
	s.Healthcheck(&c.Healthcheck)
	return s
}
