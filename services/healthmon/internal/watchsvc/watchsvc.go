// Package watchsvc serves llmesh.healthmon.v1.HealthmonService from a
// monitor.
package watchsvc

import (
	"context"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watcher is what the service needs of the monitor.
type Watcher interface {
	Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error
	// Nudge asks for a node to be probed now; false if it is unknown.
	Nudge(nodeID string) bool
}

// Service is the HealthmonService server.
type Service struct {
	healthmonv1.UnimplementedHealthmonServiceServer
	watcher Watcher
	serving context.Context
}

// New returns the service. Watch streams end when serving is done: they
// never end by themselves, so a graceful stop would otherwise wait its
// whole grace period for them.
func New(serving context.Context, w Watcher) *Service { return &Service{watcher: w, serving: serving} }

// WatchNodes streams the node snapshot, then changes, until the client
// goes away or healthmon shuts down (UNAVAILABLE: routers then watch
// another replica, or this one again once it is back).
func (s *Service) WatchNodes(_ *healthmonv1.WatchNodesRequest, stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.serving, cancel)
	defer stop()
	err := s.watcher.Watch(ctx, stream.Send)
	if s.serving.Err() != nil && stream.Context().Err() == nil {
		return status.Error(codes.Unavailable, "healthmon is shutting down")
	}
	return err
}

// ReportOutcome takes a router's observation of a node: a failure gets the
// node probed at once, so every router learns the verdict within a probe
// rather than an interval.
func (s *Service) ReportOutcome(_ context.Context, req *healthmonv1.ReportOutcomeRequest) (*healthmonv1.ReportOutcomeResponse, error) {
	if req.GetNodeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "node_id is required")
	}
	if req.GetFailed() && !s.watcher.Nudge(req.GetNodeId()) {
		return nil, status.Errorf(codes.NotFound, "node %q is not monitored here", req.GetNodeId())
	}
	return &healthmonv1.ReportOutcomeResponse{}, nil
}
