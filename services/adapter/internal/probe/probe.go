// Package probe checks a node the way its kind should be checked: Ollama
// through its native API, every OpenAI-compatible server through its model
// list. A node that fails is a result with up=false, not an error.
package probe

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/ollama"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// DefaultTimeout bounds one probe when the caller's deadline is later.
const DefaultTimeout = 5 * time.Second

// Prober probes nodes through a connection pool.
type Prober struct {
	pool    *nodeconn.Pool
	timeout time.Duration
}

// New returns a prober whose probes take at most timeout (DefaultTimeout
// when zero or less), and never longer than the caller's deadline.
func New(pool *nodeconn.Pool, timeout time.Duration) *Prober {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Prober{pool: pool, timeout: timeout}
}

// Probe probes n. The error is non-nil only when n cannot be probed at all
// (an invalid description: INVALID_ARGUMENT) or when ctx ended before
// the probe did (CANCELLED / DEADLINE_EXCEEDED); a node that is down,
// slow, or answers wrongly is a result with up=false and the reason.
func (p *Prober) Probe(ctx context.Context, n *nodev1.Node) (*nodev1.ProbeResult, error) {
	if n.GetKind() != nodev1.Kind_KIND_OLLAMA && !openAIKinds[n.GetKind()] {
		return nil, &apierror.Error{Code: codes.InvalidArgument, Message: fmt.Sprintf("node kind %s cannot be probed", n.GetKind()), Node: n.GetId()}
	}
	conn, err := p.pool.Client(n)
	if e, ok := apierror.FromError(err); ok && e.Code == codes.FailedPrecondition {
		// The node is described well but cannot be reached as described
		// (an unreadable TLS file): down, and the reason says why.
		return &nodev1.ProbeResult{Reason: e.Message, ProbedAt: timestamppb.Now()}, nil
	}
	if err != nil {
		return nil, err
	}
	probeCtx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	start := time.Now()
	var res *nodev1.ProbeResult
	if n.GetKind() == nodev1.Kind_KIND_OLLAMA {
		res = ollama.New(conn).Probe(probeCtx)
	} else {
		res = probeOpenAI(probeCtx, conn)
	}
	elapsed := time.Since(start)

	if err := ctx.Err(); err != nil {
		// The caller is gone or out of time: nobody waits for a verdict.
		return nil, conn.TransportError(ctx, err)
	}
	if probeCtx.Err() != nil && !res.GetUp() {
		res.Reason = fmt.Sprintf("no answer within %s", p.timeout)
	}
	res.ProbedAt = timestamppb.New(start)
	res.LatencyMicros = elapsed.Microseconds()
	return res, nil
}

// openAIKinds are probed through their OpenAI-compatible model list.
var openAIKinds = map[nodev1.Kind]bool{
	nodev1.Kind_KIND_OPENAI: true, nodev1.Kind_KIND_VLLM: true, nodev1.Kind_KIND_LLAMACPP: true, nodev1.Kind_KIND_LMSTUDIO: true,
}

// probeOpenAI lists the models of an OpenAI-compatible node. What "loaded"
// means depends on the kind: vLLM and llama.cpp serve exactly what they
// list, OpenAI serves everything it lists, LM Studio lists downloaded
// models that may need a just-in-time load (unknown, so false).
func probeOpenAI(ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult {
	client := openaicompat.New(conn)
	res := &nodev1.ProbeResult{}
	list, err := client.ListModels(ctx)
	if err != nil {
		res.Reason = nodeconn.Describe(http.MethodGet, client.ModelsPath(), err)
		return res
	}
	loaded := conn.Kind() != nodev1.Kind_KIND_LMSTUDIO
	for _, m := range list.GetData() {
		if m.GetId() == "" {
			continue
		}
		res.Models = append(res.Models, &nodev1.ModelInfo{
			Id: m.GetId(), Loaded: loaded, Created: m.GetCreated(), OwnedBy: m.GetOwnedBy(),
		})
	}
	res.Up = true
	res.Reason = fmt.Sprintf("%s: %d model%s", KindName(conn.Kind()), len(res.Models), pluralS(len(res.Models)))
	return res
}

// KindName is a kind in lower case without its prefix: "vllm", "ollama".
func KindName(k nodev1.Kind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
