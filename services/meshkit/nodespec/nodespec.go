// Package nodespec checks how a node is reached — its URL, TLS files and
// extra headers, and the names of the environment variables holding its
// secrets — and its routing settings (in-flight cap, parallelism, group),
// the same way wherever a node is described: the nodes file,
// Consul, the `llmesh node` CLI and the adapter. Messages name the field
// (as the nodes file spells it) and never quote what might be a secret.
// It is also the one vocabulary of node kinds (Kinds, ParseKind,
// KindName, KindOf) that all of those, the router's limits and the
// adapter's messages spell kinds with.
package nodespec

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
)

// MaxHeaderValue is the longest header value accepted (Consul's limit on
// a Meta value).
const MaxHeaderValue = 512

// MaxCount bounds max_in_flight and num_parallel.
const MaxCount = 1 << 20

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,99}$`)
	groupName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// ValidEnvName reports whether s can name an environment variable.
func ValidEnvName(s string) bool { return envName.MatchString(s) }

// ownHeaders are headers the adapter or Go's HTTP client sets itself, or
// that only mean something between two hops: a node may not override
// them. Authorization is in the list only for nodes with api_key_env.
var ownHeaders = []string{
	"Accept", "Accept-Encoding", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
	"Host", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Normalize checks n as a registry (nodes file, Consul, CLI) reads it and
// returns a copy in canonical form: the base URL as nodeurl.ForKind gives
// it for the node's kind, header names in canonical case and sorted. Every problem is
// reported at once.
func Normalize(n *nodev1.Node) (*nodev1.Node, error) {
	out := proto.CloneOf(n)
	var errs []error
	scheme := "https" // when the URL is bad, its scheme raises no more errors
	if u, err := nodeurl.ForKind(n.GetBaseUrl(), n.GetKind()); err != nil {
		errs = append(errs, err)
	} else {
		out.BaseUrl, scheme = u.String(), u.Scheme
	}
	for _, h := range out.GetHeaders() {
		h.Name = http.CanonicalHeaderKey(h.GetName())
	}
	slices.SortStableFunc(out.Headers, func(a, b *nodev1.Header) int { return strings.Compare(a.GetName(), b.GetName()) })
	if err := errors.Join(append(errs, checkRest(out, scheme)...)...); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate checks n as the adapter receives it: the base URL as it is
// (nodeurl.Parse), the TLS settings and the headers.
func Validate(n *nodev1.Node) error {
	u, err := nodeurl.Parse(n.GetBaseUrl())
	if err != nil {
		return errors.Join(append([]error{err}, checkRest(n, "https")...)...)
	}
	return errors.Join(checkRest(n, u.Scheme)...)
}

func checkRest(n *nodev1.Node, scheme string) []error {
	var errs []error
	if v := n.GetApiKeyEnv(); v != "" && !ValidEnvName(v) {
		// Not quoted: it may be a key pasted by mistake.
		errs = append(errs, errors.New("api_key_env: not an environment variable name (give the variable's name, never the key)"))
	}
	errs = append(errs, checkTLS(n, scheme)...)
	errs = append(errs, checkRouting(n)...)
	seen := map[string]bool{}
	for _, h := range n.GetHeaders() {
		if err := CheckHeader(h, n.GetApiKeyEnv() != ""); err != nil {
			errs = append(errs, err)
			continue
		}
		name := http.CanonicalHeaderKey(h.GetName())
		if seen[name] {
			errs = append(errs, fmt.Errorf("header %s: given twice", name))
		}
		seen[name] = true
	}
	return errs
}

func checkRouting(n *nodev1.Node) []error {
	var errs []error
	if v := n.GetMaxInFlight(); v < 0 || v > MaxCount {
		errs = append(errs, fmt.Errorf("max_in_flight %d: want 0 (the kind's default) to %d", v, MaxCount))
	}
	if v := n.GetNumParallel(); v < 0 || v > MaxCount {
		errs = append(errs, fmt.Errorf("num_parallel %d: want 0 (unknown) to %d", v, MaxCount))
	}
	if g := n.GetGroup(); g != "" && !groupName.MatchString(g) {
		errs = append(errs, fmt.Errorf("group %q: want 1-64 letters, digits, '.', '_' or '-'", g))
	}
	return errs
}

func checkTLS(n *nodev1.Node, scheme string) []error {
	var errs []error
	hasTLS := n.GetTlsCaFile() != "" || n.GetTlsCertFile() != "" || n.GetTlsKeyFile() != "" ||
		n.GetTlsInsecureSkipVerify() || n.GetTlsServerName() != ""
	if hasTLS && scheme != "https" {
		errs = append(errs, errors.New("tls settings need an https url"))
	}
	if (n.GetTlsCertFile() == "") != (n.GetTlsKeyFile() == "") {
		errs = append(errs, errors.New("tls_cert_file and tls_key_file: give both (mutual TLS) or neither"))
	}
	if n.GetTlsInsecureSkipVerify() && n.GetTlsCaFile() != "" {
		errs = append(errs, errors.New("tls_insecure_skip_verify and tls_ca_file: a CA bundle means nothing when verification is off; give one"))
	}
	for field, path := range map[string]string{
		"tls_ca_file": n.GetTlsCaFile(), "tls_cert_file": n.GetTlsCertFile(), "tls_key_file": n.GetTlsKeyFile(),
	} {
		if strings.ContainsAny(path, "\n\r\x00") || strings.Contains(path, "-----BEGIN") {
			// Not quoted: it may be a key's contents pasted by mistake.
			errs = append(errs, fmt.Errorf("%s: want the path of a PEM file on the adapter's machine, never its contents", field))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// CheckHeader checks one extra header: a plain name that is not one the
// adapter owns, and exactly one of a value without line breaks or the name
// of an environment variable. withAPIKey says the node has api_key_env,
// whose Authorization header cannot then be overridden.
func CheckHeader(h *nodev1.Header, withAPIKey bool) error {
	name := h.GetName()
	if !headerName.MatchString(name) {
		return fmt.Errorf("header %q: want a name of letters, digits and '-'", name)
	}
	canon := http.CanonicalHeaderKey(name)
	if slices.Contains(ownHeaders, canon) {
		return fmt.Errorf("header %s: set by the adapter itself; it cannot be overridden", canon)
	}
	if canon == "Authorization" && withAPIKey {
		return errors.New("header Authorization: the node has api_key_env, which sets it; give one or the other")
	}
	switch {
	case h.GetValue() != "" && h.GetValueEnv() != "":
		return fmt.Errorf("header %s: give a value or an env variable, not both", canon)
	case h.GetValueEnv() != "":
		if !ValidEnvName(h.GetValueEnv()) {
			return fmt.Errorf("header %s: env: not an environment variable name", canon)
		}
	case h.GetValue() == "":
		return fmt.Errorf("header %s: empty value", canon)
	case len(h.GetValue()) > MaxHeaderValue:
		return fmt.Errorf("header %s: value longer than %d bytes", canon, MaxHeaderValue)
	case strings.ContainsFunc(h.GetValue(), func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }):
		return fmt.Errorf("header %s: value has control characters (line breaks)", canon)
	}
	return nil
}
