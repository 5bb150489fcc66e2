// Package probe checks a node the way its kind should be checked (see
// kinds.go and one file per kind): which URL proves that this kind of
// node is up, which models it has and which are loaded, and how busy it
// is. A node that fails is a result with up=false, not an error; a node
// that refuses llmesh's credentials is STATUS_MISCONFIGURED and one that
// is still loading its model STATUS_LOADING.
package probe

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/nodetrust"
	"github.com/llmesh/llmesh/services/adapter/internal/ollama"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// DefaultTimeout bounds one probe when the caller's deadline is later.
const DefaultTimeout = 5 * time.Second

// AnswerMargin is the part of the caller's time a probe leaves for the
// answer to travel back: a probe always ends that long before the caller's
// deadline (or at half the time left, if that is less), so a node that
// never answers is a verdict ("no answer within …"), never a caller that
// gave up and learnt nothing.
const AnswerMargin = 500 * time.Millisecond

// Prober probes nodes through a connection pool.
type Prober struct {
	pool        *nodeconn.Pool
	timeout     time.Duration
	ollamaTypes ollama.TypeCache
}

// New returns a prober whose probes take at most timeout (DefaultTimeout
// when zero or less), and end AnswerMargin before the caller's deadline.
func New(pool *nodeconn.Pool, timeout time.Duration) *Prober {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Prober{pool: pool, timeout: timeout}
}

// Probe probes n; a node whose kind is to be recognised (recognize_kind)
// is probed as the kind its answers show (see probeRecognizing). The error is non-nil only when n cannot be probed at all
// (an invalid description: INVALID_ARGUMENT) or when ctx ended before
// the probe did (CANCELLED / DEADLINE_EXCEEDED); a node that is down,
// slow, or answers wrongly is a result with up=false and the reason.
func (p *Prober) Probe(ctx context.Context, n *nodev1.Node) (*nodev1.ProbeResult, error) {
	probeKind, ok := kinds[n.GetKind()]
	if !ok {
		return nil, apierror.New(codes.InvalidArgument, "node kind %s cannot be probed", n.GetKind()).WithNode(n.GetId())
	}
	conn, err := p.pool.Client(n)
	if e, ok := apierror.FromError(err); ok && e.Code == codes.FailedPrecondition {
		// The node is described well but cannot be reached as described
		// (an unreadable TLS file): down, and the reason says why.
		res := &nodev1.ProbeResult{Reason: e.Message, ProbedAt: timestamppb.Now()}
		if nodetrust.IsRefusal(err) {
			// A secret the adapter may not send there, or an address it
			// may not connect to: the operator's to fix.
			res.Status = nodev1.Status_STATUS_MISCONFIGURED
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	budget := p.budget(ctx)
	probeCtx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	start := time.Now()
	var res *nodev1.ProbeResult
	if n.GetRecognizeKind() && recognizable(n.GetKind()) {
		res = p.probeRecognizing(probeCtx, n, conn)
	} else {
		res = probeKind(p, probeCtx, conn)
	}
	elapsed := time.Since(start)

	if err := ctx.Err(); err != nil {
		// The caller is gone or out of time: nobody waits for a verdict.
		return nil, conn.TransportError(ctx, err)
	}
	if probeCtx.Err() != nil && !res.GetUp() {
		res.Reason = fmt.Sprintf("no answer within %s", roundDuration(budget))
		res.Status = nodev1.Status_STATUS_UNSPECIFIED
		res.RecognizedKind, res.RecognizedBaseUrl = nodev1.Kind_KIND_UNSPECIFIED, ""
	}
	res.ProbedAt = timestamppb.New(start)
	res.LatencyMicros = elapsed.Microseconds()
	return res, nil
}

// budget is how long one probe may take: the prober's timeout, cut to end
// AnswerMargin before ctx's deadline.
func (p *Prober) budget(ctx context.Context) time.Duration {
	d := p.timeout
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		d = min(d, left-min(AnswerMargin, left/2))
	}
	return max(d, time.Millisecond)
}

// roundDuration drops the digits nobody reads: "4.9s" rather than
// "4.912345678s".
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
