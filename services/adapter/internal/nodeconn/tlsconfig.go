package nodeconn

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

// tlsKey is one distinct TLS configuration of https nodes. Nodes that
// share it share a transport (and its connections per host).
type tlsKey struct {
	serverName, caFile, certFile, keyFile string
	insecure                              bool
}

// transportLocked returns the transport for n: the shared one for plain
// http and for https with default TLS, else the one of n's TLS
// configuration, built (its files read) the first time it is needed.
func (p *Pool) transportLocked(n *nodev1.Node, scheme string) (http.RoundTripper, error) {
	key := tlsKey{
		serverName: n.GetTlsServerName(), caFile: n.GetTlsCaFile(), certFile: n.GetTlsCertFile(),
		keyFile: n.GetTlsKeyFile(), insecure: n.GetTlsInsecureSkipVerify(),
	}
	if scheme != "https" || key == (tlsKey{}) {
		return p.base, nil
	}
	if t, ok := p.tls[key]; ok {
		return t, nil
	}
	conf, sum, err := p.tlsConfig(key)
	if err != nil {
		return nil, err
	}
	t := &tlsTransport{p: p, key: key, t: newTransport(p.opts, conf), sum: sum, checked: time.Now()}
	p.tls[key] = t
	return t, nil
}

// DefaultTLSRecheck is how often a TLS configuration's files are read
// again to notice a rotated certificate or CA bundle.
const DefaultTLSRecheck = 10 * time.Second

// tlsTransport is the transport of one TLS configuration. Its files are
// read again at most every Options.TLSRecheck, when a request comes;
// when they changed (a rotated certificate, key or CA bundle) new
// connections use them — no restart. Files that no longer load (half
// written) leave the working transport in place until the next check.
type tlsTransport struct {
	p   *Pool
	key tlsKey

	mu      sync.Mutex
	t       *http.Transport
	sum     [sha256.Size]byte // of the files t was built from
	checked time.Time
}

// RoundTrip implements http.RoundTripper.
func (r *tlsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.current().RoundTrip(req)
}

func (r *tlsTransport) current() *http.Transport {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.p.opts.TLSRecheck {
		r.checked = now
		if conf, sum, err := r.p.tlsConfig(r.key); err == nil && sum != r.sum {
			old := r.t
			r.t, r.sum = newTransport(r.p.opts, conf), sum
			old.CloseIdleConnections()
			r.p.opts.Log.Info("TLS files changed; new connections to the nodes using them use the new files",
				"tls_ca_file", r.key.caFile, "tls_cert_file", r.key.certFile)
		}
	}
	return r.t
}

// closeIdle drops the idle connections of the current transport.
func (r *tlsTransport) closeIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.CloseIdleConnections()
}

// tlsConfig reads the files of key into a client TLS configuration, with
// a digest of their contents. Its errors name the setting and the file
// and say what is wrong with it, never what is in it.
func (p *Pool) tlsConfig(key tlsKey) (*tls.Config, [sha256.Size]byte, error) {
	digest := sha256.New()
	conf, err := p.readTLS(key, func(b []byte) {
		digest.Write(b)
		digest.Write([]byte{0})
	})
	var sum [sha256.Size]byte
	digest.Sum(sum[:0])
	return conf, sum, err
}

func (p *Pool) readTLS(key tlsKey, seen func([]byte)) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         key.serverName,
		RootCAs:            p.opts.RootCAs,
		InsecureSkipVerify: key.insecure, //nolint:gosec // asked for explicitly; the pool logs a warning
	}
	if key.caFile != "" {
		pem, err := p.opts.ReadFile(key.caFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file %s: %w", key.caFile, fileError(err))
		}
		seen(pem)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificate in it", key.caFile)
		}
		conf.RootCAs = pool
	}
	if key.certFile != "" {
		certPEM, err := p.opts.ReadFile(key.certFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file %s: %w", key.certFile, fileError(err))
		}
		keyPEM, err := p.opts.ReadFile(key.keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_key_file %s: %w", key.keyFile, fileError(err))
		}
		seen(certPEM)
		seen(keyPEM)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// tls' messages say what is wrong without quoting the files.
			return nil, fmt.Errorf("tls_cert_file %s with tls_key_file %s: %w", key.certFile, key.keyFile, err)
		}
		// Always present it, whatever CAs the node says it accepts: the
		// node's own error then says what it thinks of the certificate.
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return conf, nil
}

// fileError is the cause of a file error without the path (the caller
// names the file already).
func fileError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
