package nodeconn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate as a PEM file
}

var serial int64

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(t.TempDir(), name+".pem")}
	require.NoError(t, os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca
}

// issue makes a leaf certificate for names (DNS names or IPs), valid from
// notBefore to notAfter, for servers or clients.
func (ca *testCA) issue(t *testing.T, names []string, notBefore, notAfter time.Time, client bool) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return pair, certFile, keyFile
}

// tlsNode starts an https server on loopback with cert that answers with
// the client certificate's common name (or "ok"), configured by conf.
func tlsNode(t *testing.T, cert tls.Certificate, conf func(*tls.Config)) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			_, _ = io.WriteString(w, "client "+r.TLS.PeerCertificates[0].Subject.CommonName)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if conf != nil {
		conf(srv.TLS)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// get fetches / from node and returns the body or the error.
func get(t *testing.T, p *Pool, n *nodev1.Node) (string, error) {
	t.Helper()
	c, err := p.Client(n)
	if err != nil {
		return "", err
	}
	req, err := c.NewRequest(t.Context(), http.MethodGet, "/", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b), nil
}

// requireUnreachable asserts err is UNAVAILABLE for node id with want in
// its message.
func requireUnreachable(t *testing.T, err error, id, want string) {
	t.Helper()
	e, ok := apierror.FromError(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, codes.Unavailable, e.Code, "%v", err)
	assert.Equal(t, id, e.Node)
	assert.Contains(t, e.Message, want)
	assert.NotContains(t, e.Message, "https://", "no URL in the cause")
}

func TestTLSVerification(t *testing.T) {
	ca := newCA(t, "llmesh-test-ca")
	now := time.Now()
	good, _, _ := ca.issue(t, []string{"127.0.0.1", "gpu.lan"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	expired, _, _ := ca.issue(t, []string{"127.0.0.1"}, now.Add(-2*time.Hour), now.Add(-time.Hour), false)
	otherName, _, _ := ca.issue(t, []string{"gpu.example"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	stranger := newCA(t, "stranger-ca")
	unknown, _, _ := stranger.issue(t, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour), false)

	goodURL, expiredURL := tlsNode(t, good, nil), tlsNode(t, expired, nil)
	otherNameURL, unknownURL := tlsNode(t, otherName, nil), tlsNode(t, unknown, nil)
	p := newPool(t, Options{})

	body, err := get(t, p, &nodev1.Node{Id: "good", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: goodURL, TlsCaFile: ca.file})
	require.NoError(t, err)
	assert.Equal(t, "ok", body)

	_, err = get(t, p, &nodev1.Node{Id: "expired", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: expiredURL, TlsCaFile: ca.file})
	requireUnreachable(t, err, "expired", "tls: the node's certificate has expired")

	_, err = get(t, p, &nodev1.Node{Id: "wrong-name", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: strings.Replace(otherNameURL, "127.0.0.1", "localhost", 1), TlsCaFile: ca.file})
	requireUnreachable(t, err, "wrong-name", "tls: certificate is valid for gpu.example, not localhost (tls_server_name sets")
	_, err = get(t, p, &nodev1.Node{Id: "no-ip", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: otherNameURL, TlsCaFile: ca.file})
	requireUnreachable(t, err, "no-ip", "tls: cannot validate certificate for 127.0.0.1")
	body, err = get(t, p, &nodev1.Node{Id: "renamed", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: otherNameURL, TlsCaFile: ca.file, TlsServerName: "gpu.example"})
	require.NoError(t, err, "tls_server_name picks the name to verify")
	assert.Equal(t, "ok", body)

	_, err = get(t, p, &nodev1.Node{Id: "unknown-ca", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: unknownURL})
	requireUnreachable(t, err, "unknown-ca", "certificate is signed by an unknown authority (tls_ca_file")
	_, err = get(t, p, &nodev1.Node{Id: "other-ca", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: unknownURL, TlsCaFile: ca.file})
	requireUnreachable(t, err, "other-ca", "unknown authority")

	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(plain.Close)
	_, err = get(t, p, &nodev1.Node{Id: "plain", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: strings.Replace(plain.URL, "http:", "https:", 1)})
	requireUnreachable(t, err, "plain", "the node did not answer with TLS")
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "mesh-ca")
	now := time.Now()
	serverCert, _, _ := ca.issue(t, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	_, clientCert, clientKey := ca.issue(t, []string{"adapter-1"}, now.Add(-time.Hour), now.Add(time.Hour), true)
	stranger := newCA(t, "stranger-ca")
	_, strangerCert, strangerKey := stranger.issue(t, []string{"intruder"}, now.Add(-time.Hour), now.Add(time.Hour), true)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)
	url := tlsNode(t, serverCert, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clientCAs
	})
	p := newPool(t, Options{})

	body, err := get(t, p, &nodev1.Node{Id: "mtls", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsCaFile: ca.file, TlsCertFile: clientCert, TlsKeyFile: clientKey})
	require.NoError(t, err)
	assert.Equal(t, "client adapter-1", body, "the node saw the client certificate")

	_, err = get(t, p, &nodev1.Node{Id: "no-cert", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsCaFile: ca.file})
	requireUnreachable(t, err, "no-cert", "tls: the node requires a client certificate (tls_cert_file and tls_key_file)")

	_, err = get(t, p, &nodev1.Node{Id: "bad-cert", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsCaFile: ca.file, TlsCertFile: strangerCert, TlsKeyFile: strangerKey})
	requireUnreachable(t, err, "bad-cert", "tls: the node rejected the client certificate")
}

func TestTLSFileErrors(t *testing.T) {
	ca := newCA(t, "files-ca")
	now := time.Now()
	_, certFile, keyFile := ca.issue(t, []string{"a"}, now.Add(-time.Hour), now.Add(time.Hour), true)
	_, _, otherKey := ca.issue(t, []string{"b"}, now.Add(-time.Hour), now.Add(time.Hour), true)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(dir, "missing.pem")

	cases := []struct {
		name string
		node *nodev1.Node
		want string
	}{
		{"missing ca", &nodev1.Node{TlsCaFile: missing}, "node n: tls_ca_file " + missing + ": no such file or directory"},
		{"ca not pem", &nodev1.Node{TlsCaFile: notPEM}, "node n: tls_ca_file " + notPEM + ": no PEM certificate in it"},
		{"missing cert", &nodev1.Node{TlsCertFile: missing, TlsKeyFile: keyFile}, "tls_cert_file " + missing + ": no such file"},
		{"missing key", &nodev1.Node{TlsCertFile: certFile, TlsKeyFile: missing}, "tls_key_file " + missing + ": no such file"},
		{"key of another cert", &nodev1.Node{TlsCertFile: certFile, TlsKeyFile: otherKey}, "tls_cert_file " + certFile + " with tls_key_file " + otherKey + ": tls: private key does not match public key"},
		{"cert not pem", &nodev1.Node{TlsCertFile: notPEM, TlsKeyFile: keyFile}, "tls: failed to find any PEM data in certificate input"},
	}
	p := newPool(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.Id, tc.node.Kind, tc.node.BaseUrl = "n", nodev1.Kind_KIND_OPENAI, "https://127.0.0.1:1/v1"
			_, err := p.Client(tc.node)
			e, ok := apierror.FromError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, codes.FailedPrecondition, e.Code)
			assert.Equal(t, "n", e.Node)
			assert.Contains(t, e.Message, tc.want)
			assert.NotContains(t, e.Message, "PRIVATE KEY", "file contents never appear")
		})
	}

	// A fixed file is picked up: failures are not cached.
	fixable := filepath.Join(dir, "later.pem")
	n := &nodev1.Node{Id: "later", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "https://127.0.0.1:1/v1", TlsCaFile: fixable}
	_, err := p.Client(n)
	require.Error(t, err)
	caPEM, err := os.ReadFile(ca.file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(fixable, caPEM, 0o600))
	_, err = p.Client(n)
	assert.NoError(t, err)
}

