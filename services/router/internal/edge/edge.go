// Package edge is llmesh's OpenAI-compatible REST API: grpc-gateway routes
// OpenAI's paths to the InferenceService, with OpenAI JSON, OpenAI error
// bodies and server-sent events for streamed chats and completions. POST
// /v1/chat/completions and /v1/completions serve both forms: a body with
// "stream": true is sent to the streaming RPC.
package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	routerv1 "github.com/llmesh/llmesh/gen/go/llmesh/router/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"github.com/llmesh/llmesh/services/router/internal/reqbody"
	"github.com/llmesh/llmesh/services/router/internal/routing"
)

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = 32 << 20

// streamRoutes maps each public path that serves both forms to its
// streaming RPC's route (inference_http.yaml).
var streamRoutes = map[string]string{
	"/v1/chat/completions": "/v1/chat/completions:stream",
	"/v1/completions":      "/v1/completions:stream",
}

// Options configure the edge.
type Options struct {
	Log          *slog.Logger
	MaxBodyBytes int64 // ≤ 0 means DefaultMaxBodyBytes
}

// New returns the REST handler serving srv in-process: the gateway calls
// the service directly, with no loopback gRPC hop.
func New(ctx context.Context, srv routerv1.InferenceServiceServer, opts Options) (http.Handler, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	ew := &errorWriter{log: opts.Log}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler{errors: ew}),
		runtime.WithErrorHandler(ew.handle),
		runtime.WithRoutingErrorHandler(ew.routing),
		runtime.WithStreamErrorHandler(ew.streamError),
		runtime.WithDisablePathLengthFallback(),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
	)
	if err := routerv1.RegisterInferenceServiceHandlerClient(ctx, mux, localClient{srv: srv}); err != nil {
		return nil, fmt.Errorf("register gateway: %w", err)
	}
	return &handler{mux: mux, srv: srv, errors: ew, maxBody: opts.MaxBodyBytes}, nil
}

// headerMatcher passes X-Session-ID on to the service as metadata, and
// the headers grpc-gateway passes by default.
func headerMatcher(key string) (string, bool) {
	if strings.EqualFold(key, "X-Session-Id") {
		return "x-session-id", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

type handler struct {
	mux     *runtime.ServeMux
	srv     routerv1.InferenceServiceServer
	errors  *errorWriter
	maxBody int64
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d, ok := ClientTimeout(r.Header); ok {
		r = r.WithContext(routing.WithClientTimeout(r.Context(), d))
	}
	if strings.HasSuffix(r.URL.Path, ":stream") {
		// Internal route: the public URL is the path without it, with
		// "stream": true.
		h.errors.routing(r.Context(), h.mux, nil, w, r, http.StatusNotFound)
		return
	}
	if model, ok := strings.CutPrefix(r.URL.Path, modelPrefix); ok && model != "" {
		h.serveModel(w, r, model)
		return
	}
	if r.Method != http.MethodPost {
		h.mux.ServeHTTP(w, r)
		return
	}
	body, err := reqbody.Read(w, r, h.maxBody)
	if err != nil {
		h.errors.write(r.Context(), w, bodyError(err))
		return
	}
	r.Body = &requestBody{Reader: bytes.NewReader(body)}
	streamPath, ok := streamRoutes[r.URL.Path]
	if !ok || !wantsStream(body) {
		h.mux.ServeHTTP(w, r)
		return
	}
	h.serveStream(w, r, streamPath)
}

// bodyError is the answer to a body that could not be read: 413 over the
// size limit, 408 when it did not arrive in time (the connection is then
// closed), 400 otherwise.
func bodyError(err error) error {
	var tooBig *reqbody.TooLargeError
	var timeout *reqbody.TimeoutError
	switch {
	case errors.As(err, &tooBig):
		return apierror.Invalid("", "%w", tooBig).WithHTTPStatus(http.StatusRequestEntityTooLarge)
	case errors.As(err, &timeout):
		// The client's fault: the 408 makes the type
		// invalid_request_error.
		return apierror.DeadlineExceeded("", "%w", timeout).WithHTTPStatus(http.StatusRequestTimeout)
	}
	return apierror.Invalid("", "%w", err)
}

// TimeoutHeader is the client's timeout in seconds, sent by the official
// OpenAI SDKs (Python, Node, …) with every request.
const TimeoutHeader = "X-Stainless-Timeout"

// maxClientTimeout bounds what a TimeoutHeader may say (a day), so an
// absurd value cannot overflow a deadline.
const maxClientTimeout = 24 * time.Hour

// ClientTimeout is the client's timeout from h's TimeoutHeader: how long
// it waits for the answer to start (for a non-streamed answer, the whole
// answer). ok is false when the header is missing, not a positive number
// of seconds, or 0 (an SDK rounds a sub-second timeout down to 0).
func ClientTimeout(h http.Header) (time.Duration, bool) {
	v := h.Get(TimeoutHeader)
	if v == "" {
		return 0, false
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(secs) || secs <= 0 {
		return 0, false
	}
	if secs >= maxClientTimeout.Seconds() {
		return maxClientTimeout, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

// modelPrefix starts GET /v1/models/{model}. Model names hold "/" and ":"
// ("library/llama3.2:3b"), which grpc-gateway path templates cannot
// match, so the edge routes it itself.
const modelPrefix = "/v1/models/"

func (h *handler) serveModel(w http.ResponseWriter, r *http.Request, model string) {
	if r.Method != http.MethodGet {
		h.errors.routing(r.Context(), h.mux, nil, w, r, http.StatusMethodNotAllowed)
		return
	}
	if !utf8.ValidString(model) {
		h.errors.write(r.Context(), w, apierror.Invalid("model", "model: the model name in the path is not valid UTF-8"))
		return
	}
	out, err := h.srv.GetModel(r.Context(), &routerv1.GetModelRequest{Model: model})
	if err != nil {
		h.errors.write(r.Context(), w, err)
		return
	}
	body, err := openaijson.Marshal(out.GetModel())
	if err != nil {
		h.errors.write(r.Context(), w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// wantsStream peeks at "stream". A body that does not parse is left to the
// gateway's decoder, which reports the error.
func wantsStream(body []byte) bool {
	var peek struct {
		Stream bool `json:"stream"`
	}
	return json.Unmarshal(body, &peek) == nil && peek.Stream
}

// serveStream runs the streaming route and ends a successful stream with
// "data: [DONE]", which grpc-gateway does not write itself.
func (h *handler) serveStream(w http.ResponseWriter, r *http.Request, streamPath string) {
	failed := &streamFailed{}
	r = r.WithContext(context.WithValue(r.Context(), streamFailedKey{}, failed))
	r.URL.Path = streamPath
	r.URL.RawPath = ""
	rec := &statusRecorder{ResponseWriter: w}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // keep proxies from buffering events
	h.mux.ServeHTTP(rec, r)
	if failed.get() || r.Context().Err() != nil {
		return
	}
	switch rec.status {
	case 0: // an answer with no chunks at all
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Del("Transfer-Encoding")
	case http.StatusOK:
	default:
		return // an error answered before the stream started
	}
	_, _ = io.WriteString(rec, "data: [DONE]\n\n")
	_ = http.NewResponseController(rec).Flush()
}

type streamFailedKey struct{}

// streamFailed is set by the stream error handler of one request.
type streamFailed struct{ v atomic.Bool }

func (f *streamFailed) set()      { f.v.Store(true) }
func (f *streamFailed) get() bool { return f.v.Load() }

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
