package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
)

// consulOptions say how simnode registers itself in Consul, as an LLM
// node's own agent would (docs/consul.md, "Putting an LLM node in").
type consulOptions struct {
	register  bool
	service   string // Consul service name of LLM nodes
	nodeID    string // service id; "": the host name
	advertise string // host:port the mesh dials; "": from the listen address
	kind      string // llmesh-kind; "": the flavour
	apiKeyEnv string // llmesh-api-key-env: simnode's -api-key-env
}

// registration is the agent service registration of a node listening on
// listen: an instance of the LLM service whose Meta is what
// consulnodes.FromEntry reads back as this node — the same Meta as `llmesh
// node register` writes, from the same code (nodesfile.Entry.Node,
// consulnodes.Meta). It has no checks: healthmon adds its llmesh:<id>
// check to the service.
func registration(o consulOptions, flavor string, listen net.Addr) (*api.AgentServiceRegistration, error) {
	host, port, err := advertised(o.advertise, listen)
	if err != nil {
		return nil, err
	}
	id := o.nodeID
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("-node-id: no host name to default to: %w", err)
		}
	}
	kind := o.kind
	if kind == "" {
		kind = flavor
	}
	n, err := nodesfile.Entry{ID: id, Kind: kind, URL: "http://" + net.JoinHostPort(host, strconv.Itoa(port)), APIKeyEnv: o.apiKeyEnv}.Node()
	if err != nil {
		return nil, fmt.Errorf("consul registration: %w", err)
	}
	meta, err := consulnodes.Meta(n)
	if err != nil {
		return nil, fmt.Errorf("consul registration: %w", err)
	}
	return &api.AgentServiceRegistration{ID: n.GetId(), Name: o.service, Address: host, Port: port, Meta: meta}, nil
}

// advertised is the host and port other hosts reach the node at: -advertise
// when given, else the listen address — with the host name in place of an
// unspecified host (0.0.0.0, ::), which other hosts cannot dial.
func advertised(advertise string, listen net.Addr) (string, int, error) {
	addr, flag := advertise, "-advertise"
	if addr == "" {
		addr, flag = listen.String(), "listen address"
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: want host:port", flag, addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%s %q: want a port in 1..65535", flag, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if advertise != "" {
			return "", 0, fmt.Errorf("-advertise %q: want an address other hosts can dial", advertise)
		}
		if host, err = os.Hostname(); err != nil {
			return "", 0, fmt.Errorf("no host name to advertise (give -advertise): %w", err)
		}
	}
	return host, port, nil
}
