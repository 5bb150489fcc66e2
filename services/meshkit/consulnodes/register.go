package consulnodes

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
)

// ExternalNodeMeta marks Consul nodes that run no agent (a GPU box with
// only Ollama): they live in the catalog and nothing but llmesh updates
// them.
var ExternalNodeMeta = map[string]string{"external-node": "true", "llmesh": "true"}

// StatePrefix is where healthmon's check writer keeps each up node's state
// (its models) in KV, as protojson under StatePrefix+id; routers that lose
// healthmon read it back. Meta is no place for long model lists.
const StatePrefix = "llmesh/nodes/"

// AwaitingProbe is the output of llmesh's check on a node no probe has
// judged yet (new, registered again, or changed). Its status is
// AwaitingStatus, "warning", which no verdict has: the first verdict is
// then a change of status, which a Consul agent passes to the catalog at
// once (a change of output alone waits for its check_update_interval,
// minutes), and "warning" is not "passing", so nothing routes there yet.
const (
	AwaitingProbe  = "awaiting llmesh's first probe"
	AwaitingStatus = api.HealthWarning
)

// CheckName is the name of llmesh's check on an LLM node's service.
const CheckName = "llmesh health"

// CheckID is the id of llmesh's check on a node's service.
func CheckID(nodeID string) string { return "llmesh:" + nodeID }

// ExternalNodeName is the Consul node name an external LLM node gets.
func ExternalNodeName(id string) string { return "llmesh-" + id }

// RegisterExternal registers n in the catalog as an instance of service on
// a Consul node of its own (ExternalNodeName), which is how a node without
// a Consul agent joins the mesh. Registering again updates it. The node
// gets llmesh's check, critical until healthmon's first probe: a service
// with no checks would count as passing.
func RegisterExternal(ctx context.Context, c *api.Client, service string, n *nodev1.Node) error {
	u, err := nodeurl.Parse(n.GetBaseUrl())
	if err != nil {
		return fmt.Errorf("node %s: %w", n.GetId(), err)
	}
	host, port := u.Host, u.Port
	meta, err := Meta(n)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.GetId(), err)
	}
	_, err = c.Catalog().Register(&api.CatalogRegistration{
		Node:     ExternalNodeName(n.GetId()),
		Address:  host,
		NodeMeta: ExternalNodeMeta,
		Service:  &api.AgentService{ID: n.GetId(), Service: service, Address: host, Port: port, Meta: meta},
		Check: &api.AgentCheck{Node: ExternalNodeName(n.GetId()), CheckID: CheckID(n.GetId()), Name: CheckName,
			ServiceID: n.GetId(), Status: AwaitingStatus, Output: AwaitingProbe},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("register node %s in consul: %w", n.GetId(), err)
	}
	return nil
}

// DeregisterExternal removes an external node and everything on it.
func DeregisterExternal(ctx context.Context, c *api.Client, id string) error {
	if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: ExternalNodeName(id)}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("deregister node %s from consul: %w", id, err)
	}
	return nil
}
