package nodetrust

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSecretEnv(t *testing.T) {
	for _, tc := range []struct {
		in    string
		name  string
		hosts []string
		err   string
	}{
		{in: "OPENAI_API_KEY=api.openai.com", name: "OPENAI_API_KEY", hosts: []string{"api.openai.com"}},
		{in: "K=API.Example.COM., 10.0.0.5 ,[::1]", name: "K", hosts: []string{"api.example.com", "10.0.0.5", "::1"}},
		{in: "K", err: "want NAME=HOST"},
		{in: "K=", err: "want NAME=HOST"},
		{in: "=h", err: "want NAME=HOST"},
		{in: "K-1=h", err: "is not a variable name"},
		{in: "K=https://api.openai.com", err: "is not a host"},
		{in: "K=api.openai.com:443", err: "is not a host"},
		{in: "K=a,,b", err: "is not a host"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			name, hosts, err := ParseSecretEnv(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.name, name)
			assert.Equal(t, tc.hosts, hosts)
		})
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	nodes := filepath.Join(dir, "nodes.yaml")
	require.NoError(t, os.WriteFile(nodes, []byte(`nodes:
  - id: gpu-1
    kind: vllm
    url: http://gpu-1.lan:8000
    api_key_env: GPU1_KEY
    headers:
      X-Org: {env: GPU1_ORG}
`), 0o600))
	p, err := New(Config{
		SecretEnv:     map[string][]string{"GROQ_KEY": {"api.groq.com"}, "SHARED": {"a.example", "b.example"}},
		NodesFile:     nodes,
		OpenAIBaseURL: "http://127.0.0.1:11434/v1",
	})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, host string
		err        string // "" allowed
	}{
		{name: "GROQ_KEY", host: "api.groq.com"},
		{name: "SHARED", host: "b.example"},
		{name: "OPENAI_API_KEY", host: "127.0.0.1"},
		{name: "GPU1_KEY", host: "gpu-1.lan"},
		{name: "GPU1_ORG", host: "gpu-1.lan"},
		{name: "CONSUL_HTTP_TOKEN", host: "127.0.0.1", err: "CONSUL_HTTP_TOKEN is not a secret the adapter may send (bind it to its hosts with the adapter's -secret-env CONSUL_HTTP_TOKEN=HOST, or name it in the adapter's nodes file); nothing is sent to 127.0.0.1"},
		{name: "GROQ_KEY", host: "evil.example", err: "secret GROQ_KEY may only be sent to api.groq.com, not to evil.example"},
		{name: "SHARED", host: "c.example", err: "secret SHARED may only be sent to a.example, b.example, not to c.example"},
		{name: "OPENAI_API_KEY", host: "evil.example", err: "secret OPENAI_API_KEY may only be sent to 127.0.0.1, not to evil.example"},
		{name: "GPU1_KEY", host: "127.0.0.1", err: "secret GPU1_KEY may only be sent to gpu-1.lan, not to 127.0.0.1"},
		{name: "GPU1_KEY", host: "gpu-1.lan.evil.example", err: "not to gpu-1.lan.evil.example"},
	} {
		t.Run(tc.name+"@"+tc.host, func(t *testing.T) {
			err := p.Secret(tc.name, tc.host)
			if tc.err == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			assert.True(t, IsRefusal(err))
		})
	}
}

