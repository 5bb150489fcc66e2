package routing

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"github.com/llmesh/llmesh/services/router/internal/observe"
	"google.golang.org/grpc/codes"
)

// ReasonNodeBusy is the failover reason of a node that answered busy
// (503 or 429); ReasonNodeLeft that of an attempt moved off a node that
// left rotation while the request waited for its first token.
const (
	ReasonNodeBusy = "NODE_BUSY"
	ReasonNodeLeft = "NODE_LEFT_ROTATION"
)

// begin starts the span and timing of a request.
func (r *Router) begin(ctx context.Context, op, route, model string, stream bool) (context.Context, *observe.Op) {
	return r.obs.Start(ctx, observe.Request{Operation: op, Route: route, Model: model, Stream: stream})
}

// end ends o with err's status and reason.
func end(o *observe.Op, err error) {
	if err == nil {
		o.End("OK", "")
		return
	}
	e, _ := apierror.FromError(err)
	o.End(codeName(e.Code), failReason(err))
}

// failReason is the bounded reason an attempt failed for: the apierror
// reason (NODE_UNREACHABLE, NODE_ANSWER_FAILED, …), NODE_BUSY,
// NODE_LEFT_ROTATION, or else the gRPC code name.
func failReason(err error) string {
	if errors.Is(err, errNodeLeft) {
		return ReasonNodeLeft
	}
	e, _ := apierror.FromError(err)
	switch {
	case e.Reason == apierror.ReasonUpstream && (e.HTTPStatus == http.StatusServiceUnavailable || e.HTTPStatus == http.StatusTooManyRequests):
		return ReasonNodeBusy
	case e.Reason != "":
		return e.Reason
	}
	return codeName(e.Code)
}

// codeName is a gRPC code as the proto names it: UNAVAILABLE, NOT_FOUND.
func codeName(c codes.Code) string {
	s := c.String()
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	if c == codes.OK {
		return "OK"
	}
	return b.String()
}

// startAttempt begins the span of one attempt on c.
func startAttempt(ctx context.Context, c nodetable.Candidate) (context.Context, *observe.Attempt) {
	return observe.From(ctx).Attempt(ctx, observe.Node{ID: c.Node.GetId(), Kind: kindName(c), BaseURL: c.Node.GetBaseUrl()})
}

func kindName(c nodetable.Candidate) string {
	return strings.ToLower(strings.TrimPrefix(c.Node.GetKind().String(), "KIND_"))
}
