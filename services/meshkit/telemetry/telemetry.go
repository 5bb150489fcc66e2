// Package telemetry sets up OpenTelemetry for an llmesh process: a tracer
// provider and a meter provider configured the standard way by the
// OTEL_* variables (through autoexport), the W3C trace-context
// propagator, and the Prometheus text exposition served at /metrics on
// the admin address.
//
// With no OTEL_* variable set, tracing is off: the global tracer provider
// stays OpenTelemetry's no-op one and spans cost nothing. Metrics are
// always collected for /metrics; they go out over OTLP only when
// OTEL_METRICS_EXPORTER names an exporter.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/llmesh/llmesh/services/meshkit/admin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// MetricsPath is where the Prometheus text is served on the admin address.
const MetricsPath = "/metrics"

// Telemetry is what Setup made: the Prometheus handler for the admin
// address and the providers to flush on shutdown.
type Telemetry struct {
	// Tracing says whether spans are exported (some OTEL_* variable
	// asked for it).
	Tracing  bool
	metrics  http.Handler
	tracer   *sdktrace.TracerProvider
	meter    *sdkmetric.MeterProvider
	shutdown bool
}

// Setup configures the process's global tracer provider, meter provider
// and propagator for service (e.g. "llmesh-router") at version (""
// means the module version from the build info). lookupEnv reads the
// OTEL_* variables (os.LookupEnv in a process); the exporters read the
// rest of theirs themselves. Call Shutdown before the process exits: it
// flushes what is buffered.
func Setup(ctx context.Context, service, version string, lookupEnv func(string) (string, bool)) (*Telemetry, error) {
	if version == "" {
		version = Version()
	}
	// Later sources win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override llmesh's own names.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version),
			semconv.ServiceInstanceID(uuid.NewString())),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{}
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if exporters(lookupEnv, "OTEL_METRICS_EXPORTER") {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("metrics exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	t.meter = sdkmetric.NewMeterProvider(mopts...)
	otel.SetMeterProvider(t.meter)

	if tracingWanted(lookupEnv) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			_ = t.meter.Shutdown(ctx)
			return nil, fmt.Errorf("traces exporter: %w", err)
		}
		t.tracer = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		otel.SetTracerProvider(t.tracer)
		t.Tracing = true
	}
	return t, nil
}

// tracingWanted says whether the OTEL_* variables ask for spans:
// OTEL_TRACES_EXPORTER names an exporter other than "none", or an OTLP
// endpoint is set (autoexport's default exporter is OTLP).
func tracingWanted(lookupEnv func(string) (string, bool)) bool {
	if v, ok := lookupEnv("OTEL_TRACES_EXPORTER"); ok && strings.TrimSpace(v) != "" {
		return exporters(lookupEnv, "OTEL_TRACES_EXPORTER")
	}
	if v, _ := lookupEnv("OTEL_SDK_DISABLED"); strings.EqualFold(v, "true") {
		return false
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if v, _ := lookupEnv(k); v != "" {
			return true
		}
	}
	return false
}

// exporters says whether the list in variable key names an exporter
// other than "none" and "prometheus" (Prometheus text is always served
// at /metrics on the admin address, not on an exporter's own port).
func exporters(lookupEnv func(string) (string, bool), key string) bool {
	v, _ := lookupEnv(key)
	for e := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(e) {
		case "", "none", "prometheus":
		default:
			return true
		}
	}
	return false
}

// Route is /metrics for the admin address.
func (t *Telemetry) Route() admin.Route {
	return admin.Route{Pattern: MetricsPath, Handler: t.metrics}
}

// Shutdown flushes and stops the providers; it is safe to call twice.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown {
		return nil
	}
	t.shutdown = true
	var errs []error
	if t.tracer != nil {
		errs = append(errs, t.tracer.Shutdown(ctx))
	}
	errs = append(errs, t.meter.Shutdown(ctx))
	return errors.Join(errs...)
}

// Version is the main module's version from the build info, "devel"
// when it has none.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Flush shuts t down within a few seconds of ctx ending (a process
// stopping), logging what failed; for a deferred call in a service's run.
func Flush(ctx context.Context, t *Telemetry, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(sctx); err != nil {
		log.Warn("telemetry flush", "err", err)
	}
}
