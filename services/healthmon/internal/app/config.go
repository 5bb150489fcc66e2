package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/envvar"

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
}

func parse(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("healthmon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("LLMESH_HEALTHMON_ADDR", "127.0.0.1:9092"), "gRPC listen address [LLMESH_HEALTHMON_ADDR]")
	fs.StringVar(&c.AdapterAddr, "adapter-addr", env("LLMESH_ADAPTER_ADDR", "127.0.0.1:9091"), "adapter gRPC address [LLMESH_ADAPTER_ADDR]")
	fs.StringVar(&c.NodesFile, "nodes", env("LLMESH_NODES_FILE", ""), "YAML nodes file; empty: OPENAI_BASE_URL, else the local Ollama [LLMESH_NODES_FILE]")
	fs.DurationVar(&c.Probe.Interval, "probe-interval", 5*time.Second, "time between probes of one node")
	fs.Float64Var(&c.Probe.Jitter, "probe-jitter", 0.2, "± fraction of the interval, spreading probes out")
	fs.DurationVar(&c.Probe.Timeout, "probe-timeout", 5*time.Second, "one probe's time limit: a node that has not answered by then is down (\"no answer within …\")")
	fs.IntVar(&c.Probe.Rise, "rise", 2, "successful probes in a row that bring a down node up")
	fs.IntVar(&c.Probe.Fall, "fall", 2, "failed probes in a row that take an up node down")
	fs.DurationVar(&c.Grace, "grace", 5*time.Second, "how long shutdown waits for streams to end")
	consulDefault, err := envvar.Bool(os.LookupEnv, "LLMESH_CONSUL")
	if err != nil {
		return c, err
	}
	fs.BoolVar(&c.Consul, "consul", consulDefault, "discover LLM nodes in Consul (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, … as the Consul client reads them) [LLMESH_CONSUL]")
	fs.StringVar(&c.ConsulService, "consul-service", env("LLMESH_CONSUL_SERVICE", "llm"), "Consul service name of LLM nodes [LLMESH_CONSUL_SERVICE]")
	fs.DurationVar(&c.ConsulWait, "consul-wait", 10*time.Second, "longest wait of one Consul blocking query")
	fs.DurationVar(&c.ConsulCheckTTL, "consul-check-ttl", consulsource.DefaultCheckTTL, "TTL of the checks written to the local Consul agent (refreshed every third of it); they expire this long after the last check writer stopped")
	fs.StringVar(&c.AdminAddr, "admin-addr", env("LLMESH_HEALTHMON_ADMIN_ADDR", ""), "operator endpoints (/debug/pprof); empty: off [LLMESH_HEALTHMON_ADMIN_ADDR]")
	fs.StringVar(&c.LogFormat, "log-format", env("LLMESH_LOG_FORMAT", "text"), "log format: text or json [LLMESH_LOG_FORMAT]")
	fs.StringVar(&c.LogLevel, "log-level", env("LLMESH_LOG_LEVEL", "info"), "log level [LLMESH_LOG_LEVEL]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	_, adapterEnv := os.LookupEnv("LLMESH_ADAPTER_ADDR")
	c.AdapterFromConsul = c.Consul && !explicit["adapter-addr"] && !adapterEnv
	var errs []error
	for name, addr := range map[string]string{"grpc-addr": c.GRPCAddr, "adapter-addr": c.AdapterAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: %w", name, addr, err))
		}
	}
	if c.Probe.Interval <= 0 {
		errs = append(errs, fmt.Errorf("-probe-interval %s: must be positive", c.Probe.Interval))
	}
	if c.Probe.Jitter < 0 || c.Probe.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("-probe-jitter %g: want 0 ≤ jitter < 1", c.Probe.Jitter))
	}
	if c.Probe.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-probe-timeout %s: must be positive", c.Probe.Timeout))
	}
	if c.ConsulCheckTTL < time.Second {
		errs = append(errs, fmt.Errorf("-consul-check-ttl %s: must be at least 1s", c.ConsulCheckTTL))
	}
	if c.Probe.Rise < 1 || c.Probe.Fall < 1 {
		errs = append(errs, fmt.Errorf("-rise %d, -fall %d: must be at least 1", c.Probe.Rise, c.Probe.Fall))
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