func TestTLSTransportPerConfiguration(t *testing.T) {
	ca := newCA(t, "shared-ca")
	p := newPool(t, Options{})
	transport := func(id, url, caFile string) http.RoundTripper {
		c, err := p.Client(&nodev1.Node{Id: id, Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsCaFile: caFile})
		require.NoError(t, err)
		return c.transport
	}
	a := transport("a", "https://a.lan/v1", ca.file)
	assert.Same(t, a, transport("b", "https://b.lan/v1", ca.file), "one transport per TLS configuration")
	assert.NotSame(t, a, transport("c", "https://c.lan/v1", ""), "default TLS is the shared transport")
	assert.Same(t, p.base, transport("d", "https://d.lan/v1", ""))
}

// syncBuffer is a bytes.Buffer safe for the pool's logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestInsecureSkipVerifyWorksAndWarnsOncePerNode(t *testing.T) {
	stranger := newCA(t, "self-signed")
	now := time.Now()
	cert, _, _ := stranger.issue(t, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	url := tlsNode(t, cert, nil)
	var logs syncBuffer
	p := newPool(t, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})

	n := &nodev1.Node{Id: "lab", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsInsecureSkipVerify: true}
	for range 3 {
		body, err := get(t, p, n)
		require.NoError(t, err)
		assert.Equal(t, "ok", body)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "verification is OFF"), logs.String())
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "node=lab")

	_, err := get(t, p, &nodev1.Node{Id: "lab2", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsInsecureSkipVerify: true})
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(logs.String(), "verification is OFF"), "each node warns once")

	_, err = get(t, p, &nodev1.Node{Id: "strict", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url})
	requireUnreachable(t, err, "strict", "unknown authority")
}

