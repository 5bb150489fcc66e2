// Package ollamaedge is llmesh's Ollama-compatible REST API, served on the
// router's REST port beside the OpenAI one, so Ollama clients (the ollama
// CLI with OLLAMA_HOST, Open WebUI, the ollama npm and Python libraries)
// use the whole mesh as one big Ollama: GET / and /api/version, /api/tags
// (every model a healthy node serves), /api/ps (the models loaded on
// healthy nodes), and POST /api/chat, /api/generate, /api/embed,
// /api/embeddings and /api/show, answered by a node that serves the model.
//
// It is a plain net/http handler rather than grpc-gateway routes over more
// InferenceService RPCs: Ollama's API is not OpenAI's (NDJSON streams,
// "stream" defaulting to true, {"error": "..."} bodies), and passing the
// client's JSON on verbatim is what lets every Ollama option (keep_alive,
// options, format, think, images, tools) reach an Ollama node untouched.
// There is still one routing path: each request goes through
// routing.Router — the same candidate choice, in-flight caps, first-token
// bounds, passive health and failover before the first object as the
// OpenAI edge — and the adapter's Ollama RPC, which speaks Ollama's native
// API to Ollama nodes and translates for the other kinds.
package ollamaedge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	adapterv1 "github.com/llmesh/llmesh/gen/go/llmesh/adapter/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"github.com/llmesh/llmesh/services/router/internal/modelroutes"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/reqbody"
	"github.com/llmesh/llmesh/services/router/internal/routing"
	"google.golang.org/grpc/codes"
)

// Version is the Ollama API version the edge speaks, reported by
// /api/version (clients compare it with their own).
const Version = "0.17.4"

// DefaultMaxBodyBytes bounds a request body.
const DefaultMaxBodyBytes = 32 << 20

// Options configure the edge.
type Options struct {
	Routing *routing.Router
	Table   *nodetable.Table
	// Routes are the configured model aliases /api/tags lists (the same
	// table routing resolves them with); nil lists none.
	Routes *modelroutes.Table
	// Log gets the edge's own messages.
	Log          *slog.Logger
	MaxBodyBytes int64 // ≤ 0 means DefaultMaxBodyBytes
}

// Handler serves the Ollama API.
type Handler struct {
	opts Options
}

// New returns the handler.
func New(opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Handler{opts: opts}
}

// Serves reports whether path belongs to the Ollama API: "/" and /api/*.
func Serves(path string) bool { return path == "/" || strings.HasPrefix(path, "/api/") }

var inference = map[string]adapterv1.OllamaEndpoint{
	"/api/chat":       adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT,
	"/api/generate":   adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE,
	"/api/embed":      adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBED,
	"/api/embeddings": adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_EMBEDDINGS,
	"/api/show":       adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_SHOW,
}

// modelAdmin are Ollama endpoints that manage a node's model store, which
// the mesh does not do on its nodes' behalf.
var modelAdmin = map[string]bool{
	"/api/pull": true, "/api/push": true, "/api/create": true, "/api/copy": true, "/api/delete": true,
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case path == "/" && get:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Ollama is running")
	case path == "/api/version" && get:
		writeJSON(w, http.StatusOK, map[string]string{"version": Version})
	case path == "/api/tags" && get:
		writeJSON(w, http.StatusOK, h.tags())
	case path == "/api/ps" && get:
		writeJSON(w, http.StatusOK, h.ps())
	case inference[path] != adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_UNSPECIFIED && r.Method == http.MethodPost:
		h.serveInference(w, r, inference[path])
	case strings.HasPrefix(path, "/api/blobs/") || modelAdmin[path]:
		writeError(w, http.StatusNotImplemented, fmt.Sprintf("%s is not served by llmesh: the mesh does not manage models; run it on a node directly", apierror.Clip(path)))
	case path == "/" || inference[path] != adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_UNSPECIFIED ||
		path == "/api/version" || path == "/api/tags" || path == "/api/ps":
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", apierror.Clip(r.Method), apierror.Clip(path)))
	default:
		writeError(w, http.StatusNotFound, "404 page not found")
	}
}

// request is what the edge itself reads of an inference body; the rest
// travels on verbatim.
type request struct {
	Model  string `json:"model"`
	Name   string `json:"name"` // /api/show's older field
	Stream *bool  `json:"stream"`
}

