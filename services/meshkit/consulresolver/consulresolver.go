// Package consulresolver is a gRPC resolver that finds llmesh services in
// Consul: "consul:///llmesh-adapter" resolves to every instance of that
// Consul service whose checks pass, kept current with blocking queries.
// With round-robin balancing, calls spread over the healthy instances.
// While Consul is unreachable, or answers with no instance at all, the
// last addresses stay in use.
package consulresolver

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulwatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
)

// Scheme is the target scheme: "consul:///<service name>".
const Scheme = "consul"

// ServiceConfig balances round robin over the resolved instances.
const ServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Target is the dial target for a Consul service.
func Target(service string) string { return Scheme + ":///" + service }

// DialOptions are what a client needs to dial Consul targets.
func DialOptions(c *api.Client, log *slog.Logger) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithResolvers(&builder{client: c, log: log}),
		grpc.WithDefaultServiceConfig(ServiceConfig),
	}
}

type builder struct {
	client *api.Client
	log    *slog.Logger
}

func (b *builder) Scheme() string { return Scheme }

func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(target.Endpoint(), "/")
	ctx, cancel := context.WithCancel(context.Background())
	r := &consulResolver{cancel: cancel, done: make(chan struct{})}
	w := &consulwatch.Watch{Client: b.client, Service: service, PassingOnly: true, Log: b.log.With("resolver", service)}
	go func() {
		defer close(r.done)
		known := false
		w.Run(ctx, func(entries []*api.ServiceEntry) {
			// After the first answer, an empty one keeps the last
			// addresses: a Consul that lost its state (instances register
			// again within consulreg.Refresh) must not cut the mesh off,
			// and an instance that really died fails its calls, which are
			// retried elsewhere. The first answer always counts, so calls
			// fail fast when there is nothing to call.
			addrs := addresses(entries)
			if len(addrs) > 0 || !known {
				_ = cc.UpdateState(resolver.State{Addresses: addrs})
				known = len(addrs) > 0
			}
		})
	}()
	return r, nil
}

// addresses are the instances' service addresses (or their Consul node's).
func addresses(entries []*api.ServiceEntry) []resolver.Address {
	out := make([]resolver.Address, 0, len(entries))
	for _, e := range entries {
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		out = append(out, resolver.Address{Addr: net.JoinHostPort(host, strconv.Itoa(e.Service.Port))})
	}
	return out
}

type consulResolver struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// ResolveNow is a no-op: the blocking query already follows every change.
func (*consulResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits for it.
func (r *consulResolver) Close() {
	r.cancel()
	<-r.done
}
