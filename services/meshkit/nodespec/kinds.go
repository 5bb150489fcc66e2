package nodespec

import (
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// Kinds maps the kind names that describe a node — the nodes file's kind,
// Consul's llmesh-kind, the CLI's -kind, the router's -limits — to node
// kinds.
var Kinds = map[string]nodev1.Kind{
	"ollama":    nodev1.Kind_KIND_OLLAMA,
	"openai":    nodev1.Kind_KIND_OPENAI,
	"vllm":      nodev1.Kind_KIND_VLLM,
	"llamacpp":  nodev1.Kind_KIND_LLAMACPP,
	"lmstudio":  nodev1.Kind_KIND_LMSTUDIO,
	"anthropic": nodev1.Kind_KIND_ANTHROPIC,
}

// KindAuto is the kind name of a node whose kind the adapter's probe
// recognises from its answers (Node.recognize_kind), and what a node
// described without a kind gets: until then it is an openai node, its URL
// the API base.
const KindAuto = "auto"

// KindChoices lists the kind names ParseKind accepts, for messages.
const KindChoices = "auto (or none), ollama, openai, vllm, llamacpp, lmstudio or anthropic"

// ParseKind reads a kind name: one of Kinds, or KindAuto or "" for a node
// whose kind is recognised (kind openai until then, recognize true). ok
// is false for any other name. Names are case-sensitive; callers that
// accept other cases lower them first.
func ParseKind(name string) (kind nodev1.Kind, recognize, ok bool) {
	if name == "" || name == KindAuto {
		return nodev1.Kind_KIND_OPENAI, true, true
	}
	kind, ok = Kinds[name]
	return kind, false, ok
}

// KindName is k's name in Kinds ("vllm", "llamacpp"); a kind without one
// is its enum name without the KIND_ prefix, in lower case.
func KindName(k nodev1.Kind) string {
	for name, kind := range Kinds {
		if kind == k {
			return name
		}
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

// KindOf is the kind name describing n: KindAuto for a node whose kind is
// recognised, else KindName of its kind.
func KindOf(n *nodev1.Node) string {
	if n.GetRecognizeKind() {
		return KindAuto
	}
	return KindName(n.GetKind())
}
