package apierror

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCodeForHTTPStatus(t *testing.T) {
	cases := map[int]codes.Code{
		http.StatusBadRequest:          codes.InvalidArgument,
		http.StatusUnprocessableEntity: codes.InvalidArgument,
		http.StatusUnauthorized:        codes.Unauthenticated,
		http.StatusForbidden:           codes.PermissionDenied,
		http.StatusNotFound:            codes.NotFound,
		http.StatusRequestTimeout:      codes.DeadlineExceeded,
		http.StatusTooManyRequests:     codes.ResourceExhausted,
		http.StatusServiceUnavailable:  codes.Unavailable,
		http.StatusBadGateway:          codes.Unavailable,
		http.StatusGatewayTimeout:      codes.DeadlineExceeded,
		http.StatusNotImplemented:      codes.Unimplemented,
		http.StatusInternalServerError: codes.Internal,
		418:                            codes.InvalidArgument,
		599:                            codes.Internal,
	}
	for httpStatus, want := range cases {
		t.Run(fmt.Sprint(httpStatus), func(t *testing.T) {
			assert.Equal(t, want, CodeForHTTPStatus(httpStatus))
		})
	}
}

func TestHTTPStatusForCode(t *testing.T) {
	cases := map[codes.Code]int{
		codes.OK:                 http.StatusOK,
		codes.InvalidArgument:    http.StatusBadRequest,
		codes.FailedPrecondition: http.StatusBadRequest,
		codes.Unauthenticated:    http.StatusUnauthorized,
		codes.PermissionDenied:   http.StatusForbidden,
		codes.NotFound:           http.StatusNotFound,
		codes.ResourceExhausted:  http.StatusTooManyRequests,
		codes.Canceled:           499,
		codes.DeadlineExceeded:   http.StatusGatewayTimeout,
		codes.Unavailable:        http.StatusServiceUnavailable,
		codes.Unimplemented:      http.StatusNotImplemented,
		codes.Internal:           http.StatusInternalServerError,
		codes.Unknown:            http.StatusInternalServerError,
		codes.DataLoss:           http.StatusInternalServerError,
	}
	for code, want := range cases {
		t.Run(code.String(), func(t *testing.T) {
			assert.Equal(t, want, HTTPStatusForCode(code))
		})
	}
}

func TestOpenAIType(t *testing.T) {
	cases := map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		404: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
		500: "server_error", 502: "server_error", 503: "service_unavailable_error",
	}
	for s, want := range cases {
		assert.Equal(t, want, OpenAIType(s), s)
	}
}

// An Error survives the trip through a gRPC status with every field.
func TestErrorRoundTripsThroughStatus(t *testing.T) {
	cases := []*Error{
		{Code: codes.NotFound, Message: "model 'x' not found", HTTPStatus: 404, Type: "invalid_request_error",
			Param: "model", ErrCode: "model_not_found", Node: "gpu-1", Reason: ReasonUpstream},
		{Code: codes.Unavailable, Message: "connect: connection refused", Node: "gpu-2", Reason: ReasonUnreachable},
		{Code: codes.Unavailable, Message: "no first token within 1s", Node: "gpu-3", Reason: ReasonAnswerFailed},
		{Code: codes.InvalidArgument, Message: "messages must be a non-empty array", Param: "messages", Reason: ReasonMesh},
		{Code: codes.ResourceExhausted, Message: "Rate limit reached", HTTPStatus: 429, Type: "rate_limit_error",
			Node: "cloud-1", Reason: ReasonUpstream, RetryAfter: 1500 * time.Millisecond},
	}
	for _, in := range cases {
		t.Run(in.Message, func(t *testing.T) {
			// As grpc-go does on the wire: status → proto → status.
			wire := status.FromProto(in.GRPCStatus().Proto()).Err()
			out, ok := FromError(wire)
			require.True(t, ok)
			assert.Equal(t, in, out)
			assert.Equal(t, in.Code, status.Code(wire))
		})
	}
}

// A node's wait crosses gRPC as the standard RetryInfo detail, which
// native gRPC clients read.
func TestRetryAfterIsRetryInfo(t *testing.T) {
	st := (&Error{Code: codes.Unavailable, Message: "busy", RetryAfter: 30 * time.Second}).GRPCStatus()
	var got *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			got = r
		}
	}
	require.NotNil(t, got)
	assert.Equal(t, 30*time.Second, got.GetRetryDelay().AsDuration())
}

func TestRetryAfterHeader(t *testing.T) {
	for wait, want := range map[time.Duration]string{
		0:                       "1",
		time.Second:             "1",
		1500 * time.Millisecond: "2",
		20 * time.Millisecond:   "1",
		30 * time.Second:        "30",
	} {
		assert.Equal(t, want, (&Error{RetryAfter: wait}).RetryAfterHeader(), "wait %s", wait)
	}
}

func TestDefaultReason(t *testing.T) {
	node, _ := FromError(status.FromProto((&Error{Code: codes.Internal, Message: "boom", Node: "n"}).GRPCStatus().Proto()).Err())
	assert.Equal(t, ReasonUpstream, node.Reason)
	mesh, _ := FromError(status.FromProto((&Error{Code: codes.InvalidArgument, Message: "bad"}).GRPCStatus().Proto()).Err())
	assert.Equal(t, ReasonMesh, mesh.Reason)
}

func TestFromErrorWithoutDetails(t *testing.T) {
	e, ok := FromError(status.Error(codes.ResourceExhausted, "slow down"))
	require.True(t, ok)
	assert.Equal(t, &Error{Code: codes.ResourceExhausted, Message: "slow down"}, e)

	e, ok = FromError(fmt.Errorf("wrapped: %w", &Error{Code: codes.NotFound, Message: "x"}))
	require.True(t, ok)
	assert.Equal(t, codes.NotFound, e.Code)

	e, ok = FromError(fmt.Errorf("call: %w", context.Canceled))
	assert.True(t, ok)
	assert.Equal(t, codes.Canceled, e.Code)

	e, ok = FromError(context.DeadlineExceeded)
	assert.True(t, ok)
	assert.Equal(t, codes.DeadlineExceeded, e.Code)

	e, ok = FromError(fmt.Errorf("plain"))
	assert.False(t, ok)
	assert.Equal(t, codes.Unknown, e.Code)

	e, ok = FromError(nil)
	assert.False(t, ok)
	assert.Nil(t, e)
}
