package apierror

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
)

// OpenAI error types, the "type" of an error body. OpenAI answers a 404
// with TypeInvalidRequest; TypeNotFound is the Anthropic API's.
const (
	TypeInvalidRequest     = "invalid_request_error"
	TypeAuthentication     = "authentication_error"
	TypePermission         = "permission_error"
	TypeNotFound           = "not_found_error"
	TypeRateLimit          = "rate_limit_error"
	TypeServer             = "server_error"
	TypeServiceUnavailable = "service_unavailable_error"
)

// OpenAI error codes, the "code" of an error body, that llmesh sets.
const (
	// ErrCodeModelNotFound: no node serves the model asked for.
	ErrCodeModelNotFound = "model_not_found"
	// ErrCodeModelNotSupported: the model exists but does not serve this
	// endpoint (an embedding model asked to chat).
	ErrCodeModelNotSupported = "model_not_supported"
)

// The constructors below are llmesh's closed vocabulary of errors. Each
// takes a format and arguments as fmt.Errorf does: a %w argument becomes
// the Error's Err, so errors.Is and errors.As see through it, and its text
// is in the Message like %v. Each sets Reason, so an Error means the same
// in the process that made it as after a trip through gRPC: an error that
// names a node is UPSTREAM_ERROR (or NODE_UNREACHABLE, NODE_ANSWER_FAILED),
// one that does not is MESH_ERROR.

// Invalid is the client's request at fault: INVALID_ARGUMENT, HTTP 400,
// invalid_request_error, naming param (the field at fault, "" for none).
func Invalid(param, format string, args ...any) *Error {
	e := build(codes.InvalidArgument, ReasonMesh, fmt.Errorf(format, args...))
	e.Type, e.Param = TypeInvalidRequest, param
	return e
}

// ModelNotFound is a model no healthy node serves: NOT_FOUND, HTTP 404,
// invalid_request_error, param "model", code model_not_found, with the
// message OpenAI gives for an unknown model. The name is clipped.
func ModelNotFound(model string) *Error {
	e := build(codes.NotFound, ReasonMesh,
		fmt.Errorf("The model `%s` does not exist or is not served by any healthy node.", Clip(model))) //nolint:revive,staticcheck // OpenAI's own wording, capital and full stop included
	e.Type, e.Param, e.ErrCode = TypeInvalidRequest, "model", ErrCodeModelNotFound
	return e
}

// NotFound is something else the client named that does not exist (a
// URL): NOT_FOUND, HTTP 404, invalid_request_error.
func NotFound(format string, args ...any) *Error {
	e := build(codes.NotFound, ReasonMesh, fmt.Errorf(format, args...))
	e.Type = TypeInvalidRequest
	return e
}

// RateLimited is the mesh refusing work it has no room for: RESOURCE_EXHAUSTED,
// HTTP 429, rate_limit_error. Add the wait with WithRetryAfter.
func RateLimited(format string, args ...any) *Error {
	e := build(codes.ResourceExhausted, ReasonMesh, fmt.Errorf(format, args...))
	e.Type = TypeRateLimit
	return e
}

// Unavailable is node (or the mesh, when node is "") unable to serve now,
// so another node or a later try may: UNAVAILABLE, HTTP 503.
func Unavailable(node, format string, args ...any) *Error {
	return atNode(node, build(codes.Unavailable, ReasonMesh, fmt.Errorf(format, args...)))
}

// Unreachable is node not reached at all (refused, reset while
// connecting, TLS, DNS), or with node "" no node reachable: UNAVAILABLE,
// HTTP 503, reason NODE_UNREACHABLE.
func Unreachable(node, format string, args ...any) *Error {
	e := build(codes.Unavailable, ReasonUnreachable, fmt.Errorf(format, args...))
	e.Node = node
	return e
}