func (h *Handler) serveInference(w http.ResponseWriter, r *http.Request, ep adapterv1.OllamaEndpoint) {
	body, err := reqbody.Read(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *reqbody.TooLargeError
		var timeout *reqbody.TimeoutError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		case errors.As(err, &timeout):
			writeError(w, http.StatusRequestTimeout, err.Error())
		default:
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	var req request
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(w, http.StatusBadRequest, "missing request body")
		return
	}
	// JSON text must be UTF-8. encoding/json would replace bad bytes, and
	// the body goes on to the node verbatim.
	if err := openaijson.CheckUTF8(body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+jsonProblem(err))
		return
	}
	model := req.Model
	if model == "" {
		model = req.Name
	}
	if model == "" {
		writeError(w, http.StatusBadRequest, "model is required")
		return
	}
	streamed := (ep == adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_CHAT || ep == adapterv1.OllamaEndpoint_OLLAMA_ENDPOINT_GENERATE) &&
		(req.Stream == nil || *req.Stream)
	ctx := r.Context()
	if v := r.Header.Get("X-Session-Id"); v != "" {
		ctx = routing.WithSessionKey(ctx, v)
	}
	if route := h.opts.Routing.Resolve(model); route.Model != model {
		if body, err = renameModel(body, route.Model); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	out := &responder{w: w, streamed: streamed}
	err = h.opts.Routing.Ollama(ctx, model, ep, streamed, body, out.send)
	if err == nil {
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	status, msg := h.describe(ctx, err, model)
	if out.started {
		// After the first object the status is sent: Ollama ends such a
		// stream with an error object.
		_ = out.line(mustJSON(map[string]string{"error": msg})) // the client may be gone: nothing more to tell
		return
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		e, _ := apierror.FromError(err)
		w.Header().Set("Retry-After", e.RetryAfterHeader())
	}
	writeError(w, status, msg)
}

// renameModel sets the model of an Ollama request body (and its older
// "name", for /api/show) to model: the body goes to the node verbatim, and
// the node knows the model an alias stands for, not the alias.
func renameModel(body []byte, model string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %w", err)
	}
	name, _ := json.Marshal(model)
	obj["model"] = name
	if _, ok := obj["name"]; ok {
		obj["name"] = name
	}
	return json.Marshal(obj)
}

// responder writes an answer: NDJSON, flushed per object, for a stream;
// one JSON body otherwise.
type responder struct {
	w        http.ResponseWriter
	streamed bool
	started  bool
}

func (o *responder) send(obj []byte) error {
	if !o.started {
		o.started = true
		if o.streamed {
			o.w.Header().Set("Content-Type", "application/x-ndjson")
		} else {
			o.w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		o.w.WriteHeader(http.StatusOK)
	}
	return o.line(obj)
}

func (o *responder) line(obj []byte) error {
	if _, err := o.w.Write(append(obj, '\n')); err != nil {
		return err
	}
	return http.NewResponseController(o.w).Flush()
}

// describe is the HTTP status and Ollama error message for err: an unknown
// model is Ollama's 404 "model 'x' not found"; a node's 4xx keeps its
// status; internal failures are masked and logged.
func (h *Handler) describe(ctx context.Context, err error, model string) (int, string) {
	e, _ := apierror.FromError(err)
	status := apierror.HTTPStatusForCode(e.Code)
	if e.HTTPStatus >= 400 && e.HTTPStatus < 500 {
		status = e.HTTPStatus
	}
	msg := e.Message
	switch {
	case e.Code == codes.NotFound && e.Node == "":
		msg = fmt.Sprintf("model '%s' not found", apierror.Clip(model))
	case e.Code == codes.Internal || e.Code == codes.Unknown || e.Code == codes.DataLoss:
		h.opts.Log.ErrorContext(ctx, "internal error", "err", err) // with the request's trace id
		if e.HTTPStatus == 0 {
			msg = "the server had an error while processing your request"
		}
	}
	if e.Node != "" && e.Code != codes.InvalidArgument && e.Code != codes.NotFound {
		msg = "node " + e.Node + ": " + msg
	}
	return status, msg
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s must be %s, not %s", apierror.Clip(te.Field), te.Type, apierror.Clip(te.Value))
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(v))
}

// writeError answers Ollama's {"error": "..."} with status, and
// Retry-After: 1 with a 429 or 503 that did not set its own.
func writeError(w http.ResponseWriter, status int, msg string) {
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers, slices and maps of them go in
	}
	return b
}

// zeroTime is written where Ollama has a time the mesh does not know.
var zeroTime = time.Time{}

// forever is the expiry of a model that stays loaded: far enough ahead
// that Ollama's clients show it as "Forever" rather than "Stopping...".
var forever = time.Date(2318, time.January, 1, 0, 0, 0, 0, time.UTC)
