// Package nodeurl is the one parser of LLM node URLs: the nodes file,
// OPENAI_BASE_URL, Consul registrations, the `llmesh node` CLI and the
// adapter all read a node's URL through it, so a URL one of them accepts
// means the same thing to the others.
//
// Accepted forms (surrounding white space and trailing slashes are
// ignored, scheme and host name are case-insensitive):
//
//	host:port                     http://host:port
//	http://host                   port 80
//	https://host                  port 443
//	http://host:port/prefix       path prefix kept, e.g. /v1 or /ollama
//	[::1]:11434, http://[::1]     IPv6 literals in brackets
//
// Everything else is rejected with an error that quotes the value (with
// any credentials masked) and says what is wrong: credentials in the URL,
// a query or fragment, a scheme other than http or https, an empty or
// malformed host, a port outside 1-65535, white space, "." or ".." path
// segments.
package nodeurl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// MaxLen is the longest URL accepted.
const MaxLen = 2048

// URL is a parsed node URL.
type URL struct {
	Scheme string // "http" or "https"
	Host   string // host name (lower case) or IP address, without brackets
	Port   int    // the explicit port, or the scheme's default
	Path   string // "" or a prefix such as "/v1", never ending in "/"
}

// HostPort is host:port, with IPv6 addresses in brackets.
func (u URL) HostPort() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// DefaultPort is the port of scheme when a URL names none.
func DefaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// StdURL is u as a *url.URL (a new one each call), the scheme's default
// port left out.
func (u URL) StdURL() *url.URL {
	host := u.HostPort()
	if u.Port == DefaultPort(u.Scheme) {
		host = u.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: host, Path: u.Path}
}

// String is the canonical form of u: scheme://host[:port][/path], the
// scheme's default port left out. Parse(u.String()) gives u back.
func (u URL) String() string { return u.StdURL().String() }

// Parse parses a node URL in any of the accepted forms.
func Parse(raw string) (URL, error) {
	if strings.TrimSpace(raw) == "" {
		return URL{}, errors.New("url is required")
	}
	u, err := parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("url %q: %w", quotable(raw), err)
	}
	return u, nil
}

// ForKind parses raw as the base URL of a node of kind:
//
//   - KIND_OPENAI: the API base, as in OPENAI_BASE_URL (the requests go to
//     <base>/chat/completions, <base>/models). With no path at all the
//     base is <root>/v1, where every OpenAI-compatible server has it.
//   - every other kind: the server root; the adapter adds the paths
//     (/v1/chat/completions, /api/tags, …). A trailing /v1, as people
//     copy it from an OpenAI-style set-up, is dropped; another prefix (a
//     reverse proxy's /ollama) is kept.
func ForKind(raw string, kind nodev1.Kind) (URL, error) {
	u, err := Parse(raw)
	if err != nil {
		return URL{}, err
	}
	if kind == nodev1.Kind_KIND_OPENAI {
		if u.Path == "" {
			u.Path = "/v1"
		}
		return u, nil
	}
	u.Path = strings.TrimSuffix(u.Path, "/v1")
	return u, nil
}

func parse(raw string) (URL, error) {
	s := strings.TrimSpace(raw)
	switch {
	case len(s) > MaxLen:
		return URL{}, fmt.Errorf("longer than %d characters", MaxLen)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return URL{}, errors.New("contains white space or control characters")
	}
	schemeless := !strings.Contains(s, "://")
	if schemeless {
		lower := strings.ToLower(s)
		for _, p := range []string{"http:", "https:"} {
			if strings.HasPrefix(lower, p) {
				return URL{}, fmt.Errorf("want %s//host after the scheme", p)
			}
		}
		if strings.HasPrefix(s, "//") {
			return URL{}, errors.New("no scheme: want http://host, https://host or host:port")
		}
		if hostPart, _, _ := strings.Cut(s, "/"); !strings.HasPrefix(hostPart, "[") && strings.Count(hostPart, ":") > 1 {
			return URL{}, errors.New("an IPv6 address must be in brackets, e.g. [::1]:11434")
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			// url.Parse's message quotes parts of the authority, which
			// here holds user information: a key, maybe.
			return URL{}, errors.New("malformed URL; and credentials do not belong in a node URL: name the environment variable holding the key in api_key_env")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		return URL{}, err
	}
	switch {
	case u.User != nil:
		return URL{}, errors.New("credentials do not belong in a node URL: name the environment variable holding the key in api_key_env")
	case u.Scheme != "http" && u.Scheme != "https":
		return URL{}, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.Opaque != "":
		return URL{}, fmt.Errorf("want %s://host", u.Scheme)
	case u.RawQuery != "" || u.ForceQuery:
		return URL{}, errors.New("a query (?…) does not belong in a node URL")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return URL{}, errors.New("a fragment (#…) does not belong in a node URL")
	}
	out := URL{Scheme: u.Scheme}
	if out.Host, err = checkHost(u); err != nil {
		return URL{}, err
	}
	if out.Port, err = checkPort(u, schemeless); err != nil {
		return URL{}, err
	}
	if out.Path, err = checkPath(u.Path); err != nil {
		return URL{}, err
	}
	return out, nil
}

func checkHost(u *url.URL) (string, error) {
	host := u.Hostname()
	if host == "" {
		return "", errors.New("no host")
	}
	if strings.HasPrefix(u.Host, "[") {
		addr, err := netip.ParseAddr(host)
		switch {
		case err != nil || !addr.Is6():
			return "", fmt.Errorf("host [%s] is not an IPv6 address", host)
		case addr.Zone() != "":
			return "", errors.New("IPv6 zones (%eth0) are not supported")
		}
		return addr.String(), nil
	}
	if looksNumeric(host) {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is4() {
			return "", fmt.Errorf("host %s is not an IPv4 address", host)
		}
		return addr.String(), nil
	}
	if len(host) > 253 {
		return "", errors.New("host name longer than 253 characters")
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "", fmt.Errorf("host %q is not a valid host name", host)
		}
		for _, r := range label {
			if !hostRune(r) {
				return "", fmt.Errorf("host %q is not a valid host name", host)
			}
		}
	}
	return strings.ToLower(host), nil
}

// looksNumeric: digits and dots only, which DNS names never are.
func looksNumeric(host string) bool {
	return strings.Trim(host, "0123456789.") == ""
}

func checkPort(u *url.URL, schemeless bool) (int, error) {
	p := u.Port()
	if p == "" {
		switch {
		case strings.HasSuffix(u.Host, ":"):
			return 0, errors.New("empty port after ':'")
		case schemeless:
			return 0, errors.New("no scheme and no port: want http://host, https://host or host:port")
		}
		return DefaultPort(u.Scheme), nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s: want 1-65535", p)
	}
	return n, nil
}

func checkPath(p string) (string, error) {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "", nil
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch seg {
		case "":
			return "", fmt.Errorf("path %q has an empty segment (//)", p)
		case ".", "..":
			return "", fmt.Errorf("path %q has a %q segment", p, seg)
		}
	}
	return p, nil
}

// quotable is raw fit to appear in an error: trimmed, with anything that
// may be a secret masked — user information (up to the last "@", wherever
// it is: a password may hold "/", "?" or "#"), a query (keys are passed
// there too) and a fragment — and overlong values cut.
func quotable(raw string) string {
	s := strings.TrimSpace(raw)
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	if at := strings.LastIndex(s[start:], "@"); at >= 0 {
		s = s[:start] + "***" + s[start+at:]
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i+1] + "…"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// hostRune says whether r may appear in a host name's label.
func hostRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}
