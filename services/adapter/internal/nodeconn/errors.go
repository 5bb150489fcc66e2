package nodeconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
	"github.com/llmesh/llmesh/services/meshkit/openaijson"
)

const (
	// maxErrorBody is how much of an error answer is read.
	maxErrorBody = 64 << 10
	// maxErrorSnippet is how much of an unstructured error body becomes
	// the message.
	maxErrorSnippet = 512
)

// StatusError maps a node's non-2xx answer: the gRPC code from the HTTP
// status, the OpenAI fields from an OpenAI or Ollama error body, else the
// start of the body or the status text as the message, and the node's
// Retry-After. It reads (a bounded part of) the body but does not close it.
func (c *Client) StatusError(resp *http.Response) *apierror.Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Drain a little more so a small overflow does not cost the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	e := c.errorFromBody(resp.StatusCode, body)
	e.RetryAfter = RetryAfter(resp.Header, time.Now())
	return e
}

func (c *Client) errorFromBody(httpStatus int, body []byte) *apierror.Error {
	var obj openaijson.ErrorObject
	if o, ok := openaijson.UnmarshalError(body); ok {
		obj = o
	}
	msg := obj.Message
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", httpStatus, http.StatusText(httpStatus))
		if s := snippet(body); s != "" {
			msg += ": " + s
		}
	}
	e := apierror.Upstream(c.id, httpStatus, "%s", msg)
	e.Type, e.Param, e.ErrCode = obj.Type, obj.Param, obj.Code
	if e.Type == "" {
		e.Type = apierror.OpenAIType(httpStatus)
	}
	return c.redactError(e)
}

// EventError maps an error object the node sent inside a 200 answer, such
// as a `data: {"error":...}` event in the middle of a stream. It is
// INTERNAL unless the object's code is an HTTP status that says otherwise
// (llama.cpp sends {"code":503,...}).
func (c *Client) EventError(obj openaijson.ErrorObject) *apierror.Error {
	var httpStatus int
	if _, err := fmt.Sscanf(obj.Code, "%d", &httpStatus); err != nil || httpStatus < 400 || httpStatus > 599 {
		httpStatus = 0 // no status: INTERNAL
	}
	msg := obj.Message
	if msg == "" {
		msg = "the node reported an error"
	}
	e := apierror.Upstream(c.id, httpStatus, "%s", msg)
	e.Type, e.Param, e.ErrCode = obj.Type, obj.Param, obj.Code
	if e.Type == "" {
		e.Type = apierror.TypeServer
	}
	return c.redactError(e)
}

// TransportError maps a failure to get an answer from the node: the
// caller's cancellation or deadline becomes CANCELLED or DEADLINE_EXCEEDED,
// anything else (refused, reset, TLS, DNS, timeouts) is UNAVAILABLE with
// reason NODE_UNREACHABLE and a short cause such as
// "connect: connection refused".
func (c *Client) TransportError(ctx context.Context, err error) *apierror.Error {
	if e := c.contextError(ctx, err); e != nil {
		return e
	}
	return c.redactError(apierror.Unreachable(c.id, "%s", Cause(err)))
}

// droppedError maps a failure to get an answer after the whole request
// had been sent (the node closed or reset the connection instead of
// answering): as TransportError, but with reason NODE_ANSWER_FAILED, as
// the node was reached and took the request.
func (c *Client) droppedError(ctx context.Context, err error) *apierror.Error {
	e := c.TransportError(ctx, err)
	if e.Reason == apierror.ReasonUnreachable {
		e.Reason = apierror.ReasonAnswerFailed
	}
	return e
}

// BodyError maps a failure while reading an answer that had started (a
// stream cut in the middle): UNAVAILABLE with the cause and reason
// NODE_ANSWER_FAILED, or the context's code when the caller went away.
func (c *Client) BodyError(ctx context.Context, err error) *apierror.Error {
	if e := c.contextError(ctx, err); e != nil {
		return e
	}
	return c.redactError(apierror.AnswerFailed(c.id, "answer broken off: %s", Cause(err)))
}

// BrokenOff is the error for an answer that ended cleanly but short (a
// stream without its end marker): UNAVAILABLE with reason
// NODE_ANSWER_FAILED and why as the message, or the context's code when
// the caller went away.
func (c *Client) BrokenOff(ctx context.Context, why string) *apierror.Error {
	if err := ctx.Err(); err != nil {
		return c.BodyError(ctx, err)
	}
	return apierror.AnswerFailed(c.id, "%s", why)
}

