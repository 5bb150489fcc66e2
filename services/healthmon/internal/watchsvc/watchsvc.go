// Package watchsvc serves llmesh.healthmon.v1.HealthmonService from a
// monitor.
package watchsvc

import (
	"context"

	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	"google.golang.org/grpc"
)

// Watcher is what the service needs of the monitor.
type Watcher interface {
	Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error
}

// Service is the HealthmonService server.
type Service struct {
	healthmonv1.UnimplementedHealthmonServiceServer
	watcher Watcher
}

// New returns the service.
func New(w Watcher) *Service { return &Service{watcher: w} }

// WatchNodes streams the node snapshot, then changes.
func (s *Service) WatchNodes(_ *healthmonv1.WatchNodesRequest, stream grpc.ServerStreamingServer[healthmonv1.WatchNodesResponse]) error {
	return s.watcher.Watch(stream.Context(), stream.Send)
}
