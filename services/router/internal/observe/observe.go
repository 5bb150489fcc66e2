// Package observe records what the router does with each request as
// OpenTelemetry spans and metrics: one span per request and one per
// routing attempt, named and attributed after the GenAI semantic
// conventions, and the GenAI and mesh metrics served at /metrics.
//
// Message content is never recorded. Metric labels are bounded: a model
// label is a model some node reports ("other" for any other name a
// client sends), a node label a node of the table, a reason one of a
// fixed vocabulary.
package observe

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of the router's own spans and
// metrics.
const Scope = "github.com/llmesh/llmesh/services/router"

// Attributes llmesh adds to the GenAI ones.
const (
	AttrEdge          = attribute.Key("llmesh.edge")
	AttrRoute         = attribute.Key("llmesh.route")
	AttrNodeID        = attribute.Key("llmesh.node.id")
	AttrAttempt       = attribute.Key("llmesh.attempt")
	AttrOutcome       = attribute.Key("llmesh.attempt.outcome")
	AttrFailover      = attribute.Key("llmesh.failover.reason")
	AttrQueueWait     = attribute.Key("llmesh.queue.wait_ms")
	AttrAttempts      = attribute.Key("llmesh.attempts")
	AttrStatus        = attribute.Key("llmesh.status")
	AttrReason        = attribute.Key("llmesh.reason")
	OutcomeOK         = "ok"
	OtherModel        = "other"
	EdgeGRPC          = "grpc"
	EdgeOpenAI        = "openai"
	EdgeOllama        = "ollama"
	maxSpanModelBytes = 128
)

// Known says whether model is one some node reports, so it may be a
// metric label.
type Known func(model string) bool

// Recorder makes the spans and records the metrics of requests.
type Recorder struct {
	tracer trace.Tracer
	known  Known

	duration, ttft, tpot, tokens, queueWait metric.Float64Histogram
	requests, attempts, failovers           metric.Int64Counter
}

// New returns a Recorder on tp and mp (nil: no-op ones); known bounds
// the model labels (nil: every model is "other").
func New(tp trace.TracerProvider, mp metric.MeterProvider, known Known) *Recorder {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	if known == nil {
		known = func(string) bool { return false }
	}
	m := mp.Meter(Scope)
	r := &Recorder{tracer: tp.Tracer(Scope), known: known}
	// Instrument errors are only invalid names or units, fixed here.
	r.duration, _ = m.Float64Histogram("gen_ai.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a request's arrival to its last byte, retries and queueing included."),
		metric.WithExplicitBucketBoundaries(telemetry.DurationBuckets...))
	r.ttft, _ = m.Float64Histogram("gen_ai.server.time_to_first_token", metric.WithUnit("s"),
		metric.WithDescription("Time from a request's arrival to the first token of its answer."),
		metric.WithExplicitBucketBoundaries(telemetry.TTFTBuckets...))
	r.tpot, _ = m.Float64Histogram("gen_ai.server.time_per_output_token", metric.WithUnit("s"),
		metric.WithDescription("Time per output token after the first, for answers that reported their usage."),
		metric.WithExplicitBucketBoundaries(telemetry.TPOTBuckets...))
	r.tokens, _ = m.Float64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Input and output tokens per request, as the node reported them."),
		metric.WithExplicitBucketBoundaries(telemetry.TokenBuckets...))
	r.queueWait, _ = m.Float64Histogram("llmesh.router.queue.wait", metric.WithUnit("s"),
		metric.WithDescription("Time a request waited in the queue for a node below its in-flight cap."),
		metric.WithExplicitBucketBoundaries(telemetry.TTFTBuckets...))
	r.requests, _ = m.Int64Counter("llmesh.router.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered, by edge, route, model and status (a gRPC code name)."))
	r.attempts, _ = m.Int64Counter("llmesh.router.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Routing attempts on a node, by node and outcome."))
	r.failovers, _ = m.Int64Counter("llmesh.router.failovers", metric.WithUnit("{failover}"),
		metric.WithDescription("Requests moved to another node, by the reason the previous node failed."))
	return r
}

// Model is model as a metric label: itself when a node reports it,
// "other" otherwise.
func (r *Recorder) Model(model string) string {
	if model != "" && r.known(model) {
		return model
	}
	return OtherModel
}

type edgeKey struct{}

// WithEdge says which edge ctx's request came in by (EdgeOpenAI,
// EdgeOllama); a request with none came by native gRPC.
func WithEdge(ctx context.Context, edge string) context.Context {
	return context.WithValue(ctx, edgeKey{}, edge)
}

func edgeOf(ctx context.Context) string {
	if e, ok := ctx.Value(edgeKey{}).(string); ok {
		return e
	}
	return EdgeGRPC
}

// Request describes a request as it starts.
type Request struct {
	Operation string // a GenAI operation name: chat, text_completion, embeddings
	Route     string // the route label, e.g. "chat_stream", "ollama_generate"
	Model     string // the model the client asked for
	Stream    bool
}

