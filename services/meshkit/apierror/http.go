package apierror

import (
	"net/http"

	"google.golang.org/grpc/codes"
)

// CodeForHTTPStatus is the gRPC code an LLM node's HTTP error status means.
// A 503 is UNAVAILABLE (busy; retryable elsewhere), a 429 is
// RESOURCE_EXHAUSTED, a 404 is NOT_FOUND (unknown model), other 4xx are the
// client's fault, other 5xx are the node's.
func CodeForHTTPStatus(s int) codes.Code {
	switch {
	case s == http.StatusBadRequest, s == http.StatusUnprocessableEntity,
		s == http.StatusRequestEntityTooLarge, s == http.StatusMethodNotAllowed:
		return codes.InvalidArgument
	case s == http.StatusUnauthorized:
		return codes.Unauthenticated
	case s == http.StatusForbidden:
		return codes.PermissionDenied
	case s == http.StatusNotFound:
		return codes.NotFound
	case s == http.StatusRequestTimeout, s == http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case s == http.StatusConflict:
		return codes.Aborted
	case s == http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case s == http.StatusNotImplemented:
		return codes.Unimplemented
	case s == http.StatusServiceUnavailable, s == http.StatusBadGateway:
		return codes.Unavailable
	case s >= 400 && s < 500:
		return codes.InvalidArgument
	default:
		return codes.Internal
	}
}

// HTTPStatusForCode is the HTTP status the REST edge answers for a code.
func HTTPStatusForCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499 // client closed request
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// OpenAIType is OpenAI's error type for an HTTP status.
func OpenAIType(httpStatus int) string {
	switch {
	case httpStatus == http.StatusUnauthorized:
		return TypeAuthentication
	case httpStatus == http.StatusForbidden:
		return TypePermission
	case httpStatus == http.StatusNotFound:
		return TypeInvalidRequest
	case httpStatus == http.StatusTooManyRequests:
		return TypeRateLimit
	case httpStatus >= 400 && httpStatus < 500:
		return TypeInvalidRequest
	case httpStatus == http.StatusServiceUnavailable:
		return TypeServiceUnavailable
	default:
		return TypeServer
	}
}
