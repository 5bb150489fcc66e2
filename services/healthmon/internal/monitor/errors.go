package monitor

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrTooSlow ends a watch whose reader fell WatcherBuffer changes behind.
var ErrTooSlow = status.Error(codes.ResourceExhausted, "watcher fell too far behind; reconnect for a fresh snapshot")
