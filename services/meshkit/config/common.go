package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
)

// DefaultGrace is how long every service's shutdown waits by default.
const DefaultGrace = 10 * time.Second

// The flags every service registers the same way.

// Logging registers -log-format (text or json) and -log-level (debug,
// info, warn, error), which also read LLMESH_LOG_FORMAT and
// LLMESH_LOG_LEVEL.
func (s *Set) Logging(format, level *string) {
	s.String(format, "log-format", "text", "log format: text or json", func(v string) error {
		if f := strings.ToLower(v); f != "text" && f != "json" {
			return errors.New("want text or json")
		}
		return nil
	}).Env(EnvLogFormat)
	s.String(level, "log-level", "info", "log level: debug, info, warn or error", func(v string) error {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return errors.New("want debug, info, warn or error")
		}
		return nil
	}).Env(EnvLogLevel)
}

// Grace registers -grace, how long shutdown waits for work in flight
// (default DefaultGrace; positive). what says what the service waits for.
func (s *Set) Grace(p *time.Duration, what string) {
	s.Duration(p, "grace", DefaultGrace, fmt.Sprintf("how long shutdown waits for %s", what), Positive[time.Duration])
}

// Admin registers -admin-addr, the operator endpoints' address (off when
// empty, the default). endpoints lists what it serves.
func (s *Set) Admin(p *string, endpoints string) {
	s.Addr(p, "admin-addr", "", fmt.Sprintf("operator endpoints (%s); empty: off", endpoints))
}

// Consul registers -consul, which also reads LLMESH_CONSUL. what says
// what the service does with Consul.
func (s *Set) Consul(p *bool, what string) {
	s.Bool(p, "consul", false, what+" (Consul found through CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …)").Env(EnvConsul)
}

// ConsulService registers -consul-service, the Consul service name of LLM
// nodes, which also reads LLMESH_CONSUL_SERVICE.
func (s *Set) ConsulService(p *string, usage string) {
	s.String(p, "consul-service", consulnodes.DefaultService, usage, nonEmpty).Env(EnvConsulService)
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// Healthcheck registers -healthcheck: instead of serving, the binary asks
// the gRPC health service of the instance its -grpc-addr describes and
// exits (see package healthcheck), as a container's health check.
func (s *Set) Healthcheck(p *bool) {
	s.Bool(p, "healthcheck", false, "do not serve: ask the gRPC health service at -grpc-addr (0.0.0.0 or :: as loopback) and exit 0 if it answers SERVING within 3s, 1 otherwise (a container health check)")
}
