// Package nodetrust decides what the adapter may send where. A node's
// description (from Consul, the nodes file or a router's request) only
// names things; whoever can write a registration is not trusted with the
// adapter's secrets. So trust comes from the adapter's own configuration
// only:
//
//   - Secrets. A node may name a variable as its API key or a header value
//     only when the adapter binds that variable to the node's host:
//     -secret-env NAME=HOST[,HOST…]; the adapter's own nodes file (each
//     variable a node there names is bound to that node's host);
//     OPENAI_API_KEY to the host of OPENAI_BASE_URL when the adapter has
//     both. Any other variable, or a bound one for another host, is
//     refused and nothing is sent.
//   - Addresses. A node is connected to only when the address it resolves
//     to, at connect time, is in the allowlist (-node-allow: default
//     loopback and the private ranges), or its host was named by the
//     operator (-node-allow, -secret-env, the nodes file,
//     OPENAI_BASE_URL, the proxy of HTTP_PROXY/HTTPS_PROXY). The
//     operator's proxy is checked the same way, when it is dialled, so
//     a proxy name that resolves to a metadata address is refused too.
//     Link-local and cloud-metadata addresses
//     (169.254.0.0/16, fe80::/10, fd00:ec2::254, and 0.0.0.0) pass only an
//     -node-allow entry that names them, whatever the host.
package nodetrust

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llmesh/llmesh/services/meshkit/nodesfile"
	"github.com/llmesh/llmesh/services/meshkit/nodeurl"
)

// Keywords of -node-allow entries.
const (
	Loopback = "loopback" // 127.0.0.0/8, ::1
	Private  = "private"  // 10/8, 172.16/12, 192.168/16, fc00::/7 (RFC 1918, RFC 4193)
)

// DefaultAllow is the allowlist when -node-allow is not given.
var DefaultAllow = []string{Loopback, Private}

// metadataV6 is the IPv6 address of AWS's instance metadata service (the
// IPv4 one, 169.254.169.254, is link-local).
var metadataV6 = netip.MustParseAddr("fd00:ec2::254")

// Config is what the operator told the adapter.
type Config struct {
	// SecretEnv binds variables to the hosts they may be sent to
	// (-secret-env).
	SecretEnv map[string][]string
	// Allow is the allowlist (-node-allow): loopback, private, IP
	// addresses, CIDR prefixes and host names. Nil means DefaultAllow.
	Allow []string
	// NodesFile is the adapter's nodes file ("" none): its nodes' hosts
	// are allowed and the variables each names are bound to its host. It
	// is read again when it changes.
	NodesFile string
	// OpenAIBaseURL is the adapter's OPENAI_BASE_URL: its host is allowed
	// and OPENAI_API_KEY is bound to it.
	OpenAIBaseURL string
}

// Policy applies a Config. It is safe for concurrent use.
type Policy struct {
	secrets  map[string]map[string]bool // variable -> hosts
	names    map[string]bool            // hosts named by the operator
	loopback bool
	private  bool
	nets     []netip.Prefix
	file     *nodesFileTrust // nil without a nodes file
	proxies  sync.Map        // hosts of the operator's proxies (HTTP_PROXY …): named by the operator
}

// ParseSecretEnv reads one -secret-env value, NAME=HOST[,HOST…].
func ParseSecretEnv(v string) (string, []string, error) {
	name, list, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(list) == "" {
		return "", nil, fmt.Errorf("%q: want NAME=HOST[,HOST…]", v)
	}
	if strings.ContainsFunc(name, func(r rune) bool {
		return r != '_' && (r < '0' || r > '9') && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z')
	}) {
		return "", nil, fmt.Errorf("%q: %s is not a variable name", v, name)
	}
	var hosts []string
	for h := range strings.SplitSeq(list, ",") {
		host, err := canonicalHost(h)
		if err != nil {
			return "", nil, fmt.Errorf("%q: %w", v, err)
		}
		hosts = append(hosts, host)
	}
	return name, hosts, nil
}

// canonicalHost is a host name (lower case) or an IP address as
// meshkit/nodeurl writes it.
func canonicalHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.TrimSpace(h), ".")
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil && a.Zone() == "" {
		return a.Unmap().String(), nil
	}
	if h == "" || strings.ContainsAny(h, "/:@?#[]") {
		return "", fmt.Errorf("%q is not a host (no scheme, port or path)", h)
	}
	u, err := nodeurl.Parse("http://" + h)
	if err != nil || u.Path != "" {
		return "", fmt.Errorf("%q is not a host (no scheme, port or path)", h)
	}
	return u.Host, nil
}

// ParseAllow checks one -node-allow entry.
func ParseAllow(v string) error {
	_, _, err := parseAllow(v)
	return err
}

