package nodesfile

import (
	"os"
	"path/filepath"
	"testing"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// goldenNodes is what testdata/nodes.yaml describes.
var goldenNodes = []*nodev1.Node{
	{Id: "gpu-1", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://10.0.0.5:11434"},
	{Id: "cloud", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "https://api.example.com/v1", ApiKeyEnv: "CLOUD_KEY", TlsServerName: "api.example.com"},
	{Id: "vllm.a_1", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://vllm:8000"},
	{Id: "cpp", Kind: nodev1.Kind_KIND_LLAMACPP, BaseUrl: "http://127.0.0.1:8080"},
	{Id: "studio", Kind: nodev1.Kind_KIND_LMSTUDIO, BaseUrl: "http://localhost:1234"},
}

func assertNodes(t *testing.T, want, got []*nodev1.Node) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.True(t, proto.Equal(want[i], got[i]), "node %d: want %v, got %v", i, want[i], got[i])
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name      string
		yaml      string
		want      []*nodev1.Node
		wantErrs  []string // substrings the error must contain
		wantNotIn []string // substrings it must not contain
	}{
		{
			name: "valid",
			yaml: "nodes:\n  - id: a\n    kind: ollama\n    url: http://a:11434\n  - id: b\n    kind: vllm\n    url: https://b/\n    api_key_env: B_KEY\n",
			want: []*nodev1.Node{
				{Id: "a", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://a:11434"},
				{Id: "b", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://b", ApiKeyEnv: "B_KEY"},
			},
		},
		{
			name: "routing settings",
			yaml: "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n    max_in_flight: 8\n    num_parallel: 2\n    group: gpu\n",
			want: []*nodev1.Node{{Id: "a", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://a", MaxInFlight: 8, NumParallel: 2, Group: "gpu"}},
		},
		{
			name:     "bad routing settings",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n    max_in_flight: -1\n    num_parallel: -2\n    group: g/pu\n",
			wantErrs: []string{"max_in_flight -1", "num_parallel -2", `group "g/pu"`},
		},
		{
			name: "url forms are made canonical for the kind",
			yaml: "nodes:\n  - id: a\n    kind: ollama\n    url: 127.0.0.1:11434/v1/\n  - id: b\n    kind: openai\n    url: '[::1]:8000'\n  - id: c\n    kind: vllm\n    url: HTTPS://GPU.lan\n",
			want: []*nodev1.Node{
				{Id: "a", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://127.0.0.1:11434"},
				{Id: "b", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://[::1]:8000/v1"},
				{Id: "c", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://gpu.lan"},
			},
		},
		{
			name: "tls and headers",
			yaml: `nodes:
  - id: gw
    kind: vllm
    url: https://gw.corp:8443
    tls_ca_file: /etc/llmesh/ca.pem
    tls_cert_file: /etc/llmesh/client.pem
    tls_key_file: /etc/llmesh/client.key
    tls_server_name: vllm.internal
    headers:
      x-org: foo
      X-Api-Org: {env: ORG_KEY}
  - id: lab
    kind: ollama
    url: https://lab:11434
    tls_insecure_skip_verify: true
`,
			want: []*nodev1.Node{
				{Id: "gw", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://gw.corp:8443", TlsCaFile: "/etc/llmesh/ca.pem",
					TlsCertFile: "/etc/llmesh/client.pem", TlsKeyFile: "/etc/llmesh/client.key", TlsServerName: "vllm.internal",
					Headers: []*nodev1.Header{{Name: "X-Api-Org", ValueEnv: "ORG_KEY"}, {Name: "X-Org", Value: "foo"}}},
				{Id: "lab", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "https://lab:11434", TlsInsecureSkipVerify: true},
			},
		},
		{
			name:     "header value neither string nor env",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n    headers:\n      X-A: {file: /x}\n",
			wantErrs: []string{"a header value is a string or {env: VARIABLE}"},
		},
		{
			name:     "tls problems together",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n    tls_cert_file: /c.pem\n    headers:\n      Host: x\n",
			wantErrs: []string{"tls settings need an https url", "tls_cert_file and tls_key_file: give both", "header Host: set by the adapter itself"},
		},
		{
			name: "kind is case-insensitive",
			yaml: "nodes:\n  - id: a\n    kind: LMStudio\n    url: http://a\n",
			want: []*nodev1.Node{{Id: "a", Kind: nodev1.Kind_KIND_LMSTUDIO, BaseUrl: "http://a"}},
		},
		{
			name:     "unknown key in a node",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n    api_key: sk-secret\n",
			wantErrs: []string{"api_key"},
		},
		{
			name:     "unknown top-level key",
			yaml:     "node:\n  - id: a\n",
			wantErrs: []string{"node"},
		},
		{
			name:     "duplicate id",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://a\n  - id: a\n    kind: vllm\n    url: http://b\n",
			wantErrs: []string{"nodes[1]", `duplicate id "a"`},
		},
		{
			name: "every problem at once: an unknown key hides nothing",
			yaml: "nodes:\n  - id: a\n    kind: tgi\n    url: http://a\n    apikey_env: K\n" +
				"  - id: a\n    kind: ollama\n    url: ftp://b\n",
			wantErrs: []string{"apikey_env", `kind "tgi"`, `nodes[1]: duplicate id "a"`, "ftp"},
		},
		{
			name:     "bad kind",
			yaml:     "nodes:\n  - id: a\n    kind: tgi\n    url: http://a\n",
			wantErrs: []string{"nodes[0]", `kind "tgi"`},
		},
		{
			name: "no kind, or kind auto: recognised, an openai node until then",
			yaml: "nodes:\n  - id: a\n    url: http://a:11434\n  - id: b\n    kind: Auto\n    url: http://b:8000/v1\n  - id: c\n    kind: openai\n    url: http://c:8000/v1\n",
			want: []*nodev1.Node{
				{Id: "a", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://a:11434/v1"},
				{Id: "b", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://b:8000/v1"},
				{Id: "c", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "http://c:8000/v1"},
			},
		},
		{
			name:     "bad id",
			yaml:     "nodes:\n  - id: gpu 1\n    kind: ollama\n    url: http://a\n",
			wantErrs: []string{`id "gpu 1"`},
		},
		{
			name:     "missing id",
			yaml:     "nodes:\n  - kind: ollama\n    url: http://a\n",
			wantErrs: []string{`id ""`},
		},
		{
			name:     "bad url scheme",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: ftp://a\n",
			wantErrs: []string{`nodes[0]: url "ftp://a": scheme "ftp": want http or https`},
		},
		{
			name:     "url without scheme or port",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: 10.0.0.5\n",
			wantErrs: []string{`nodes[0]: url "10.0.0.5": no scheme and no port`},
		},
		{
			name:     "url without host",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n    url: http://\n",
			wantErrs: []string{`url "http://": no host`},
		},
		{
			name:     "missing url",
			yaml:     "nodes:\n  - id: a\n    kind: ollama\n",
			wantErrs: []string{"url is required"},
		},
		{
			name:      "url with credentials",
			yaml:      "nodes:\n  - id: a\n    kind: openai\n    url: https://user:hunter2@api.example.com/v1\n",
			wantErrs:  []string{"credentials", "api_key_env"},
			wantNotIn: []string{"hunter2"},
		},
		{
			name:     "api_key_env holding a key",
			yaml:     "nodes:\n  - id: a\n    kind: openai\n    url: https://api.example.com\n    api_key_env: sk-abc123\n",
			wantErrs: []string{"nodes[0]", "api_key_env", "not an environment variable name"},
		},
		{
			name:     "empty nodes",
			yaml:     "nodes: []\n",
			wantErrs: []string{"no nodes"},
		},
		{
			name:     "no nodes key",
			yaml:     "{}\n",
			wantErrs: []string{"no nodes"},
		},
		{
			name:     "not YAML",
			yaml:     "nodes: [\n",
			wantErrs: []string{"yaml"},
		},
		{
			name: "several errors reported together",
			yaml: "nodes:\n" +
				"  - id: a\n    kind: tgi\n    url: ftp://a\n" +
				"  - id: b\n    kind: ollama\n    url: http://b\n" +
				"  - id: b\n    kind: ollama\n    url: http://b2\n" +
				"  - id: c\n    kind: ollama\n    url: http://c\n    api_key_env: 1BAD\n",
			wantErrs: []string{`nodes[0]: kind "tgi"`, "ftp://a", `nodes[2]: duplicate id "b"`, "nodes[3]: api_key_env: not an environment variable name"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.yaml))
			if tc.wantErrs == nil {
				require.NoError(t, err)
				assertNodes(t, tc.want, got)
				return
			}
			require.Error(t, err)
			assert.Nil(t, got, "no nodes are returned with an error")
			for _, s := range tc.wantErrs {
				assert.Contains(t, err.Error(), s)
			}
			for _, s := range tc.wantNotIn {
				assert.NotContains(t, err.Error(), s)
			}
		})
	}
}

func TestParseEmptyFile(t *testing.T) {
	for _, data := range []string{"", "# nodes go here\n"} {
		_, err := Parse([]byte(data))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no nodes")
	}
}

func TestParseDoesNotEchoAKeyGivenAsAPIKeyEnv(t *testing.T) {
	_, err := Parse([]byte("nodes:\n  - id: a\n    kind: openai\n    url: https://api.example.com\n    api_key_env: sk-proj-abc123\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "api_key_env")
	assert.NotContains(t, err.Error(), "sk-proj-abc123")
}

func TestLoad(t *testing.T) {
	got, err := Load(filepath.Join("testdata", "nodes.yaml"))
	require.NoError(t, err)
	assertNodes(t, goldenNodes, got)

	_, err = Load(filepath.Join("testdata", "invalid.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join("testdata", "invalid.yaml"), "the error names the file")
	assert.Contains(t, err.Error(), `scheme "ftp": want http or https`)

	_, err = Load(filepath.Join("testdata", "missing.yaml"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "nodes file")
}

func TestResolve(t *testing.T) {
	cases := []struct {
		name     string
		path     string
		env      Env
		want     []*nodev1.Node
		wantErrs []string
	}{
		{
			name: "the file wins over the environment",
			path: filepath.Join("testdata", "nodes.yaml"),
			env:  Env{OpenAIBaseURL: "https://api.openai.com/v1", OpenAIKeyIsSet: true},
			want: goldenNodes,
		},
		{
			name:     "a file that does not exist is an error, not a fallback",
			path:     filepath.Join("testdata", "missing.yaml"),
			env:      Env{OpenAIBaseURL: "https://api.openai.com/v1"},
			wantErrs: []string{"nodes file", "missing.yaml"},
		},
		{
			name: "OPENAI_BASE_URL with a key",
			env:  Env{OpenAIBaseURL: "https://api.openai.com/v1/", OpenAIKeyIsSet: true},
			want: []*nodev1.Node{{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "https://api.openai.com/v1", ApiKeyEnv: "OPENAI_API_KEY"}},
		},
		{
			name: "OPENAI_BASE_URL without a key",
			env:  Env{OpenAIBaseURL: "http://localhost:8000/v1"},
			want: []*nodev1.Node{{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://localhost:8000/v1"}},
		},
		{
			name: "OPENAI_BASE_URL at Ollama's OpenAI API: recognised by the probe",
			env:  Env{OpenAIBaseURL: "http://127.0.0.1:11434/v1"},
			want: []*nodev1.Node{{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://127.0.0.1:11434/v1"}},
		},
		{
			name: "OPENAI_BASE_URL without /v1 or scheme",
			env:  Env{OpenAIBaseURL: " localhost:8000 "},
			want: []*nodev1.Node{{Id: "openai", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://localhost:8000/v1"}},
		},
		{
			name: "default is the local Ollama",
			env:  Env{OpenAIKeyIsSet: true},
			want: []*nodev1.Node{{Id: "ollama", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: DefaultOllamaURL}},
		},
		{
			name:     "bad OPENAI_BASE_URL",
			env:      Env{OpenAIBaseURL: "api.openai.com/v1"},
			wantErrs: []string{`OPENAI_BASE_URL: url "api.openai.com/v1": no scheme and no port`},
		},
		{
			name:     "OPENAI_BASE_URL with credentials",
			env:      Env{OpenAIBaseURL: "https://me:hunter2@api.openai.com/v1"},
			wantErrs: []string{"OPENAI_BASE_URL", "credentials"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.path, tc.env)
			if tc.wantErrs == nil {
				require.NoError(t, err)
				assertNodes(t, tc.want, got)
				return
			}
			require.Error(t, err)
			for _, s := range tc.wantErrs {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), "hunter2", "a password never shows in an error")
		})
	}
	assert.Equal(t, "http://127.0.0.1:11434", DefaultOllamaURL)
}

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name, base, key string
		want            Env
	}{
		{name: "both set", base: "https://x/v1", key: "sk-1", want: Env{OpenAIBaseURL: "https://x/v1", OpenAIKeyIsSet: true}},
		{name: "empty key counts as unset", base: "https://x/v1", key: "", want: Env{OpenAIBaseURL: "https://x/v1"}},
		{name: "none", want: Env{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OPENAI_BASE_URL", tc.base)
			t.Setenv("OPENAI_API_KEY", tc.key)
			assert.Equal(t, tc.want, FromEnv())
		})
	}
}
