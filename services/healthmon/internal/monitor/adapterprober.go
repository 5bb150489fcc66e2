package monitor

import (
	"context"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// AdapterProber probes through the adapter service, which owns the
// knowledge of how each kind of node is checked.
type AdapterProber struct {
	Client adapterv1.AdapterServiceClient
}

// Probe asks the adapter to probe n.
func (p AdapterProber) Probe(ctx context.Context, n *nodev1.Node) (*nodev1.ProbeResult, error) {
	resp, err := p.Client.Probe(ctx, &adapterv1.ProbeRequest{Node: n})
	if err != nil {
		return nil, err
	}
	return resp.GetResult(), nil
}
