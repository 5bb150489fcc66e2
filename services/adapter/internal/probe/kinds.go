package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/adapter/internal/openaicompat"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// kindProbe probes one node of its kind. It fills everything but the
// probe time and latency.
type kindProbe func(p *Prober, ctx context.Context, conn *nodeconn.Client) *nodev1.ProbeResult

// kinds is how each kind is probed.
var kinds = map[nodev1.Kind]kindProbe{
	nodev1.Kind_KIND_OLLAMA:    probeOllama,
	nodev1.Kind_KIND_OPENAI:    probeOpenAI,
	nodev1.Kind_KIND_VLLM:      probeVLLM,
	nodev1.Kind_KIND_LLAMACPP:  probeLlamaCpp,
	nodev1.Kind_KIND_LMSTUDIO:  probeLMStudio,
	nodev1.Kind_KIND_ANTHROPIC: probeAnthropic,
}

// maxProbeAnswer bounds one probe answer (a /metrics page or a model list).
const maxProbeAnswer = 16 << 20

// failed makes res the verdict on a probe request (path relative to the
// base URL) that failed: STATUS_MISCONFIGURED when the node refused the
// credentials or the key variable is unset, down otherwise.
func failed(res *nodev1.ProbeResult, conn *nodeconn.Client, path string, err error) *nodev1.ProbeResult {
	res.Up = false
	if reason, ok := misconfigured(conn, path, err); ok {
		res.Status = nodev1.Status_STATUS_MISCONFIGURED
		res.Reason = reason
		return res
	}
	res.Reason = conn.Redact(nodeconn.Describe(http.MethodGet, conn.BasePath()+path, err))
	return res
}

// misconfigured says what the operator must fix when err is a refusal of
// llmesh's credentials — "401 from https://api.example.com/v1/models:
// invalid API key — check OPENAI_API_KEY" — or an unset key variable. The
// key itself never appears.
func misconfigured(conn *nodeconn.Client, path string, err error) (string, bool) {
	e, ok := apierror.FromError(err)
	if !ok {
		return "", false
	}
	if e.Code == codes.FailedPrecondition && e.HTTPStatus == 0 {
		return e.Message, true // the key variable is unset
	}
	if e.HTTPStatus != http.StatusUnauthorized && e.HTTPStatus != http.StatusForbidden {
		return "", false
	}
	what := "invalid API key"
	if e.HTTPStatus == http.StatusForbidden {
		what = "forbidden"
	}
	if msg := strings.TrimSpace(e.Message); msg != "" && !strings.HasPrefix(msg, "HTTP ") {
		what += " (" + conn.Redact(msg) + ")"
	}
	fix := "the node wants an API key: name the variable holding it in api_key_env"
	switch {
	case conn.APIKeyEnv() != "" && e.HTTPStatus == http.StatusForbidden:
		fix = "check that the key in " + conn.APIKeyEnv() + " may use this API"
	case conn.APIKeyEnv() != "":
		fix = "check " + conn.APIKeyEnv()
	}
	return fmt.Sprintf("%d from %s: %s — %s", e.HTTPStatus, conn.URL(path), what, fix), true
}

// get fetches path (relative to the base URL) and returns its body.
func get(ctx context.Context, conn *nodeconn.Client, path, accept string) ([]byte, error) {
	req, err := conn.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := conn.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeAnswer))
	if err != nil {
		return nil, conn.BodyError(ctx, err)
	}
	return data, nil
}

// getJSON fetches path and decodes its JSON answer into out.
func getJSON(ctx context.Context, conn *nodeconn.Client, path string, out any) error {
	data, err := get(ctx, conn, path, "application/json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return apierror.BadAnswer(conn.NodeID(), "invalid answer: %w", err)
	}
	return nil
}

// listModels reads the OpenAI-compatible model list into res. It reports
// false, with res the verdict, when the list could not be read.
func listModels(ctx context.Context, conn *nodeconn.Client, res *nodev1.ProbeResult, loaded bool) bool {
	list, err := openaicompat.New(conn).ListModels(ctx)
	if err != nil {
		failed(res, conn, openaicompat.APIPrefix(conn.Kind())+"/models", err)
		return false
	}
	for _, m := range list.GetData() {
		if m.GetId() == "" {
			continue
		}
		res.Models = append(res.Models, &nodev1.ModelInfo{
			Id: m.GetId(), Loaded: loaded, Created: m.GetCreated(), OwnedBy: m.GetOwnedBy(),
		})
	}
	return true
}

// httpStatus is the node's HTTP status in err, 0 when it did not answer.
func httpStatus(err error) int {
	if e, ok := apierror.FromError(err); ok {
		return e.HTTPStatus
	}
	return 0
}

// prefix is the start of a reason: the kind and, when known, its version.
func prefix(kind nodev1.Kind, version string) string {
	if version == "" {
		return KindName(kind)
	}
	return KindName(kind) + " " + version
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