// parseAllow reads an entry: a prefix, or a host name.
func parseAllow(v string) (netip.Prefix, string, error) {
	v = strings.TrimSpace(v)
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), "", nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	host, err := canonicalHost(v)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q: want %s, %s, an IP address, a CIDR prefix or a host name", v, Loopback, Private)
	}
	return netip.Prefix{}, host, nil
}

// New checks c and returns its policy, reporting every problem at once.
func New(c Config) (*Policy, error) {
	p := &Policy{secrets: map[string]map[string]bool{}, names: map[string]bool{}}
	var errs []error
	for name, hosts := range c.SecretEnv {
		for _, h := range hosts {
			host, err := canonicalHost(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("secret %s: %w", name, err))
				continue
			}
			p.bind(name, host)
		}
	}
	allow := c.Allow
	if allow == nil {
		allow = DefaultAllow
	}
	for _, e := range allow {
		switch e = strings.ToLower(strings.TrimSpace(e)); e {
		case Loopback:
			p.loopback = true
		case Private:
			p.private = true
		default:
			prefix, host, err := parseAllow(e)
			switch {
			case err != nil:
				errs = append(errs, err)
			case host != "":
				p.names[host] = true
			default:
				p.nets = append(p.nets, prefix)
			}
		}
	}
	if c.OpenAIBaseURL != "" {
		if u, err := nodeurl.Parse(c.OpenAIBaseURL); err == nil {
			p.bind("OPENAI_API_KEY", u.Host)
		}
	}
	if c.NodesFile != "" {
		p.file = &nodesFileTrust{path: c.NodesFile}
		if err := p.file.load(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Policy) bind(name, host string) {
	if p.secrets[name] == nil {
		p.secrets[name] = map[string]bool{}
	}
	p.secrets[name][host] = true
	p.names[host] = true
}

// Secret says whether the variable name may be sent to host (a node URL's
// host as meshkit/nodeurl parses it). The error names the variable and
// the host, never a value.
func (p *Policy) Secret(name, host string) error {
	if p.secrets[name][host] {
		return nil
	}
	var fileHosts map[string]bool
	if p.file != nil {
		fileSecrets, _ := p.file.current()
		if fileSecrets[name][host] {
			return nil
		}
		fileHosts = fileSecrets[name]
	}
	bound := slices.Sorted(func(yield func(string) bool) {
		for h := range p.secrets[name] {
			if !yield(h) {
				return
			}
		}
		for h := range fileHosts {
			if !p.secrets[name][h] && !yield(h) {
				return
			}
		}
	})
	return &SecretError{Name: name, Host: host, Bound: bound}
}

// SecretError is a variable a node names that the adapter may not send
// to the node's host.
type SecretError struct {
	Name  string   // the variable
	Host  string   // the node's host
	Bound []string // the hosts it may be sent to; none: it is no secret the adapter may send
}

func (e *SecretError) Error() string {
	if len(e.Bound) == 0 {
		return fmt.Sprintf("%s is not a secret the adapter may send (bind it to its hosts with the adapter's -secret-env %s=HOST, or name it in the adapter's nodes file); nothing is sent to %s", e.Name, e.Name, e.Host)
	}
	return fmt.Sprintf("secret %s may only be sent to %s, not to %s (the adapter's -secret-env); nothing is sent", e.Name, strings.Join(e.Bound, ", "), e.Host)
}

// IsRefusal says whether err is (or wraps) a refusal of this package: a
// secret for a host it is not bound to, or an address not allowed.
func IsRefusal(err error) bool {
	var se *SecretError
	var re *RefusedError
	return errors.As(err, &se) || errors.As(err, &re)
}

// named says whether the operator named host: -node-allow, a bound
// secret, OPENAI_BASE_URL, the nodes file or a proxy's URL.
func (p *Policy) named(host string) bool {
	if host, err := canonicalHost(host); err == nil {
		if p.names[host] {
			return true
		}
		if _, ok := p.proxies.Load(host); ok {
			return true
		}
		if p.file != nil {
			_, hosts := p.file.current()
			return hosts[host]
		}
	}
	return false
}

// RefusedError is an address the allowlist refuses.
type RefusedError struct {
	Host string     // the node's host
	Addr netip.Addr // what it resolved to
	Why  string
}

func (e *RefusedError) Error() string {
	at := e.Host
	if e.Addr.String() != e.Host {
		at = fmt.Sprintf("%s (%s)", e.Host, e.Addr)
	}
	return fmt.Sprintf("address %s refused by the adapter's node allowlist (-node-allow): %s; nothing is sent", at, e.Why)
}

// special are the addresses that pass only an entry naming them.
func special(a netip.Addr) bool {
	return a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || a == metadataV6
}

// names says whether the allowlist entry n names special addresses: it
// lies within a link-local range (169.254.0.0/16, fe80::/10) or is one
// special address.
func names(n netip.Prefix) bool {
	if n.IsSingleIP() {
		return special(n.Addr())
	}
	if n.Addr().Is4() {
		return n.Bits() >= 16 && n.Addr().IsLinkLocalUnicast()
	}
	return n.Bits() >= 10 && n.Addr().IsLinkLocalUnicast()
}

// Addr says whether the adapter may connect to a, which host resolved to.
func (p *Policy) Addr(host string, a netip.Addr) error {
	a = a.Unmap()
	for _, n := range p.nets {
		if !n.Contains(a) {
			continue
		}
		// A link-local or metadata address needs an entry naming it, not
		// a wide range that happens to hold it (0.0.0.0/0).
		if !special(a) || names(n) {
			return nil
		}
	}
	switch {
	case special(a):
		return &RefusedError{Host: host, Addr: a, Why: "link-local and cloud-metadata addresses are allowed only when -node-allow names them"}
	case p.loopback && a.IsLoopback(), p.private && a.IsPrivate(), p.named(host):
		return nil
	}
	return &RefusedError{Host: host, Addr: a, Why: "not in an allowed network, and the host is not one the operator named"}
}

// Host checks a node's host before anything is dialled: an IP address is
// checked as it is; a name is checked at connect time, with what it
// resolves to then (see Dialer).
func (p *Policy) Host(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Addr(host, a)
	}
	return nil
}

