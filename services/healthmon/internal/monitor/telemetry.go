package monitor

import (
	"context"
	"strings"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of healthmon's spans and metrics,
// which go to the process's providers (meshkit/telemetry.Setup).
const scope = "github.com/llmesh/llmesh/services/healthmon"

var (
	tracer   = otel.Tracer(scope)
	meter    = otel.Meter(scope)
	attrNode = attribute.Key("llmesh.node.id")
	// Instrument errors are only invalid names or units, fixed here.
	probeDuration, _ = meter.Float64Histogram("llmesh.healthmon.probe.duration", metric.WithUnit("s"),
		metric.WithDescription("Time one probe of a node took, through the adapter."))
	probeFailures, _ = meter.Int64Counter("llmesh.healthmon.probe.failures", metric.WithUnit("{probe}"),
		metric.WithDescription("Probes that found a node not up (reason: status), or could not be run (reason: adapter)."))
	watchers, _ = meter.Int64ObservableGauge("llmesh.healthmon.watch.subscribers", metric.WithUnit("{stream}"),
		metric.WithDescription("Routers (and other watchers) following the node-state stream."))
)

// probed records one probe's span attributes, duration and failure.
func probed(ctx context.Context, span trace.Span, node string, took time.Duration, res *nodev1.ProbeResult, err error) {
	defer span.End()
	attrs := metric.WithAttributes(attrNode.String(node))
	probeDuration.Record(ctx, took.Seconds(), attrs)
	switch {
	case err != nil:
		probeFailures.Add(ctx, 1, metric.WithAttributes(attrNode.String(node), attribute.String("reason", "adapter")))
		span.SetStatus(codes.Error, "adapter")
	case !res.GetUp():
		status := statusName(res)
		probeFailures.Add(ctx, 1, metric.WithAttributes(attrNode.String(node), attribute.String("reason", status)))
		span.SetAttributes(attribute.Bool("llmesh.probe.up", false), attribute.String("llmesh.probe.status", status))
		span.SetStatus(codes.Error, status)
	default:
		span.SetAttributes(attribute.Bool("llmesh.probe.up", true))
	}
}

// statusName is the bounded status a failed probe found: down,
// misconfigured, loading.
func statusName(res *nodev1.ProbeResult) string {
	if s := res.GetStatus(); s != nodev1.Status_STATUS_UNSPECIFIED && s != nodev1.Status_STATUS_UP {
		return strings.ToLower(strings.TrimPrefix(s.String(), "STATUS_"))
	}
	return "down"
}

// observeWatchers reports m's watcher count when metrics are collected,
// until m stops.
func observeWatchers(m *Monitor) {
	m.gauge, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		n := len(m.watchers)
		m.mu.Unlock()
		o.ObserveInt64(watchers, int64(n))
		return nil
	}, watchers)
}
