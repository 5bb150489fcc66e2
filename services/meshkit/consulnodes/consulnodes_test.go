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
			want: &nodev1.Node{Id: "cloud", Kind: nodev1.Kind_KIND_OPENAI, BaseUrl: "https://api.example.com:443/v1",
				TlsServerName: "api.example.com", ApiKeyEnv: "CLOUD_KEY"},
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
				MetaMaxInFlight: "-1", MetaNumParallel: "many", MetaGroup: "g p u"}),
			wantErr: []string{`llmesh-max-in-flight "-1": want a count`, `llmesh-num-parallel "many": want a count`, `llmesh-group: group "g p u"`},
		},
		{
			name:    "no kind",
			e:       entry("nokind", "10.0.0.5", 1, nil),
			wantErr: []string{`llmesh-kind ""`},
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
	} {
		meta, err := Meta(n)
		require.NoError(t, err)
		host, port := "10.0.0.5", 11434
		if n.GetId() == "b" {
			host, port = "api.example.com", 8443
		}
		got, err := FromEntry(entry(n.GetId(), host, port, meta))
		require.NoError(t, err)
		assert.True(t, proto.Equal(n, got), "got %v", got)
	}
}