func (c *Client) contextError(ctx context.Context, err error) *apierror.Error {
	ctxErr := ctx.Err()
	var opErr *net.OpError
	if ctxErr == nil && errors.As(err, &opErr) && opErr.Op == "dial" {
		return nil // the connect timed out, not the caller's context
	}
	if ctxErr == nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			ctxErr = context.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			ctxErr = context.Canceled
		default:
			return nil
		}
	}
	e := apierror.Canceled(c.id, "request canceled")
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		e = apierror.DeadlineExceeded(c.id, "deadline exceeded waiting for the node")
	}
	e.Err = ctxErr
	return e
}

// Cause is a short human cause of a network error, without the URL:
// "connect: connection refused", "read: connection reset by peer",
// "lookup gpu-1: no such host", "tls: failed to verify certificate: ...".
func Cause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drops `Post "http://...":`
	}
	if s := tlsCause(err); s != "" {
		return s
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "lookup " + dnsErr.Name + ": no such host"
		}
		return "lookup " + dnsErr.Name + ": " + dnsErr.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		op := opErr.Op
		if op == "dial" {
			op = "connect"
		}
		var sysErr *os.SyscallError
		switch {
		case errors.As(opErr.Err, &sysErr):
			return sysErr.Error() // e.g. "connect: connection refused"
		case opErr.Timeout():
			return op + ": timeout"
		case opErr.Err != nil:
			return op + ": " + opErr.Err.Error()
		}
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "connection closed by the node"
	}
	msg := strings.TrimPrefix(err.Error(), "net/http: ")
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !strings.Contains(msg, "timeout") {
		msg = "timeout: " + msg
	}
	return msg
}

// Describe says in a few words why a probe request failed:
// "GET /api/tags: HTTP 500: boom", "connect: connection refused", or the
// error's message.
func Describe(method, path string, err error) string {
	e, ok := apierror.FromError(err)
	if !ok {
		return err.Error()
	}
	if e.HTTPStatus != 0 {
		s := fmt.Sprintf("%s %s: HTTP %d", method, path, e.HTTPStatus)
		if e.Message != "" && !strings.HasPrefix(e.Message, "HTTP ") {
			s += ": " + e.Message
		}
		return s
	}
	if e.Reason == apierror.ReasonUnreachable {
		return e.Message
	}
	return fmt.Sprintf("%s %s: %s", method, path, e.Message)
}

// snippet is the start of body as one line of valid text.
func snippet(body []byte) string {
	if len(body) > maxErrorSnippet {
		body = body[:maxErrorSnippet] // a cut rune is dropped below
	}
	s := strings.ToValidUTF8(string(body), "")
	return strings.Join(strings.Fields(s), " ")
}

// tlsCause names what went wrong in a TLS handshake with a node, with the
// setting that fixes it; "" when err is no TLS failure.
func tlsCause(err error) string {
	var (
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		authority x509.UnknownAuthorityError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "tls: the node's " + strings.TrimPrefix(invalid.Error(), "x509: ")
	case errors.As(err, &invalid):
		return "tls: the node's certificate is not valid: " + strings.TrimPrefix(invalid.Error(), "x509: ")
	case errors.As(err, &hostname):
		return "tls: " + strings.TrimPrefix(hostname.Error(), "x509: ") + " (tls_server_name sets the name to verify)"
	case errors.As(err, &authority):
		return "tls: the node's certificate is signed by an unknown authority (tls_ca_file names the CA bundle that verifies it)"
	case errors.As(err, &record):
		return "tls: the node did not answer with TLS (is it plain http? then use an http:// url)"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "tls: the node did not answer with TLS (is it plain http? then use an http:// url)"
	case strings.Contains(msg, "tls: certificate required"):
		return "tls: the node requires a client certificate (tls_cert_file and tls_key_file)"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return "tls: the node rejected the client certificate (" + msg[strings.Index(msg, "remote error"):] + ")"
	case strings.Contains(msg, "remote error: tls: "):
		return "tls: the node refused the handshake (" + msg[strings.Index(msg, "remote error"):] + ")"
	}
	return ""
}