// Op is one request in flight.
type Op struct {
	r     *Recorder
	span  trace.Span
	req   Request
	label string // the model label
	edge  string
	ctx   context.Context // the request span's: metrics get its exemplars
	start time.Time

	mu          sync.Mutex
	attempt     int
	lastNode    string
	lastFailure string
	provider    string
	queued      time.Duration
	firstToken  time.Duration // 0: none yet
	usageSet    bool
	in, out     int64
	respID      string
	respModel   string
	finish      []string
}

type opKey struct{}

// Start begins the span and timing of a request; End must follow.
func (r *Recorder) Start(ctx context.Context, req Request) (context.Context, *Op) {
	o := &Op{r: r, req: req, label: r.Model(req.Model), edge: edgeOf(ctx), start: time.Now()}
	ctx, o.span = r.tracer.Start(ctx, spanName(req.Operation, req.Model), trace.WithSpanKind(trace.SpanKindInternal))
	if o.span.IsRecording() {
		o.span.SetAttributes(telemetry.GenAIOperationName.String(req.Operation), telemetry.GenAIRequestModel.String(clip(req.Model)),
			telemetry.GenAIRequestStream.Bool(req.Stream), AttrEdge.String(o.edge), AttrRoute.String(req.Route))
	}
	o.ctx = ctx
	return context.WithValue(ctx, opKey{}, o), o
}

// From returns ctx's request, nil when there is none.
func From(ctx context.Context) *Op {
	o, _ := ctx.Value(opKey{}).(*Op)
	return o
}

func spanName(op, model string) string {
	if model == "" {
		return op
	}
	return op + " " + clip(model)
}

func clip(s string) string {
	if len(s) > maxSpanModelBytes {
		return s[:maxSpanModelBytes]
	}
	return s
}

// Queued records time the request waited for a free node.
func (o *Op) Queued(d time.Duration) {
	if o == nil {
		return
	}
	o.r.queueWait.Record(o.ctx, d.Seconds(), metric.WithAttributes(telemetry.GenAIRequestModel.String(o.label)))
	o.mu.Lock()
	o.queued += d
	o.mu.Unlock()
}

// FirstToken records that the first token of the answer reached the
// client now (for answers delivered in one piece, see Served).
func (o *Op) FirstToken() {
	if o == nil {
		return
	}
	o.mu.Lock()
	if o.firstToken == 0 {
		o.firstToken = max(time.Since(o.start), time.Nanosecond)
	}
	o.mu.Unlock()
}

// Usage records the token usage the node reported.
func (o *Op) Usage(in, out int64) {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.usageSet, o.in, o.out = true, in, out
	o.mu.Unlock()
}

// Response records the answer's id, model and finish reasons (those not
// empty are appended).
func (o *Op) Response(id, model string, finish ...string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if id != "" {
		o.respID = id
	}
	if model != "" {
		o.respModel = model
	}
	for _, f := range finish {
		if f != "" {
			o.finish = append(o.finish, f)
		}
	}
}

// End ends the request with err (nil: answered), status being err's
// gRPC code name ("OK" when nil) and reason its failure reason.
func (o *Op) End(status, reason string) {
	if o == nil {
		return
	}
	total := time.Since(o.start)
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx := o.ctx
	base := []attribute.KeyValue{telemetry.GenAIOperationName.String(o.req.Operation), telemetry.GenAIRequestModel.String(o.label)}
	if o.provider != "" {
		base = append(base, telemetry.GenAIProviderName.String(o.provider))
	}
	durAttrs := base
	if status != "OK" {
		durAttrs = append(durAttrs[:len(durAttrs):len(durAttrs)], telemetry.ErrorType.String(status))
	}
	o.r.duration.Record(ctx, total.Seconds(), metric.WithAttributes(durAttrs...))
	o.r.requests.Add(ctx, 1, metric.WithAttributes(AttrEdge.String(o.edge), AttrRoute.String(o.req.Route),
		telemetry.GenAIRequestModel.String(o.label), AttrStatus.String(status)))
	if status == "OK" && o.firstToken > 0 {
		o.r.ttft.Record(ctx, o.firstToken.Seconds(), metric.WithAttributes(base...))
		if o.usageSet && o.out > 1 {
			o.r.tpot.Record(ctx, (total-o.firstToken).Seconds()/float64(o.out-1), metric.WithAttributes(base...))
		}
	}
	if o.usageSet {
		in := append(base[:len(base):len(base)], telemetry.GenAITokenType.String(telemetry.GenAITokenTypeInput))
		o.r.tokens.Record(ctx, float64(o.in), metric.WithAttributes(in...))
		if o.req.Operation != telemetry.GenAIOperationEmbeddings {
			out := append(base[:len(base):len(base)], telemetry.GenAITokenType.String(telemetry.GenAITokenTypeOutput))
			o.r.tokens.Record(ctx, float64(o.out), metric.WithAttributes(out...))
		}
	}
	if !o.span.IsRecording() {
		o.span.End()
		return
	}
	attrs := []attribute.KeyValue{AttrAttempts.Int(o.attempt), AttrQueueWait.Float64(ms(o.queued)), AttrStatus.String(status)}
	if o.provider != "" {
		attrs = append(attrs, telemetry.GenAIProviderName.String(o.provider))
	}
	attrs = append(attrs, o.responseAttrs()...)
	o.span.SetAttributes(attrs...)
	if status != "OK" {
		o.span.SetAttributes(telemetry.ErrorType.String(status))
		if reason != "" {
			o.span.SetAttributes(AttrReason.String(reason))
		}
		o.span.SetStatus(codes.Error, status)
	}
	o.span.End()
}