// Rotated TLS files are picked up without a restart: a node that moved to
// a certificate of a new CA works again once its CA bundle names that CA,
// and a bundle caught half written leaves the working one in place.
func TestRotatedTLSFilesWithoutRestart(t *testing.T) {
	before, after := newCA(t, "ca-before"), newCA(t, "ca-after")
	now := time.Now()
	oldCert, _, _ := before.issue(t, []string{"node.lan"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	newCert, _, _ := after.issue(t, []string{"node.lan"}, now.Add(-time.Hour), now.Add(time.Hour), false)
	var serving atomic.Pointer[tls.Certificate]
	serving.Store(&oldCert)
	url := tlsNode(t, oldCert, func(c *tls.Config) {
		// With a server name (SNI) in the hello, the server asks this.
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.Load(), nil }
	})
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	copyFile := func(from string) {
		b, err := os.ReadFile(from)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(bundle, b, 0o600))
	}
	copyFile(before.file)
	var logs syncBuffer
	p := newPool(t, Options{TLSRecheck: time.Nanosecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	n := &nodev1.Node{Id: "rotating", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: url, TlsCaFile: bundle, TlsServerName: "node.lan"}

	body, err := get(t, p, n)
	require.NoError(t, err)
	assert.Equal(t, "ok", body)

	serving.Store(&newCert) // the node rotates to the new CA's certificate
	p.Close()               // (a new connection, as after an idle timeout)
	_, err = get(t, p, n)
	requireUnreachable(t, err, "rotating", "unknown authority")

	copyFile(after.file) // the operator rotates the bundle
	body, err = get(t, p, n)
	require.NoError(t, err, "the new bundle is read without a restart")
	assert.Equal(t, "ok", body)
	assert.Contains(t, logs.String(), "TLS files changed")

	require.NoError(t, os.WriteFile(bundle, []byte("-----BEGIN CERT"), 0o600)) // caught half written
	p.Close()
	body, err = get(t, p, n)
	require.NoError(t, err, "a bundle that does not load leaves the working one in place")
	assert.Equal(t, "ok", body)
}
