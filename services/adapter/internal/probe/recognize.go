package probe

import (
	"context"
	"encoding/json"
	"slices"

	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/adapter/internal/nodeconn"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
)

// signature is how a kind of server is recognised from its answers: a
// URL below the server root that only that kind answers that way, and
// the owned_by its OpenAI-compatible model list gives its models (a hint
// of which signature to try first).
type signature struct {
	kind  nodev1.Kind
	path  string
	owner string
	match func(body []byte) bool
}

// signatures in the order they are tried when no model names its owner.
var signatures = []signature{
	{nodev1.Kind_KIND_OLLAMA, "/api/version", "library", hasVersion},
	{nodev1.Kind_KIND_VLLM, "/version", "vllm", hasVersion},
	{nodev1.Kind_KIND_LLAMACPP, "/props", "llamacpp", isLlamaProps},
	{nodev1.Kind_KIND_LMSTUDIO, "/api/v0/models", "organization_owner", isLMStudioModels},
}

// recognizable reports whether a node of kind k may be recognised as
// another kind: a belief in one of the kinds recognition can tell apart.
func recognizable(k nodev1.Kind) bool {
	return k == nodev1.Kind_KIND_OPENAI || slices.ContainsFunc(signatures, func(s signature) bool { return s.kind == k })
}

// probeRecognizing probes a node whose kind is to be recognised
// (recognize_kind); its kind is the belief so far — KIND_OPENAI, or
// what it was recognised as before. It asks the server root for each
// kind's signature URL, the belief's first (for KIND_OPENAI: the kind its
// models' owned_by names), and probes the node as the first kind whose
// signature matches, naming it in recognized_kind with the base URL for
// that kind. When none matches, a node whose OpenAI-compatible model list
// answers is recognised as KIND_OPENAI. When the node does not answer at
// all, or only the belief's own probe can say something (a llama-server
// still loading answers 503 everywhere), the result is the belief's probe
// and recognized_kind stays unspecified: the probe could not tell.
func (p *Prober) probeRecognizing(ctx context.Context, n *nodev1.Node, conn *nodeconn.Client) *nodev1.ProbeResult {
	belief := n.GetKind()
	var asBelief *nodev1.ProbeResult
	owner := ""
	if belief == nodev1.Kind_KIND_OPENAI {
		// The model list the OpenAI probe reads anyway says who owns the
		// models: Ollama's are "library", vLLM's "vllm", …
		asBelief = probeOpenAI(p, ctx, conn)
		for _, m := range asBelief.GetModels() {
			if m.GetOwnedBy() != "" {
				owner = m.GetOwnedBy()
				break
			}
		}
	}
	order := slices.Clone(signatures)
	slices.SortStableFunc(order, func(a, b signature) int {
		return rank(b, belief, owner) - rank(a, belief, owner)
	})
	for _, sig := range order {
		cand, cconn, ok := p.candidate(n, sig.kind)
		if !ok {
			continue
		}
		body, err := get(ctx, cconn, sig.path, "application/json")
		if err != nil {
			if httpStatus(err) == 0 {
				// No answer at all (refused, timed out): nothing to tell
				// from; the belief's probe says why.
				return orProbe(asBelief, func() *nodev1.ProbeResult { return kinds[belief](p, ctx, conn) })
			}
			continue // answered, but not as this kind
		}
		if !sig.match(body) {
			continue
		}
		res := kinds[sig.kind](p, ctx, cconn)
		res.RecognizedKind = sig.kind
		res.RecognizedBaseUrl = cand.GetBaseUrl()
		return res
	}
	if belief != nodev1.Kind_KIND_OPENAI {
		// Recognised before, but no signature answers now.
		res := kinds[belief](p, ctx, conn)
		if res.GetUp() || res.GetStatus() != nodev1.Status_STATUS_UNSPECIFIED {
			return res // still that kind (loading, or refusing the key)
		}
		cand, cconn, ok := p.candidate(n, nodev1.Kind_KIND_OPENAI)
		if !ok {
			return res
		}
		if generic := probeOpenAI(p, ctx, cconn); generic.GetUp() {
			generic.RecognizedKind = nodev1.Kind_KIND_OPENAI
			generic.RecognizedBaseUrl = cand.GetBaseUrl()
			return generic
		}
		return res
	}
	if asBelief.GetUp() {
		asBelief.RecognizedKind = nodev1.Kind_KIND_OPENAI
		asBelief.RecognizedBaseUrl = n.GetBaseUrl()
	}
	return asBelief
}

// rank orders signatures: the belief's own first, then the one its
// models' owner names, then the rest in their order.
func rank(s signature, belief nodev1.Kind, owner string) int {
	switch {
	case s.kind == belief:
		return 2
	case owner != "" && s.owner == owner:
		return 1
	}
	return 0
}

func orProbe(res *nodev1.ProbeResult, probe func() *nodev1.ProbeResult) *nodev1.ProbeResult {
	if res != nil {
		return res
	}
	return probe()
}

// candidate is n as a node of kind k: its base URL as meshkit/nodeurl
// reads it for k (the server root for every kind but KIND_OPENAI, whose
// base is the API base), and the client for it.
func (p *Prober) candidate(n *nodev1.Node, k nodev1.Kind) (*nodev1.Node, *nodeconn.Client, bool) {
	u, err := nodeurl.ForKind(n.GetBaseUrl(), k)
	if err != nil {
		return nil, nil, false
	}
	cand := proto.CloneOf(n)
	cand.Kind, cand.BaseUrl, cand.RecognizeKind = k, u.String(), false
	conn, err := p.pool.Client(cand)
	if err != nil {
		return nil, nil, false
	}
	return cand, conn, true
}

// hasVersion: {"version": "0.17.4"}, Ollama's /api/version and vLLM's
// /version.
func hasVersion(body []byte) bool {
	var v struct {
		Version *string `json:"version"`
	}
	return json.Unmarshal(body, &v) == nil && v.Version != nil && *v.Version != ""
}

// isLlamaProps: llama-server's /props, the server's settings.
func isLlamaProps(body []byte) bool {
	var v map[string]json.RawMessage
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	_, settings := v["default_generation_settings"]
	_, slots := v["total_slots"]
	return settings || slots
}

// isLMStudioModels: LM Studio's /api/v0/models, each model with its type
// and state.
func isLMStudioModels(body []byte) bool {
	var v struct {
		Data *[]map[string]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &v) != nil || v.Data == nil {
		return false
	}
	for _, m := range *v.Data {
		_, typ := m["type"]
		_, state := m["state"]
		if !typ || !state {
			return false
		}
	}
	return true
}
