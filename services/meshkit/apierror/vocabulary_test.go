package apierror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errUnder = errors.New("the error underneath")

func TestConstructors(t *testing.T) {
	cases := []struct {
		name       string
		err        *Error
		code       codes.Code
		httpStatus int // what the REST edge answers
		typ, param string
		errCode    string
		node       string
		reason     string
		message    string
		wraps      error // errors.Is must find it; nil: Unwrap is nil
	}{
		{
			name: "invalid", err: Invalid("messages", "messages must be a non-empty array"),
			code: codes.InvalidArgument, httpStatus: 400, typ: TypeInvalidRequest, param: "messages",
			reason: ReasonMesh, message: "messages must be a non-empty array",
		},
		{
			name: "invalid wrapping its cause", err: Invalid("", "bad body: %w", errUnder),
			code: codes.InvalidArgument, httpStatus: 400, typ: TypeInvalidRequest,
			reason: ReasonMesh, message: "bad body: the error underneath", wraps: errUnder,
		},
		{
			name: "invalid for a node", err: Invalid("n", "n must be between 1 and %d", 128).WithNode("gpu-1"),
			code: codes.InvalidArgument, httpStatus: 400, typ: TypeInvalidRequest, param: "n", node: "gpu-1",
			reason: ReasonUpstream, message: "n must be between 1 and 128",
		},
		{
			name: "model not found", err: ModelNotFound("llama"),
			code: codes.NotFound, httpStatus: 404, typ: TypeInvalidRequest, param: "model", errCode: ErrCodeModelNotFound,
			reason: ReasonMesh, message: "The model `llama` does not exist or is not served by any healthy node.",
		},
		{
			name: "model not found clips the name", err: ModelNotFound(strings.Repeat("m", 2*ClipRunes)),
			code: codes.NotFound, httpStatus: 404, typ: TypeInvalidRequest, param: "model", errCode: ErrCodeModelNotFound,
			reason:  ReasonMesh,
			message: "The model `" + strings.Repeat("m", ClipRunes) + "…` does not exist or is not served by any healthy node.",
		},
		{
			name: "not found with the edge's 405", err: NotFound("Invalid URL (PUT /v1/models)").WithHTTPStatus(405),
			code: codes.NotFound, httpStatus: 405, typ: TypeInvalidRequest,
			reason: ReasonMesh, message: "Invalid URL (PUT /v1/models)",
		},
		{
			name: "model not supported", err: Invalid("model", "an embedding model").WithErrCode(ErrCodeModelNotSupported),
			code: codes.InvalidArgument, httpStatus: 400, typ: TypeInvalidRequest, param: "model", errCode: ErrCodeModelNotSupported,
			reason: ReasonMesh, message: "an embedding model",
		},
		{
			name: "rate limited", err: RateLimited("queue full"),
			code: codes.ResourceExhausted, httpStatus: 429, typ: TypeRateLimit,
			reason: ReasonMesh, message: "queue full",
		},
		{
			name: "mesh unavailable", err: Unavailable("", "every node is busy"),
			code: codes.Unavailable, httpStatus: 503, reason: ReasonMesh, message: "every node is busy",
		},
		{
			name: "node unavailable", err: Unavailable("gpu-1", "stream broken"),
			code: codes.Unavailable, httpStatus: 503, node: "gpu-1", reason: ReasonUpstream, message: "stream broken",
		},
		{
			name: "unreachable", err: Unreachable("gpu-1", "connect: connection refused"),
			code: codes.Unavailable, httpStatus: 503, node: "gpu-1", reason: ReasonUnreachable, message: "connect: connection refused",
		},
		{
			name: "no node reachable", err: Unreachable("", "no healthy node"),
			code: codes.Unavailable, httpStatus: 503, reason: ReasonUnreachable, message: "no healthy node",
		},
		{
			name: "answer failed", err: AnswerFailed("gpu-1", "answer broken off: %w", io.ErrUnexpectedEOF),
			code: codes.Unavailable, httpStatus: 503, node: "gpu-1", reason: ReasonAnswerFailed,
			message: "answer broken off: unexpected EOF", wraps: io.ErrUnexpectedEOF,
		},
		{
			name: "mesh deadline", err: DeadlineExceeded("", "the client's timeout of 1s"),
			code: codes.DeadlineExceeded, httpStatus: 504, reason: ReasonMesh, message: "the client's timeout of 1s",
		},
		{
			name: "node deadline", err: DeadlineExceeded("gpu-1", "deadline exceeded waiting for the node"),
			code: codes.DeadlineExceeded, httpStatus: 504, node: "gpu-1", reason: ReasonUpstream,
			message: "deadline exceeded waiting for the node",
		},
		{
			name: "canceled", err: Canceled("gpu-1", "request canceled"),
			code: codes.Canceled, httpStatus: 499, node: "gpu-1", reason: ReasonUpstream, message: "request canceled",
		},
		{
			name: "upstream 422", err: Upstream("gpu-1", 422, "prompt too long"),
			code: codes.InvalidArgument, httpStatus: 422, node: "gpu-1", reason: ReasonUpstream, message: "prompt too long",
		},
		{
			name: "upstream 429 with its wait", err: Upstream("cloud", 429, "slow down").WithRetryAfter(2 * time.Second),
			code: codes.ResourceExhausted, httpStatus: 429, node: "cloud", reason: ReasonUpstream, message: "slow down",
		},
		{
			name: "upstream error inside a 200", err: Upstream("gpu-1", 0, "the node reported an error"),
			code: codes.Internal, httpStatus: 500, node: "gpu-1", reason: ReasonUpstream, message: "the node reported an error",
		},
		{
			name: "bad answer", err: BadAnswer("gpu-1", "invalid answer: %w", errUnder),
			code: codes.Internal, httpStatus: 500, node: "gpu-1", reason: ReasonUpstream,
			message: "invalid answer: the error underneath", wraps: errUnder,
		},
		{
			name: "new", err: New(codes.FailedPrecondition, "api key variable %s is not set", "KEY").WithNode("cloud"),
			code: codes.FailedPrecondition, httpStatus: 400, node: "cloud", reason: ReasonUpstream,
			message: "api key variable KEY is not set",
		},
		{
			name: "wrap", err: Wrap(codes.InvalidArgument, errUnder),
			code: codes.InvalidArgument, httpStatus: 400, reason: ReasonMesh, message: "the error underneath", wraps: errUnder,
		},
		{
			name: "wrap a context error", err: Wrap(codes.Canceled, fmt.Errorf("call: %w", context.Canceled)),
			code: codes.Canceled, httpStatus: 499, reason: ReasonMesh, message: "call: context canceled", wraps: context.Canceled,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.err
			assert.Equal(t, tc.code, e.Code)
			httpStatus := HTTPStatusForCode(e.Code)
			if e.HTTPStatus != 0 {
				httpStatus = e.HTTPStatus
			}
			assert.Equal(t, tc.httpStatus, httpStatus, "HTTP status")
			assert.Equal(t, tc.typ, e.Type)
			assert.Equal(t, tc.param, e.Param)
			assert.Equal(t, tc.errCode, e.ErrCode)
			assert.Equal(t, tc.node, e.Node)
			assert.Equal(t, tc.reason, e.Reason)
			assert.Equal(t, tc.message, e.Message)

			if tc.wraps != nil {
				assert.ErrorIs(t, e, tc.wraps)
				assert.ErrorIs(t, fmt.Errorf("up a level: %w", e), tc.wraps)
			} else {
				assert.NoError(t, e.Unwrap())
			}
			// The cause stays in the process: a receiver over gRPC reads
			// every other field, the reason set here among them.
			bare := *e
			bare.Err = nil
			wire, ok := FromError(status.FromProto(e.GRPCStatus().Proto()).Err())
			require.True(t, ok)
			assert.Equal(t, &bare, wire)
		})
	}
}

// An Error wrapping a cause is still found by errors.As and FromError when
// it is wrapped itself.
func TestFromErrorFindsAWrappingError(t *testing.T) {
	err := fmt.Errorf("attempt 2: %w", BadAnswer("gpu-1", "decode: %w", errUnder))
	e, ok := FromError(err)
	require.True(t, ok)
	assert.Equal(t, codes.Internal, e.Code)
	assert.ErrorIs(t, err, errUnder)
}

// Several %w arguments are all seen through.
func TestConstructorWithSeveralCauses(t *testing.T) {
	other := errors.New("other")
	e := Invalid("x", "%w and %w", errUnder, other)
	assert.Equal(t, "the error underneath and other", e.Message)
	assert.ErrorIs(t, e, errUnder)
	assert.ErrorIs(t, e, other)
}
