// Package consulreg registers an llmesh service instance with a Consul
// agent — name, an id per instance, a gRPC health check on its gRPC port —
// keeps it registered (an agent that lost its state gets it back), and
// deregisters it on shutdown. KeepService does the same for any other
// registration, such as an LLM node registering itself.
//
// The agent is usually the local one (each host runs its own). When it is
// on another host (a container talking to a Consul server elsewhere) and
// the service listens on every interface, the service registers the
// address it reaches that agent from, so the agent's check and every other
// service reach it there.
package consulreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Refresh is how often the registration is renewed (and restored, after
// an agent that lost its state).
const Refresh = 5 * time.Second

// Instance is one running service.
type Instance struct {
	Name string   // e.g. "llmesh-adapter"
	Addr net.Addr // its gRPC listen address
	// Agent is the host:port of the Consul agent it registers with (the
	// client's address, e.g. from CONSUL_HTTP_ADDR); empty means a local
	// agent.
	Agent string
}

// ID is the instance's service id: name, host name and port, unique per
// instance on an agent.
func (in Instance) ID() string {
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(in.Addr.String())
	return fmt.Sprintf("%s-%s-%s", in.Name, host, port)
}

func (in Instance) registration() (*api.AgentServiceRegistration, error) {
	host, portStr, err := net.SplitHostPort(in.Addr.String())
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	check := in.Addr.String()
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if local, remote := routeTo(in.Agent); remote {
			// The agent is elsewhere: advertise the address this host
			// reaches it from, where it (and everyone) can reach us.
			host, check = local, net.JoinHostPort(local, portStr)
		} else {
			// Listening on every interface with the agent on this host:
			// advertise no address, so Consul gives the agent node's
			// address (0.0.0.0 or :: would make other hosts dial
			// themselves), and let the agent check over loopback.
			host, check = "", net.JoinHostPort("127.0.0.1", portStr)
		}
	}
	return &api.AgentServiceRegistration{
		ID: in.ID(), Name: in.Name, Address: host, Port: port,
		Meta: map[string]string{"llmesh": "true"},
		Check: &api.AgentServiceCheck{
			Name:                           in.Name + " gRPC health",
			GRPC:                           check,
			Interval:                       "2s",
			Timeout:                        "1s",
			DeregisterCriticalServiceAfter: "1m",
			// The service listens before it registers, so it is found
			// at once rather than after its first check (up to an
			// interval later); a renewal keeps whatever the checks found
			// since (the agent preserves an existing check's status).
			Status: api.HealthPassing,
		},
	}, nil
}

// routeTo says whether agent (host:port) is on another host and, if so,
// the local address this host reaches it from. An agent whose address is
// empty, a loopback address or a name of this host is local; so is one
// that cannot be resolved yet (the next renewal asks again).
func routeTo(agent string) (local string, remote bool) {
	host, _, err := net.SplitHostPort(agent)
	if err != nil || host == "" || host == "localhost" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "", false
	}
	// A UDP "connection" sends nothing: it only picks the route.
	conn, err := net.Dial("udp", agent)
	if err != nil {
		return "", false
	}
	defer conn.Close()
	ip := conn.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return "", false
	}
	return ip.String(), true
}

// Keep registers in with the agent and renews the registration every
// Refresh until ctx is done, then deregisters it. An unreachable Consul is
// logged once per outage and retried; it never stops the service.
func Keep(ctx context.Context, c *api.Client, in Instance, log *slog.Logger) error {
	reg, err := in.registration()
	if err != nil {
		return fmt.Errorf("consul registration of %s: %w", in.Name, err)
	}
	down, registered := false, false
	for {
		if in.Agent != "" && !registered {
			// The agent's name may resolve only once it is up.
			reg, _ = in.registration()
		}
		err := c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
		switch {
		case err != nil && ctx.Err() == nil && !down:
			log.Warn("consul registration failed; retrying", "service", in.Name, "err", err)
			down = true
		case err == nil && (down || !registered):
			log.Info("registered in consul", "service", in.Name, "id", reg.ID, "address", reg.Address)
			down, registered = false, true
		}
		wait := Refresh
		if err != nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			// Deregister with a fresh context: ctx is already done.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			derr := c.Agent().ServiceDeregisterOpts(reg.ID, (&api.QueryOptions{}).WithContext(dctx))
			cancel()
			if derr != nil {
				log.Warn("consul deregistration failed", "service", in.Name, "err", derr)
			}
			return nil
		case <-time.After(wait):
		}
	}
}

// KeepService registers reg with the agent, registers it again whenever
// the agent no longer has it as registered (an agent that lost its state,
// or someone who removed or replaced it) — looking every Refresh until ctx
// is done — and then deregisters it. A registration the agent still has is
// left alone: renewing it with ReplaceExistingChecks would drop the checks
// others put on the service, such as healthmon's llmesh:<id> TTL check on
// an LLM node. Every registration replaces the service's checks with
// reg's, so a node that comes back under an old id starts without the old
// verdicts. An unreachable Consul is logged once per outage and retried
// every second; it never stops the caller.
func KeepService(ctx context.Context, c *api.Client, reg *api.AgentServiceRegistration, log *slog.Logger) error {
	down, registered := false, false
	for {
		wrote, err := ensure(ctx, c, reg, !registered)
		switch {
		case err != nil && ctx.Err() == nil && !down:
			log.Warn("consul registration failed; retrying", "service", reg.Name, "id", reg.ID, "err", err)
			down = true
		case err == nil:
			if wrote && registered {
				log.Info("registered in consul again: the agent had lost or changed it", "service", reg.Name, "id", reg.ID)
			} else if wrote {
				log.Info("registered in consul", "service", reg.Name, "id", reg.ID)
			}
			down, registered = false, true
		}
		wait := Refresh
		if err != nil {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			// Deregister with a fresh context: ctx is already done.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			derr := c.Agent().ServiceDeregisterOpts(reg.ID, (&api.QueryOptions{}).WithContext(dctx))
			cancel()
			if derr != nil {
				log.Warn("consul deregistration failed", "service", reg.Name, "id", reg.ID, "err", derr)
			} else if registered {
				log.Info("deregistered from consul", "service", reg.Name, "id", reg.ID)
			}
			return nil
		case <-time.After(wait):
		}
	}
}

// ensure registers reg when always is set or when the agent does not have
// it as registered, and says whether it did.
func ensure(ctx context.Context, c *api.Client, reg *api.AgentServiceRegistration, always bool) (bool, error) {
	if !always {
		svc, _, err := c.Agent().Service(reg.ID, (&api.QueryOptions{}).WithContext(ctx))
		var se api.StatusError
		switch {
		case err == nil && svc.Service == reg.Name && svc.Address == reg.Address && svc.Port == reg.Port && maps.Equal(svc.Meta, reg.Meta):
			return false, nil
		case err != nil && (!errors.As(err, &se) || se.Code != http.StatusNotFound):
			return false, err
		}
		// Missing or changed: register it again.
	}
	err := c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	return err == nil, err
}