func (o *Op) responseAttrs() []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if o.respID != "" {
		attrs = append(attrs, telemetry.GenAIResponseID.String(o.respID))
	}
	if o.respModel != "" {
		attrs = append(attrs, telemetry.GenAIResponseModel.String(o.respModel))
	}
	if len(o.finish) > 0 {
		attrs = append(attrs, telemetry.GenAIResponseFinishReasons.StringSlice(o.finish))
	}
	if o.usageSet {
		attrs = append(attrs, telemetry.GenAIUsageInputTokens.Int64(o.in))
		if o.req.Operation != telemetry.GenAIOperationEmbeddings {
			attrs = append(attrs, telemetry.GenAIUsageOutputTokens.Int64(o.out))
		}
	}
	return attrs
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Node is what an attempt needs to know of its node.
type Node struct {
	ID, Kind, BaseURL string
}

// Attempt is one routing attempt on a node.
type Attempt struct {
	o     *Op
	span  trace.Span
	ctx   context.Context
	node  string
	start time.Time
}

// Attempt begins an attempt of o on node n (a span that is a child of
// ctx's); it counts a failover when the previous attempt failed on
// another node. Attempt.End must follow.
func (o *Op) Attempt(ctx context.Context, n Node) (context.Context, *Attempt) {
	if o == nil {
		return ctx, nil
	}
	o.mu.Lock()
	o.attempt++
	num, failedOn, failure, queued := o.attempt, o.lastNode, o.lastFailure, o.queued
	o.mu.Unlock()
	if failure != "" && failedOn != n.ID {
		o.r.failovers.Add(ctx, 1, metric.WithAttributes(AttrReason.String(failure)))
	}
	ctx, span := o.r.tracer.Start(ctx, spanName(o.req.Operation, o.req.Model), trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			telemetry.GenAIOperationName.String(o.req.Operation), telemetry.GenAIRequestModel.String(clip(o.req.Model)),
			telemetry.GenAIProviderName.String(n.Kind), telemetry.GenAIRequestStream.Bool(o.req.Stream),
			AttrNodeID.String(n.ID), AttrAttempt.Int(num), AttrQueueWait.Float64(ms(queued)),
		}
		if failure != "" {
			attrs = append(attrs, AttrFailover.String(failure))
		}
		span.SetAttributes(append(attrs, serverAttrs(n.BaseURL)...)...)
	}
	return ctx, &Attempt{o: o, span: span, ctx: ctx, node: n.ID, start: time.Now()}
}

// serverAttrs are server.address and server.port of a node's base URL
// (nothing else of it: it may carry credentials).
func serverAttrs(base string) []attribute.KeyValue {
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	attrs := []attribute.KeyValue{telemetry.ServerAddress.String(u.Hostname())}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, telemetry.ServerPort.Int(p))
	}
	return attrs
}

// Served records that the attempt's node answered with its first token
// ttft after the attempt began (for answers delivered in one piece).
func (a *Attempt) Served(ttft time.Duration) {
	if a == nil {
		return
	}
	o := a.o
	o.mu.Lock()
	if o.firstToken == 0 {
		o.firstToken = max(a.start.Sub(o.start)+ttft, time.Nanosecond)
	}
	o.mu.Unlock()
}

// End ends the attempt with outcome (OutcomeOK, or the failure reason:
// NODE_UNREACHABLE, NODE_ANSWER_FAILED, NODE_BUSY, …) of a node of kind
// provider.
func (a *Attempt) End(outcome, provider string) {
	if a == nil {
		return
	}
	o := a.o
	o.r.attempts.Add(a.ctx, 1, metric.WithAttributes(AttrNodeID.String(a.node), AttrOutcome.String(outcome)))
	o.mu.Lock()
	o.lastNode = a.node
	if outcome == OutcomeOK {
		o.lastFailure, o.provider = "", provider
	} else {
		o.lastFailure = outcome
	}
	o.mu.Unlock()
	if a.span.IsRecording() {
		a.span.SetAttributes(AttrOutcome.String(outcome))
		if outcome != OutcomeOK {
			a.span.SetAttributes(telemetry.ErrorType.String(outcome))
			// Not the error's message: a node's may quote the request.
			a.span.SetStatus(codes.Error, outcome)
		}
	}
	a.span.End()
}