// AnswerFailed is node taking the request but not delivering its answer
// (no first token in time, silent mid-answer, connection dropped after the
// request was sent): UNAVAILABLE, HTTP 503, reason NODE_ANSWER_FAILED.
func AnswerFailed(node, format string, args ...any) *Error {
	e := build(codes.Unavailable, ReasonAnswerFailed, fmt.Errorf(format, args...))
	e.Node = node
	return e
}

// DeadlineExceeded is a deadline passed waiting for node (or for the mesh,
// when node is ""): DEADLINE_EXCEEDED, HTTP 504.
func DeadlineExceeded(node, format string, args ...any) *Error {
	return atNode(node, build(codes.DeadlineExceeded, ReasonMesh, fmt.Errorf(format, args...)))
}

// Canceled is the caller gone while waiting for node (or for the mesh,
// when node is ""): CANCELLED, HTTP 499.
func Canceled(node, format string, args ...any) *Error {
	return atNode(node, build(codes.Canceled, ReasonMesh, fmt.Errorf(format, args...)))
}

// Upstream is node's own error answer: the code its HTTP status means
// (INTERNAL when httpStatus is 0, an error inside a 200 answer), that
// status, reason UPSTREAM_ERROR. The caller fills Type, Param and ErrCode
// from the node's error body.
func Upstream(node string, httpStatus int, format string, args ...any) *Error {
	e := build(CodeForHTTPStatus(httpStatus), ReasonUpstream, fmt.Errorf(format, args...))
	e.Node, e.HTTPStatus = node, httpStatus
	return e
}

// BadAnswer is node answering with something the mesh cannot use (not
// JSON, too large, the wrong content type): INTERNAL, HTTP 500, reason
// UPSTREAM_ERROR. The REST edge masks its message.
func BadAnswer(node, format string, args ...any) *Error {
	e := build(codes.Internal, ReasonUpstream, fmt.Errorf(format, args...))
	e.Node = node
	return e
}

// New is an error of code with no OpenAI fields, for what the named
// constructors do not cover: a node described so it cannot be used
// (FAILED_PRECONDITION), a request that could not be built (INTERNAL).
func New(code codes.Code, format string, args ...any) *Error {
	return build(code, ReasonMesh, fmt.Errorf(format, args...))
}

// Wrap is err as an Error of code: its text is the message and errors.Is
// and errors.As see through to it.
func Wrap(code codes.Code, err error) *Error {
	return &Error{Code: code, Message: err.Error(), Reason: ReasonMesh, Err: err}
}

// WithNode names the node e is about. An error that names a node is that
// node's on the wire, so reason MESH_ERROR becomes UPSTREAM_ERROR, as
// GRPCStatus does for an Error without a reason.
func (e *Error) WithNode(node string) *Error {
	return atNode(node, e)
}

// WithRetryAfter sets how long a client should wait before trying again.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	e.RetryAfter = d
	return e
}

// WithErrCode sets the OpenAI error code, e.g. ErrCodeModelNotSupported.
func (e *Error) WithErrCode(code string) *Error {
	e.ErrCode = code
	return e
}

// WithHTTPStatus sets the HTTP status the REST edge answers when the
// code's own is not precise enough: 413 for a body too large, 408 for a
// body too slow, 405 for a method not allowed.
func (e *Error) WithHTTPStatus(httpStatus int) *Error {
	e.HTTPStatus = httpStatus
	return e
}

// build is an Error of code and reason whose message is err's text and
// whose Err is what err wraps (%w), if anything.
func build(code codes.Code, reason string, err error) *Error {
	e := &Error{Code: code, Message: err.Error(), Reason: reason}
	switch u := err.(type) { //nolint:errorlint // err's own Unwrap methods, not a type it wraps
	case interface{ Unwrap() error }:
		e.Err = u.Unwrap()
	case interface{ Unwrap() []error }:
		e.Err = err // several %w: err unwraps to each
	}
	return e
}

func atNode(node string, e *Error) *Error {
	e.Node = node
	if node != "" && e.Reason == ReasonMesh {
		e.Reason = ReasonUpstream
	}
	return e
}
