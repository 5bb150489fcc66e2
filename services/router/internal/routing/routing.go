// Package routing picks the LLM node for a request and calls it through an
// adapter, moving on to the next candidate when a node fails before it has
// produced anything. Once a streamed answer has started it never retries:
// the client would see duplicated output.
package routing

import (
	"sync/atomic"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	"github.com/llmesh/llmesh/services/router/internal/affinity"
	"github.com/llmesh/llmesh/services/router/internal/limits"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"github.com/llmesh/llmesh/services/router/internal/policy"
)

// DefaultMaxAttempts is how many nodes one request may try.
const DefaultMaxAttempts = 3

// Router sends requests to nodes from a table through an adapter.
type Router struct {
	table       *nodetable.Table
	adapter     adapterv1.AdapterServiceClient
	maxAttempts int
	policy      policy.Policy
	stats       *nodestats.Stats
	limits      limits.Set
	routes      *modelroutes.Table
	queue       Queue
	failed      func(nodeID, reason string)
	sessions    *affinity.Table
	obs         *observe.Recorder
	waiting     atomic.Int64  // requests waiting for a free node
	turn        atomic.Uint64 // advances per request, for round robin
}

// Options tune a Router; the zero value is the default.
type Options struct {
	MaxAttempts int              // nodes one request may try; ≤ 0 means DefaultMaxAttempts
	Policy      policy.Policy    // nil means policy.PowerOfTwo
	Stats       *nodestats.Stats // nil means fresh stats with the default breaker cool-down
	// Limits are the timeouts and in-flight caps per node; nil means
	// limits.Defaults(). When every candidate is at its cap the request
	// waits in Queue (see there), and is refused with RESOURCE_EXHAUSTED
	// (429 with Retry-After) when the queue is full — never queued
	// without bound.
	Limits *limits.Set
	// Routes resolve requested model names (aliases, node groups, tier
	// modes); nil resolves every name to itself.
	Routes *modelroutes.Table
	Queue  Queue
	// OnNodeFailed, when set, hears of every node that refused, dropped or
	// hung a request, or broke off its answer (e.g. to tell healthmon). It
	// must not block.
	OnNodeFailed func(nodeID, reason string)
	// Sessions remembers each session's node; nil means a table with the
	// affinity defaults.
	Sessions *affinity.Table
	// Observe records spans and metrics of requests and attempts; nil
	// records nothing.
	Observe *observe.Recorder
}

// New returns a Router.
func New(table *nodetable.Table, adapter adapterv1.AdapterServiceClient, opts Options) *Router {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Policy == nil {
		opts.Policy = policy.PowerOfTwo
	}
	if opts.Stats == nil {
		opts.Stats = nodestats.New(0, nil)
	}
	if opts.Limits == nil {
		l := limits.Defaults()
		opts.Limits = &l
	}
	if opts.Routes == nil {
		opts.Routes = &modelroutes.Table{}
	}
	if opts.Sessions == nil {
		opts.Sessions = affinity.New(0, 0, nil)
	}
	if opts.Observe == nil {
		opts.Observe = observe.New(nil, nil, nil)
	}
	return &Router{obs: opts.Observe, table: table, adapter: adapter, maxAttempts: opts.MaxAttempts, policy: opts.Policy, stats: opts.Stats,
		limits: *opts.Limits, routes: opts.Routes, queue: opts.Queue, failed: opts.OnNodeFailed, sessions: opts.Sessions}
}

// Waiting is how many requests wait in the queue now.
func (r *Router) Waiting() int64 { return r.waiting.Load() }
