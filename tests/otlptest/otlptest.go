// Package otlptest is an OTLP/gRPC receiver for tests: it implements the
// collector's TraceService and MetricsService on 127.0.0.1 and keeps
// every span and metric it is sent.
package otlptest

import (
	"context"
	"net"
	"sync"
	"testing"

	collmetricv1 "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one received span with the service.name of its resource.
type Span struct {
	Service string
	*tracev1.Span
}

// Attr returns the span's attribute key ("" and false when absent).
func (s Span) Attr(key string) (*commonv1.AnyValue, bool) {
	return attr(s.GetAttributes(), key)
}

func attr(kvs []*commonv1.KeyValue, key string) (*commonv1.AnyValue, bool) {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue(), true
		}
	}
	return nil, false
}

// Receiver collects spans and metrics.
type Receiver struct {
	colltracev1.UnimplementedTraceServiceServer
	// Endpoint is http://127.0.0.1:port, for OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string

	mu      sync.Mutex
	spans   []Span
	metrics map[string][]string // metric name → services that sent it
}

// Start serves a receiver until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Endpoint: "http://" + lis.Addr().String(), metrics: map[string][]string{}}
	srv := grpc.NewServer()
	colltracev1.RegisterTraceServiceServer(srv, r)
	collmetricv1.RegisterMetricsServiceServer(srv, metricsExporter{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r
}

// Env is the environment that points a process's OTel SDK at r, traces
// and metrics, batching for at most 100 ms.
func (r *Receiver) Env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.Endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRICS_EXPORTER=otlp", "OTEL_METRIC_EXPORT_INTERVAL=200",
	}
}

func serviceName(res interface {
	GetAttributes() []*commonv1.KeyValue
}) string {
	v, _ := attr(res.GetAttributes(), "service.name")
	return v.GetStringValue()
}

// Export implements TraceService.
func (r *Receiver) Export(_ context.Context, req *colltracev1.ExportTraceServiceRequest) (*colltracev1.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := serviceName(rs.GetResource())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Service: svc, Span: s})
			}
		}
	}
	return &colltracev1.ExportTraceServiceResponse{}, nil
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// metricsExporter adapts Receiver to MetricsService, whose Export has
// another signature than TraceService's.
type metricsExporter struct {
	collmetricv1.UnimplementedMetricsServiceServer
	r *Receiver
}

func (m metricsExporter) Export(_ context.Context, req *collmetricv1.ExportMetricsServiceRequest) (*collmetricv1.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		svc := serviceName(rm.GetResource())
		for _, sm := range rm.GetScopeMetrics() {
			for _, mt := range sm.GetMetrics() {
				m.r.metrics[mt.GetName()] = append(m.r.metrics[mt.GetName()], svc)
			}
		}
	}
	return &collmetricv1.ExportMetricsServiceResponse{}, nil
}

// MetricServices returns the services that sent metric name over OTLP.
func (r *Receiver) MetricServices(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.metrics[name]...)
}
