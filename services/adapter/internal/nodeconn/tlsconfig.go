package nodeconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

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
func (p *Pool) transportLocked(n *nodev1.Node, scheme string) (*http.Transport, error) {
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
	conf, err := p.tlsConfig(key)
	if err != nil {
		return nil, err
	}
	t := newTransport(p.opts, conf)
	p.tls[key] = t
	return t, nil
}

// tlsConfig reads the files of key into a client TLS configuration. Its
// errors name the setting and the file and say what is wrong with it,
// never what is in it.
func (p *Pool) tlsConfig(key tlsKey) (*tls.Config, error) {
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
