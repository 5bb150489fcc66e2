// Package failreport sends the router's passive health observations — a
// node that refused, dropped or hung a request — to healthmon, which then
// probes that node at once. Best effort: reports wait in a small buffer
// and are dropped when it is full; a request never waits for one.
package failreport

import (
	"context"
	"time"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
)

// Reporter queues reports for Run to send.
type Reporter struct {
	ch chan *healthmonv1.ReportOutcomeRequest
}

// New returns a Reporter holding at most buffer unsent reports.
func New(buffer int) *Reporter {
	return &Reporter{ch: make(chan *healthmonv1.ReportOutcomeRequest, buffer)}
}

// Failed reports that node failed a request, without blocking.
func (r *Reporter) Failed(nodeID, reason string) {
	select {
	case r.ch <- &healthmonv1.ReportOutcomeRequest{NodeId: nodeID, Failed: true, Reason: reason}:
	default: // healthmon is slow or away; the probes will tell it anyway
	}
}

// Run sends reports to healthmon until ctx is done.
func (r *Reporter) Run(ctx context.Context, client healthmonv1.HealthmonServiceClient) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-r.ch:
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, _ = client.ReportOutcome(sctx, req) // best effort
			cancel()
		}
	}
}
