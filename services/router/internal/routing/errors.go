package routing

import (
	"fmt"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/policy"
	"google.golang.org/grpc/codes"
)

// noneAllowed explains that up nodes serve the model, but none the route
// allows (another group, or the wrong side of the tier mode).
func noneAllowed(route modelroutes.Route, all []nodetable.Candidate) error {
	ids := make([]string, len(all))
	for i, c := range all {
		ids[i] = c.Node.GetId()
	}
	var rule []string
	if route.Group != "" {
		rule = append(rule, fmt.Sprintf("in node group %q", route.Group))
	}
	if route.Tiers == policy.LocalOnly || route.Tiers == policy.CloudOnly {
		rule = append(rule, fmt.Sprintf("allowed by tiers %s", route.Tiers))
	}
	return apierror.Unavailable("", "no up node %s serves model %q (it is served by %s)", strings.Join(rule, " and "), apierror.Clip(route.Model), strings.Join(ids, ", "))
}

// soonest is the shortest wait any failed node asked for: the client may
// try again once the first of them takes requests. 0 when none said.
func soonest(failures []failure) time.Duration {
	var d time.Duration
	for _, f := range failures {
		if r := f.err.RetryAfter; r > 0 && (d == 0 || r < d) {
			d = r
		}
	}
	return d
}

// noCandidate explains why no up node serves model: 503 when nodes that
// could serve it are down (or nothing is up at all), 404 when the model is
// simply not served.
func noCandidate(snap *nodetable.Snapshot, model string) error {
	downs := snap.Unavailable(model)
	var had []string
	for _, d := range downs {
		// A misconfigured node, or one loading its model on first start,
		// may never have listed its models: it may well serve this one,
		// and the client should hear why it cannot.
		if d.HadModel || d.Status == nodev1.Status_STATUS_MISCONFIGURED || d.Status == nodev1.Status_STATUS_LOADING {
			had = append(had, d.ID+": "+d.Reason)
		}
	}
	switch {
	case len(had) > 0:
		return apierror.Unreachable("", "no healthy node serves model %q; down: %s", apierror.Clip(model), strings.Join(had, "; "))
	case snap.Len() == 0:
		return apierror.Unreachable("", "no LLM nodes are known yet (healthmon has not reported any)")
	case !snap.AnyUp():
		var all []string
		for _, d := range downs {
			all = append(all, d.ID+": "+d.Reason)
		}
		return apierror.Unreachable("", "no healthy node for model %q; down: %s", apierror.Clip(model), strings.Join(all, "; "))
	}
	return apierror.ModelNotFound(model)
}

// exhausted is the error after every tried node failed. When all failed
// the same way it keeps that meaning (e.g. 429 from every node stays 429);
// otherwise the mesh is unavailable. Either way it names each node and why.
func exhausted(model string, failures []failure) error {
	parts := make([]string, len(failures))
	same := true
	for i, f := range failures {
		parts[i] = f.node + ": " + f.err.Message
		if f.err.Code != failures[0].err.Code {
			same = false
		}
	}
	tried := strings.Join(parts, "; ")
	last := failures[len(failures)-1].err
	if same && last.Code != codes.Unavailable {
		out := *last
		if len(failures) > 1 {
			out.Message = fmt.Sprintf("every node failed for model %q: %s", apierror.Clip(model), tried)
			out.Node = ""
			out.RetryAfter = soonest(failures)
		}
		return &out
	}
	return apierror.Unreachable("", "no reachable node for model %q; tried %s", apierror.Clip(model), tried).WithRetryAfter(soonest(failures))
}