// Dialer returns a DialContext that dials with base, checking each
// address the host resolves to right before connecting to it, so that a
// name that resolves to another address later (DNS rebinding) is checked
// again. A refused address is never connected to. The operator's proxy
// is dialled through it too: its host counts as named (see Proxy).
func (p *Policy) Dialer(base net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := base
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Host: host, Why: "not an IP address: " + address}
			}
			return p.Addr(host, ap.Addr())
		}
		return d.DialContext(ctx, network, addr)
	}
}

// Proxy wraps an http.Transport's Proxy func (HTTP_PROXY and friends,
// the operator's): a request that goes through a proxy has its host
// checked here, resolved now, as the proxy connects to it. The proxy's
// host counts as named by the operator from then on, and the proxy is
// dialled through Dialer like a node: whatever it resolves to is allowed
// but a link-local or metadata address, which only a -node-allow entry
// naming it lets through.
func (p *Policy) Proxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		proxy, err := next(req)
		if err != nil || proxy == nil {
			return proxy, err
		}
		host := req.URL.Hostname()
		addrs := []netip.Addr{}
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = append(addrs, a)
		} else if addrs, err = net.DefaultResolver.LookupNetIP(req.Context(), "ip", host); err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if err := p.Addr(host, a); err != nil {
				return nil, err
			}
		}
		if h, err := canonicalHost(proxy.Hostname()); err == nil {
			p.proxies.Store(h, true)
		}
		return proxy, nil
	}
}

// nodesFileTrust is what the adapter's nodes file binds and allows, read
// again when the file changes (checked at most once a second).
type nodesFileTrust struct {
	path string

	mu      sync.Mutex
	checked time.Time
	mod     time.Time
	size    int64
	secrets map[string]map[string]bool
	hosts   map[string]bool
}

const recheck = time.Second

// load reads the file.
func (f *nodesFileTrust) load() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("nodes file: %w", err)
	}
	nodes, err := nodesfile.Load(f.path)
	if err != nil {
		return err
	}
	secrets, hosts := map[string]map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		u, err := nodeurl.Parse(n.GetBaseUrl())
		if err != nil {
			continue // Load has checked it
		}
		hosts[u.Host] = true
		bind := func(name string) {
			if name == "" {
				return
			}
			if secrets[name] == nil {
				secrets[name] = map[string]bool{}
			}
			secrets[name][u.Host] = true
		}
		bind(n.GetApiKeyEnv())
		for _, h := range n.GetHeaders() {
			bind(h.GetValueEnv())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets, f.hosts, f.mod, f.size, f.checked = secrets, hosts, st.ModTime(), st.Size(), time.Now()
	return nil
}

// current returns what the file binds and allows, reading it again when
// it changed. A file that no longer loads leaves the last good one.
func (f *nodesFileTrust) current() (map[string]map[string]bool, map[string]bool) {
	f.mu.Lock()
	stale := time.Since(f.checked) >= recheck
	if stale {
		f.checked = time.Now()
		if st, err := os.Stat(f.path); err == nil && (!st.ModTime().Equal(f.mod) || st.Size() != f.size) {
			f.mu.Unlock()
			_ = f.load()
			f.mu.Lock()
		}
	}
	defer f.mu.Unlock()
	return f.secrets, f.hosts
}
