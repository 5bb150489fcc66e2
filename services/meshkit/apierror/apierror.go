// Package apierror is llmesh's error model across service boundaries.
//
// An Error is a gRPC status code plus what an OpenAI client needs to see:
// the HTTP status, OpenAI's error type, param and code, and the node that
// produced it. Build one with the constructors of a closed vocabulary
// (Invalid, ModelNotFound, Unavailable, Upstream, …), not by hand. It
// crosses gRPC as a status with a google.rpc.ErrorInfo detail, so the
// router can show an upstream 4xx with its original meaning instead of
// flattening it to 500.
package apierror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Domain is the ErrorInfo domain of llmesh errors.
const Domain = "llmesh.dev"

// Reasons used in ErrorInfo.reason.
const (
	// ReasonUpstream marks an error answered by an LLM node.
	ReasonUpstream = "UPSTREAM_ERROR"
	// ReasonUnreachable marks a node that could not be reached at all:
	// refused or reset while connecting, TLS, DNS. A health probe meets
	// the same failure, so a good probe shows the node is back.
	ReasonUnreachable = "NODE_UNREACHABLE"
	// ReasonAnswerFailed marks a node that took the request but did not
	// deliver its answer: no first token (or response) in time, silent in
	// the middle of an answer, or the connection dropped after the request
	// was sent. A health probe's cheap calls do not exercise this, so only
	// a request that succeeds shows the node is back.
	ReasonAnswerFailed = "NODE_ANSWER_FAILED"
	// ReasonMesh marks an error llmesh produced itself (a bad request, a
	// missing key, no healthy node) rather than one a node answered.
	ReasonMesh = "MESH_ERROR"
)

// Error is an error with a gRPC code and OpenAI error fields.
type Error struct {
	Code       codes.Code
	Message    string
	HTTPStatus int    // the node's HTTP status, 0 when there was no answer
	Type       string // OpenAI error type, e.g. invalid_request_error
	Param      string
	ErrCode    string // OpenAI error code, e.g. model_not_found
	Node       string // the node id, when a node produced the error
	Reason     string // ErrorInfo reason, e.g. ReasonUpstream
	// RetryAfter is how long the node asked clients to wait before trying
	// again (its Retry-After), 0 when it said nothing. It crosses gRPC as a
	// google.rpc.RetryInfo detail, which gRPC clients understand too.
	RetryAfter time.Duration
	// Err is the Go error underneath, if any, for errors.Is and errors.As.
	// It stays in the process: its text is not part of Error() and does
	// not cross gRPC (Message says what a client may see).
	Err error
}

func (e *Error) Error() string {
	if e.Node != "" {
		return fmt.Sprintf("node %s: %s", e.Node, e.Message)
	}
	return e.Message
}

// Unwrap returns the Go error underneath e, nil when there is none.
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus lets status.FromError and grpc-go turn an Error into a status
// that keeps every field.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Error())
	md := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	if e.HTTPStatus != 0 {
		md["http_status"] = strconv.Itoa(e.HTTPStatus)
	}
	put("type", e.Type)
	put("param", e.Param)
	put("code", e.ErrCode)
	put("node", e.Node)
	put("message", e.Message)
	reason := e.Reason
	switch {
	case reason != "":
	case e.Node != "" || e.HTTPStatus != 0:
		reason = ReasonUpstream
	default:
		reason = ReasonMesh
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: md}}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withDetails
}

// RetryAfterHeader is the Retry-After value an edge sends with e's 429 or
// 503: the node's own wait rounded up to whole seconds when it gave one,
// else 1 — long enough for a busy node to drain a little, short enough not
// to stall a client.
func (e *Error) RetryAfterHeader() string {
	if e.RetryAfter <= 0 {
		return "1"
	}
	return strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10)
}

// FromError recovers an Error from anything: an *Error in the chain, a gRPC
// status (with or without llmesh's ErrorInfo), or a context error
// (CANCELLED or DEADLINE_EXCEEDED). The bool is false when err is none of
// these; the returned Error then has code Unknown.
func FromError(err error) (*Error, bool) {
	if err == nil {
		return nil, false
	}
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			st := status.FromContextError(err)
			return &Error{Code: st.Code(), Message: st.Message()}, true
		}
		return &Error{Code: codes.Unknown, Message: err.Error()}, false
	}
	out := &Error{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		if retry, ok := d.(*errdetails.RetryInfo); ok {
			out.RetryAfter = retry.GetRetryDelay().AsDuration()
			continue
		}
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != Domain {
			continue
		}
		md := info.GetMetadata()
		out.Reason = info.GetReason()
		out.HTTPStatus, _ = strconv.Atoi(md["http_status"])
		out.Type = md["type"]
		out.Param = md["param"]
		out.ErrCode = md["code"]
		out.Node = md["node"]
		if m := md["message"]; m != "" {
			out.Message = m
		}
	}
	return out, true
}
