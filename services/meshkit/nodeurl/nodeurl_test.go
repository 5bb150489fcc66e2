package nodeurl

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want URL
		str  string
	}{
		{"127.0.0.1:11434", URL{"http", "127.0.0.1", 11434, ""}, "http://127.0.0.1:11434"},
		{"localhost:11434", URL{"http", "localhost", 11434, ""}, "http://localhost:11434"},
		{"gpu-1:8000/v1", URL{"http", "gpu-1", 8000, "/v1"}, "http://gpu-1:8000/v1"},
		{"http://gpu-1", URL{"http", "gpu-1", 80, ""}, "http://gpu-1"},
		{"https://api.example.com", URL{"https", "api.example.com", 443, ""}, "https://api.example.com"},
		{"https://api.example.com:443/v1/", URL{"https", "api.example.com", 443, "/v1"}, "https://api.example.com/v1"},
		{"http://api.example.com:443", URL{"http", "api.example.com", 443, ""}, "http://api.example.com:443"},
		{"HTTPS://API.Example.COM/V1", URL{"https", "api.example.com", 443, "/V1"}, "https://api.example.com/V1"},
		{"  http://10.0.0.5:11434///  ", URL{"http", "10.0.0.5", 11434, ""}, "http://10.0.0.5:11434"},
		{"https://api.groq.com/openai/v1", URL{"https", "api.groq.com", 443, "/openai/v1"}, "https://api.groq.com/openai/v1"},
		{"[::1]:11434", URL{"http", "::1", 11434, ""}, "http://[::1]:11434"},
		{"http://[::1]", URL{"http", "::1", 80, ""}, "http://[::1]"},
		{"https://[2001:DB8::1]:8443/v1", URL{"https", "2001:db8::1", 8443, "/v1"}, "https://[2001:db8::1]:8443/v1"},
		{"http://node_1.lan:1234", URL{"http", "node_1.lan", 1234, ""}, "http://node_1.lan:1234"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.str, got.String())
			again, err := Parse(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "the canonical form parses to the same URL")
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "url is required"},
		{"   ", "url is required"},
		{"ftp://host", `url "ftp://host": scheme "ftp": want http or https`},
		{"grpc://host:9090", `scheme "grpc"`},
		{"http://", `url "http://": no host`},
		{"http://:8080", "no host"},
		{"http:///v1", "no host"},
		{"http://user:sk-secret@host", `url "http://***@host": credentials do not belong`},
		{"https://sk-secret@host/v1", `url "https://***@host/v1": credentials`},
		{"sk-secret@host:80", `url "***@host:80": credentials`},
		{"https://user:sk-sec/retKEY@api.example.com/v1", `url "https://***@api.example.com/v1": malformed URL; and credentials do not belong`},
		{"https://user:sk-secret?x@api.example.com", `url "https://***@api.example.com": malformed URL; and credentials`},
		{"https://api.example.com/v1?api_key=sk-secret", `url "https://api.example.com/v1?…": a query`},
		{"https://api.example.com/v1#sk-secret", `url "https://api.example.com/v1#…": a fragment`},
		{"http://host/?x=1", "a query"},
		{"http://host?", "a query"},
		{"http://host/#frag", "a fragment"},
		{"http://host#", "a fragment"},
		{"http://host:0", "port 0: want 1-65535"},
		{"http://host:65536", "port 65536: want 1-65535"},
		{"http://host:99999999999999999999", "want 1-65535"},
		{"http://host:abc", `invalid port ":abc"`},
		{"http://host:", "empty port"},
		{"localhost", "no scheme and no port"},
		{"gpu-1/v1", "no scheme and no port"},
		{"http:host", "want http://host"},
		{"https:/host", "want https://host"},
		{"//host:80", "no scheme"},
		{"::1", "IPv6 address must be in brackets"},
		{"fe80::1:11434", "IPv6 address must be in brackets"},
		{"http://[::1", "missing ']'"},
		{"http://[1.2.3.4]:80", "invalid IP-literal"},
		{"http://[fe80::1%25eth0]:80", "zones"},
		{"http://999.1.1.1:80", "not an IPv4 address"},
		{"http://1.2.3:80", "not an IPv4 address"},
		{"http://exa mple:80", "white space"},
		{"http://host:80/a b", "white space"},
		{"http://host\n", ""}, // trimmed: accepted (checked below)
		{"http://host/\x00", "control characters"},
		{"http://-host:80", "not a valid host name"},
		{"http://ho$t:80", "not a valid host name"},
		{"http://a..b:80", "not a valid host name"},
		{"http://host/a//b", "empty segment"},
		{"http://host/../v1", `".." segment`},
		{"http://host/./v1", `"." segment`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "sk-secret", "credentials are never echoed")
		})
	}
}

func TestForKind(t *testing.T) {
	tests := []struct {
		in   string
		kind nodev1.Kind
		want string
	}{
		{"https://api.openai.com/v1", nodev1.Kind_KIND_OPENAI, "https://api.openai.com/v1"},
		{"http://127.0.0.1:8000", nodev1.Kind_KIND_OPENAI, "http://127.0.0.1:8000/v1"},
		{"https://api.groq.com/openai/v1/", nodev1.Kind_KIND_OPENAI, "https://api.groq.com/openai/v1"},
		{"127.0.0.1:11434", nodev1.Kind_KIND_OLLAMA, "http://127.0.0.1:11434"},
		{"http://127.0.0.1:11434/v1/", nodev1.Kind_KIND_OLLAMA, "http://127.0.0.1:11434"},
		{"http://gw/ollama/v1", nodev1.Kind_KIND_OLLAMA, "http://gw/ollama"},
		{"http://gw/ollama", nodev1.Kind_KIND_OLLAMA, "http://gw/ollama"},
		{"http://gpu:8000/v1", nodev1.Kind_KIND_VLLM, "http://gpu:8000"},
		{"http://gpu:8000/v10", nodev1.Kind_KIND_VLLM, "http://gpu:8000/v10"},
	}
	for _, tc := range tests {
		got, err := ForKind(tc.in, tc.kind)
		if assert.NoError(t, err, tc.in) {
			assert.Equal(t, tc.want, got.String(), "%s as %s", tc.in, tc.kind)
		}
	}
	_, err := ForKind("ftp://x", nodev1.Kind_KIND_OPENAI)
	assert.ErrorContains(t, err, `scheme "ftp"`)
}
