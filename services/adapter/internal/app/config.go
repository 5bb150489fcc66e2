package app

import (
	"io"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
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
	// SecretEnv binds variables to the hosts they may be sent to
	// (-secret-env NAME=HOST[,HOST…], repeatable).
	SecretEnv map[string][]string
	// NodeAllow is the node address allowlist (-node-allow, repeatable,
	// comma-separated entries); nil: nodetrust.DefaultAllow.
	NodeAllow []string
	// NodesFile is the operator's nodes file (-nodes): its hosts are
	// allowed and the variables its nodes name are bound to their hosts.
	NodesFile string
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
	s.List("secret-env", "NAME=HOST[,HOST…]: the variable NAME may be sent (as a node's api_key_env or {env: NAME} header) to these hosts only; no other variable is ever sent", func(v string) error {
		name, hosts, err := nodetrust.ParseSecretEnv(v)
		if err != nil {
			return err
		}
		if c.SecretEnv == nil {
			c.SecretEnv = map[string][]string{}
		}
		c.SecretEnv[name] = append(c.SecretEnv[name], hosts...)
		return nil
	})
	s.List("node-allow", "networks and hosts nodes may be at, comma-separated: loopback, private, IP, CIDR, host name (default loopback,private; link-local and metadata addresses only when named)", func(v string) error {
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if err := nodetrust.ParseAllow(e); err != nil && e != nodetrust.Loopback && e != nodetrust.Private {
				return err
			}
			c.NodeAllow = append(c.NodeAllow, e)
		}
		return nil
	})
	s.String(&c.NodesFile, "nodes", "", "the operator's YAML nodes file (as healthmon's): its hosts are allowed, and the variables a node names there are secrets bound to its host").Env(config.EnvNodesFile)
	s.Consul(&c.Consul, "register in Consul so routers and healthmons find this adapter")
	s.Admin(&c.AdminAddr, "/debug/pprof")
	s.Logging(&c.LogFormat, &c.LogLevel)
	s.Healthcheck(&c.Healthcheck)
	return s
}
