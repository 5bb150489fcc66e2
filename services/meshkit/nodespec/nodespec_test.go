package nodespec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestNormalize(t *testing.T) {
	n, err := Normalize(&nodev1.Node{
		Id: "gw", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "HTTPS://GW.example:8443/ollama/v1/",
		TlsCaFile: "/etc/llmesh/ca.pem", TlsCertFile: "/etc/llmesh/client.pem", TlsKeyFile: "/etc/llmesh/client.key",
		Headers: []*nodev1.Header{{Name: "x-org", Value: "foo"}, {Name: "X-API-ORG", ValueEnv: "ORG_KEY"}},
	})
	require.NoError(t, err)
	assert.Equal(t, "https://gw.example:8443/ollama", n.GetBaseUrl())
	assert.Equal(t, "X-Org", n.GetHeaders()[1].GetName(), "canonical and sorted")
	assert.Equal(t, "X-Api-Org", n.GetHeaders()[0].GetName())

	o, err := Normalize(&nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "127.0.0.1:8000"})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8000/v1", o.GetBaseUrl())
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name string
		node *nodev1.Node
		want []string
	}{
		{"bad url and bad env", &nodev1.Node{BaseUrl: "ftp://x", ApiKeyEnv: "sk-123"},
			[]string{`scheme "ftp"`, "api_key_env: not an environment variable name"}},
		{"tls over http", &nodev1.Node{BaseUrl: "http://x:1", TlsCaFile: "/ca.pem"},
			[]string{"tls settings need an https url"}},
		{"cert without key", &nodev1.Node{BaseUrl: "https://x", TlsCertFile: "/c.pem"},
			[]string{"give both (mutual TLS) or neither"}},
		{"insecure with ca", &nodev1.Node{BaseUrl: "https://x", TlsCaFile: "/ca.pem", TlsInsecureSkipVerify: true},
			[]string{"a CA bundle means nothing"}},
		{"pem contents", &nodev1.Node{BaseUrl: "https://x", TlsCertFile: "-----BEGIN CERTIFICATE-----", TlsKeyFile: "/k"},
			[]string{"tls_cert_file: want the path of a PEM file"}},
		{"own header", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "content-type", Value: "x"}}},
			[]string{"header Content-Type: set by the adapter itself"}},
		{"hop-by-hop header", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "Connection", Value: "close"}}},
			[]string{"header Connection: set by the adapter"}},
		{"authorization with key", &nodev1.Node{BaseUrl: "http://x:1", ApiKeyEnv: "K", Headers: []*nodev1.Header{{Name: "Authorization", ValueEnv: "T"}}},
			[]string{"header Authorization: the node has api_key_env"}},
		{"bad header name", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X Org", Value: "a"}}},
			[]string{`header "X Org": want a name`}},
		{"both value and env", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X-A", Value: "a", ValueEnv: "A"}}},
			[]string{"not both"}},
		{"empty value", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X-A"}}},
			[]string{"header X-A: empty value"}},
		{"header injection", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X-A", Value: "a\r\nX-Evil: 1"}}},
			[]string{"control characters"}},
		{"bad value env", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X-A", ValueEnv: "not a name"}}},
			[]string{"header X-A: env: not an environment variable name"}},
		{"duplicate header", &nodev1.Node{BaseUrl: "http://x:1", Headers: []*nodev1.Header{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}},
			[]string{"header X-A: given twice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.Kind = nodev1.Kind_KIND_VLLM
			_, err := Normalize(tc.node)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "sk-123")
			assert.Equal(t, err.Error(), Validate(tc.node).Error(), "the adapter checks the same way")
		})
	}
}

func TestAuthorizationHeaderWithoutAPIKey(t *testing.T) {
	_, err := Normalize(&nodev1.Node{Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://x:1",
		Headers: []*nodev1.Header{{Name: "authorization", ValueEnv: "GATEWAY_TOKEN"}, {Name: "User-Agent", Value: "me"}}})
	assert.NoError(t, err, "a node without api_key_env may set Authorization itself, and anyone may set User-Agent")
}
