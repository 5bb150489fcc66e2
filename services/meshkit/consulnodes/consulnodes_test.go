package consulnodes

import (
	"testing"

	"github.com/hashicorp/consul/api"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

func entry(id, addr string, port int, meta map[string]string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: "box-" + id, Address: "10.0.0.9"},
		Service: &api.AgentService{ID: id, Service: DefaultService, Address: addr, Port: port, Meta: meta},
	}
}

func TestFromEntry(t *testing.T) {
	cases := []struct {
		name    string
		e       *api.ServiceEntry
		want    *nodev1.Node
		wantErr []string
	}{
		{
			name: "ollama with defaults",
			e:    entry("gpu-1", "10.0.0.5", 11434, map[string]string{MetaKind: "ollama"}),
			want: &nodev1.Node{Id: "gpu-1", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://10.0.0.5:11434"},
		},
		{
			name: "https openai with base path, server name and key variable",
			e: entry("cloud", "api.example.com", 443, map[string]string{MetaKind: "openai", MetaScheme: "https",
				MetaBasePath: "/v1/", MetaTLSServerName: "api.example.com", MetaAPIKeyEnv: "CLOUD_KEY"}),
			want: &nodev1.Node{Id: "cloud", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "https://api.example.com/v1",
				TlsServerName: "api.example.com", ApiKeyEnv: "CLOUD_KEY"},
		},
		{
			name: "kind auto: recognised by the probe, an openai node until then",
			e:    entry("auto-1", "10.0.0.5", 11434, map[string]string{MetaKind: "auto"}),
			want: &nodev1.Node{Id: "auto-1", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://10.0.0.5:11434/v1"},
		},
		{
			name: "no kind is kind auto",
			e:    entry("auto-2", "10.0.0.5", 8000, map[string]string{MetaBasePath: "/v1"}),
			want: &nodev1.Node{Id: "auto-2", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://10.0.0.5:8000/v1"},
		},
		{
			name: "address from the Consul node, IPv6 service address",
			e:    entry("v6", "::1", 8000, map[string]string{MetaKind: "vllm"}),
			want: &nodev1.Node{Id: "v6", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "http://[::1]:8000"},
		},
		{
			name: "node address used when the service has none",
			e:    entry("n", "", 1234, map[string]string{MetaKind: "llamacpp"}),
			want: &nodev1.Node{Id: "n", Kind: nodev1.Kind_KIND_LLAMACPP, BaseUrl: "http://10.0.0.9:1234"},
		},
		{
			name:    "every problem at once",
			e:       entry("bad", "10.0.0.5", 0, map[string]string{MetaKind: "tgi", MetaScheme: "ftp", MetaBasePath: "v1", MetaAPIKeyEnv: "sk-secret-123"}),
			wantErr: []string{`llmesh-kind "tgi"`, `llmesh-scheme "ftp"`, `llmesh-base-path "v1"`, "llmesh-api-key-env: not an environment variable name", "port 0"},
		},
		{
			name: "routing settings",
			e: entry("gpu-2", "10.0.0.6", 11434, map[string]string{MetaKind: "ollama",
				MetaMaxInFlight: "6", MetaNumParallel: "2", MetaGroup: "gpu"}),
			want: &nodev1.Node{Id: "gpu-2", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://10.0.0.6:11434",
				MaxInFlight: 6, NumParallel: 2, Group: "gpu"},
		},
		{
			name: "bad routing settings",
			e: entry("gpu-3", "10.0.0.6", 11434, map[string]string{MetaKind: "ollama",
				MetaMaxInFlight: "-1", MetaGroup: "g p u"}),
			wantErr: []string{`max_in_flight -1: want 0`, `group "g p u": want 1-64 letters`},
		},
		{
			name:    "a count that is not a number",
			e:       entry("gpu-4", "10.0.0.6", 11434, map[string]string{MetaKind: "ollama", MetaNumParallel: "many"}),
			wantErr: []string{`llmesh-num-parallel "many": want a whole number`},
		},
		{
			name: "tls files and headers",
			e: entry("gw", "gw.corp", 8443, map[string]string{MetaKind: "vllm", MetaScheme: "https",
				MetaTLSCAFile: "/etc/llmesh/ca.pem", MetaTLSCertFile: "/etc/llmesh/c.pem", MetaTLSKeyFile: "/etc/llmesh/c.key",
				MetaHeaderPrefix + "X-Org": "foo", MetaEnvHeaderPrefix + "x-api-org": "ORG_KEY"}),
			want: &nodev1.Node{Id: "gw", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://gw.corp:8443",
				TlsCaFile: "/etc/llmesh/ca.pem", TlsCertFile: "/etc/llmesh/c.pem", TlsKeyFile: "/etc/llmesh/c.key",
				Headers: []*nodev1.Header{{Name: "X-Api-Org", ValueEnv: "ORG_KEY"}, {Name: "X-Org", Value: "foo"}}},
		},
		{
			name: "ollama given with /v1 gets its server root",
			e:    entry("o", "10.0.0.5", 11434, map[string]string{MetaKind: "ollama", MetaBasePath: "/v1", MetaScheme: "https", MetaTLSInsecure: "true"}),
			want: &nodev1.Node{Id: "o", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "https://10.0.0.5:11434", TlsInsecureSkipVerify: true},
		},
		{
			name:    "bad insecure flag",
			e:       entry("i", "10.0.0.5", 1, map[string]string{MetaKind: "ollama", MetaTLSInsecure: "yes"}),
			wantErr: []string{`meta llmesh-tls-insecure-skip-verify "yes": want true or false`},
		},
		{
			name:    "tls over http, an adapter-owned header",
			e:       entry("h", "10.0.0.5", 1, map[string]string{MetaKind: "ollama", MetaTLSCAFile: "/ca.pem", MetaHeaderPrefix + "Content-Type": "x"}),
			wantErr: []string{"tls settings need an https url", "header Content-Type: set by the adapter itself"},
		},
		{
			name:    "an unknown kind",
			e:       entry("tgi", "10.0.0.5", 1, map[string]string{MetaKind: "tgi"}),
			wantErr: []string{`llmesh-kind "tgi": want auto (or none), ollama`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEntry(tc.e)
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.NotContains(t, err.Error(), "sk-secret-123", "a key pasted as a variable name is never echoed")
				return
			}
			require.NoError(t, err)
			assert.True(t, proto.Equal(tc.want, got), "got %v", got)
		})
	}
}

func TestFromEntriesSkipsAndReports(t *testing.T) {
	dup := entry("a", "10.0.0.6", 1, map[string]string{MetaKind: "ollama"})
	dup.Node.Node = "other-box"
	nodes, invalid := FromEntries([]*api.ServiceEntry{
		entry("b", "10.0.0.5", 1, map[string]string{MetaKind: "ollama"}),
		entry("a", "10.0.0.5", 1, map[string]string{MetaKind: "ollama"}),
		dup,
		entry("bad", "10.0.0.5", 1, map[string]string{MetaKind: "nope"}),
	})
	require.Len(t, nodes, 2)
	assert.Equal(t, "a", nodes[0].GetId(), "sorted by id")
	assert.Equal(t, "b", nodes[1].GetId())
	require.Len(t, invalid, 2)
	assert.Contains(t, invalid[0].Reason, `also registered on Consul node "box-a"`)
	assert.Equal(t, "bad", invalid[1].ID)
}

// Meta is FromEntry's inverse: a node registered from its Meta reads back
// as the same node.
func TestMetaRoundTrip(t *testing.T) {
	for _, n := range []*nodev1.Node{
		{Id: "a", Kind: nodev1.Kind_KIND_OLLAMA, BaseUrl: "http://10.0.0.5:11434", MaxInFlight: 3, NumParallel: 1, Group: "lan"},
		{Id: "b", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "https://api.example.com:8443/v1", ApiKeyEnv: "K", TlsServerName: "x"},
		{Id: "d", Kind: nodev1.Kind_KIND_OPENAI, RecognizeKind: true, BaseUrl: "http://10.0.0.5:11434/v1"},
		{Id: "c", Kind: nodev1.Kind_KIND_VLLM, BaseUrl: "https://10.0.0.5:11434/proxy", TlsCaFile: "/ca.pem", TlsCertFile: "/c.pem",
			TlsKeyFile: "/c.key", TlsInsecureSkipVerify: false, Headers: []*nodev1.Header{{Name: "X-A", Value: "1"}, {Name: "X-B", ValueEnv: "B"}}},
	} {
		meta, err := Meta(n)
		require.NoError(t, err)
		host, port := "10.0.0.5", 11434
		if n.GetId() == "b" {
			host, port = "api.example.com", 8443
		}
		for k, v := range meta {
			assert.Regexp(t, `^[A-Za-z0-9_-]{1,128}$`, k, "a key Consul accepts")
			assert.LessOrEqual(t, len(v), 512)
		}
		got, err := FromEntry(entry(n.GetId(), host, port, meta))
		require.NoError(t, err)
		assert.True(t, proto.Equal(n, got), "got %v", got)
	}
}
