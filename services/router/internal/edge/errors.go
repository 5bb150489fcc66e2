package edge

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorWriter turns any error into OpenAI's error body and HTTP status.
type errorWriter struct {
	log *slog.Logger
}

// body returns the HTTP status and OpenAI error JSON for err. An upstream
// 4xx keeps its status and meaning; internal failures are masked and logged.
func (ew *errorWriter) body(ctx context.Context, err error) (int, []byte) {
	e, _ := apierror.FromError(err)
	httpStatus := apierror.HTTPStatusForCode(e.Code)
	if e.HTTPStatus >= 400 && e.HTTPStatus < 500 {
		// A node's 4xx keeps its own status (e.g. 422), not just its code.
		httpStatus = e.HTTPStatus
	}
	msg := e.Message
	if e.Node != "" && e.Code != codes.InvalidArgument {
		msg = "node " + e.Node + ": " + msg
	}
	if e.Code == codes.Internal || e.Code == codes.Unknown || e.Code == codes.DataLoss {
		ew.log.ErrorContext(ctx, "internal error", "err", err) // with the request's trace id
		if e.HTTPStatus == 0 {
			msg = "The server had an error while processing your request."
		}
	}
	typ := e.Type
	if typ == "" || httpStatus >= 500 {
		typ = apierror.OpenAIType(httpStatus)
	}
	return httpStatus, openaijson.MarshalError(openaijson.ErrorObject{Message: msg, Type: typ, Param: e.Param, Code: e.ErrCode})
}

func (ew *errorWriter) write(ctx context.Context, w http.ResponseWriter, err error) {
	code, body := ew.body(ctx, err)
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		e, _ := apierror.FromError(err)
		w.Header().Set("Retry-After", e.RetryAfterHeader())
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// handle is grpc-gateway's error handler. A body that did not decode is
// answered from its *DecodeError, so the answer names the field (param).
func (ew *errorWriter) handle(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if rb, ok := r.Body.(*requestBody); ok && rb.decodeErr != nil && status.Code(err) == codes.InvalidArgument {
		de := rb.decodeErr
		err = apierror.Invalid(de.Param, "%w", de)
	}
	ew.write(ctx, w, err)
}

// routing answers unknown paths (404) and methods (405) the way OpenAI
// does.
func (ew *errorWriter) routing(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	ew.write(ctx, w, apierror.NotFound("Invalid URL (%s %s)", apierror.Clip(r.Method), apierror.Clip(r.URL.Path)).WithHTTPStatus(httpStatus))
}

// streamError is grpc-gateway's stream error handler: it runs for a
// failure after the first chunk was sent, notes that the stream failed (so
// no [DONE] follows) and keeps the error's details for the SSE event.
func (ew *errorWriter) streamError(ctx context.Context, err error) *status.Status {
	if f, ok := ctx.Value(streamFailedKey{}).(*streamFailed); ok {
		f.set()
	}
	e, _ := apierror.FromError(err)
	return e.GRPCStatus()
}