// The nodes file is read again when it changes: a secret named there
// later is bound then; one no longer named is refused.
func TestSecretNodesFileChanges(t *testing.T) {
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	write := func(env string) {
		require.NoError(t, os.WriteFile(nodes, []byte("nodes:\n  - id: a\n    kind: vllm\n    url: http://10.0.0.5:8000\n    api_key_env: "+env+"\n"), 0o600))
	}
	write("OLD_KEY")
	p, err := New(Config{NodesFile: nodes})
	require.NoError(t, err)
	require.NoError(t, p.Secret("OLD_KEY", "10.0.0.5"))
	require.Error(t, p.Secret("NEW_KEY", "10.0.0.5"))
	write("NEW_KEY_LONGER") // another size: noticed even within the same mtime tick
	require.Eventually(t, func() bool { return p.Secret("NEW_KEY_LONGER", "10.0.0.5") == nil }, 5*time.Second, 50*time.Millisecond)
	assert.Error(t, p.Secret("OLD_KEY", "10.0.0.5"))
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{
		SecretEnv: map[string][]string{"K": {"http://x"}},
		Allow:     []string{"loopback", "10.0.0.0/33", "not a host"},
		NodesFile: filepath.Join(t.TempDir(), "missing.yaml"),
	})
	require.Error(t, err)
	for _, want := range []string{"secret K", `"10.0.0.0/33"`, `"not a host"`, "nodes file"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow []string // nil: the default
		host  string
		addr  string
		ok    bool
	}{
		{name: "loopback v4", host: "localhost", addr: "127.0.0.1", ok: true},
		{name: "loopback v6", host: "localhost", addr: "::1", ok: true},
		{name: "private 10", host: "gpu-1.lan", addr: "10.1.2.3", ok: true},
		{name: "private 172.16", host: "172.20.0.4", addr: "172.20.0.4", ok: true},
		{name: "private 192.168", host: "box", addr: "192.168.1.9", ok: true},
		{name: "ula", host: "box", addr: "fd12::1", ok: true},
		{name: "v4-mapped private", host: "box", addr: "::ffff:10.0.0.1", ok: true},
		{name: "public", host: "evil.example", addr: "203.0.113.7"},
		{name: "public v6", host: "evil.example", addr: "2001:db8::1"},
		{name: "metadata v4", host: "169.254.169.254", addr: "169.254.169.254"},
		{name: "metadata by name", host: "metadata.google.internal", addr: "169.254.169.254"},
		{name: "metadata v6 in fc00::/7", host: "box", addr: "fd00:ec2::254"},
		{name: "link-local v6", host: "box", addr: "fe80::1"},
		{name: "v4-mapped metadata", host: "box", addr: "::ffff:169.254.169.254"},
		{name: "unspecified", host: "0.0.0.0", addr: "0.0.0.0"},
		{name: "0.0.0.0/0 does not name metadata", allow: []string{"0.0.0.0/0"}, host: "x", addr: "169.254.169.254"},
		{name: "0.0.0.0/0 allows public", allow: []string{"0.0.0.0/0"}, host: "x", addr: "203.0.113.7", ok: true},
		{name: "metadata named", allow: []string{"169.254.169.254"}, host: "169.254.169.254", addr: "169.254.169.254", ok: true},
		{name: "link-local range named", allow: []string{"169.254.0.0/16"}, host: "x", addr: "169.254.1.1", ok: true},
		{name: "v6 metadata named", allow: []string{"fd00:ec2::254"}, host: "x", addr: "fd00:ec2::254", ok: true},
		{name: "allowed name, public address", allow: []string{"gpu.example.com"}, host: "gpu.example.com", addr: "203.0.113.7", ok: true},
		{name: "allowed name, rebound to metadata", allow: []string{"gpu.example.com"}, host: "gpu.example.com", addr: "169.254.169.254"},
		{name: "allowed name, other host", allow: []string{"gpu.example.com"}, host: "evil.example", addr: "203.0.113.7"},
		{name: "explicit list drops private", allow: []string{"loopback"}, host: "box", addr: "10.0.0.1"},
		{name: "explicit list keeps loopback", allow: []string{"loopback"}, host: "localhost", addr: "127.0.0.1", ok: true},
		{name: "cidr", allow: []string{"203.0.113.0/24"}, host: "x", addr: "203.0.113.7", ok: true},
		{name: "secret host is named", host: "api.openai.com", addr: "203.0.113.9", ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Config{Allow: tc.allow, SecretEnv: map[string][]string{"OPENAI_API_KEY": {"api.openai.com"}}})
			require.NoError(t, err)
			err = p.Addr(tc.host, netip.MustParseAddr(tc.addr))
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, IsRefusal(err))
			assert.Contains(t, err.Error(), "refused by the adapter's node allowlist (-node-allow)")
			assert.Contains(t, err.Error(), tc.host)
		})
	}
}

func TestHostNamesFileHosts(t *testing.T) {
	nodes := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(nodes, []byte("nodes:\n  - id: a\n    kind: vllm\n    url: http://203.0.113.5:8000\n"), 0o600))
	p, err := New(Config{NodesFile: nodes})
	require.NoError(t, err)
	assert.NoError(t, p.Host("203.0.113.5"), "a host of the nodes file")
	assert.Error(t, p.Host("203.0.113.6"))
	assert.NoError(t, p.Host("any.example"), "names are checked when dialled")
}

// The dial is refused before connecting: a listener on a refused
// address never sees a connection.
func TestDialContextRefusesBeforeConnecting(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := lis.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	p, err := New(Config{Allow: []string{"10.0.0.0/8"}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = p.Dialer(net.Dialer{})(ctx, "tcp", lis.Addr().String())
	var re *RefusedError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, "127.0.0.1", re.Host)
	select {
	case <-accepted:
		t.Fatal("the refused address was connected to")
	case <-time.After(100 * time.Millisecond):
	}

	// "localhost" resolves at dial time; the resolved address is checked.
	port := lis.Addr().(*net.TCPAddr).Port
	_, err = p.Dialer(net.Dialer{})(ctx, "tcp", net.JoinHostPort("localhost", strconv.Itoa(port)))
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, "localhost", re.Host)

	allowed, err := New(Config{})
	require.NoError(t, err)
	c, err := allowed.Dialer(net.Dialer{})(ctx, "tcp", lis.Addr().String())
	require.NoError(t, err)
	c.Close()
	<-accepted
}

// The operator's proxy is dialled through the allowlist like a node: its
// host counts as named, but a link-local or metadata address is refused
// unless -node-allow names it, and never connected to.
func TestProxyIsCheckedWhenDialled(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, "via proxy "+r.URL.Host)
	}))
	defer proxy.Close()
	get := func(p *Policy, proxyURL string) (string, error) {
		u, err := url.Parse(proxyURL)
		require.NoError(t, err)
		tr := &http.Transport{Proxy: p.Proxy(http.ProxyURL(u)), DialContext: p.Dialer(net.Dialer{Timeout: 5 * time.Second})}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://10.1.2.3:11434/api/tags", nil)
		require.NoError(t, err)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// Loopback is not allowed here; the proxy on it is, being the operator's.
	p, err := New(Config{Allow: []string{"10.0.0.0/8"}})
	require.NoError(t, err)
	got, err := get(p, proxy.URL)
	require.NoError(t, err)
	assert.Equal(t, "via proxy 10.1.2.3:11434", got)
	port := proxy.Listener.Addr().(*net.TCPAddr).Port
	got, err = get(p, "http://localhost:"+strconv.Itoa(port))
	require.NoError(t, err, "a proxy name is resolved and checked at connect time")
	assert.Equal(t, "via proxy 10.1.2.3:11434", got)

	// A proxy at a metadata address is refused before any connection.
	_, err = get(p, "http://169.254.169.254:3128")
	var re *RefusedError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, "169.254.169.254", re.Host)
	assert.EqualValues(t, 2, proxied.Load())
}
