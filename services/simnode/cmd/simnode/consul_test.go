package main

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/services/meshkit/consulnodes"
)

// The registration is what the mesh reads back as this node, with the
// Meta `llmesh node register` writes.
func TestRegistration(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		o        consulOptions
		flavor   string
		listen   string
		wantAddr string
		wantPort int
		wantMeta map[string]string
		wantURL  string
	}{
		{
			name: "ollama on loopback", o: consulOptions{service: "llm", nodeID: "sim-1"}, flavor: "ollama", listen: "127.0.0.1:11434",
			wantAddr: "127.0.0.1", wantPort: 11434, wantMeta: map[string]string{"llmesh-kind": "ollama", "llmesh-scheme": "http"},
			wantURL: "http://127.0.0.1:11434",
		},
		{
			name: "vllm on every interface: the host name, id by default", o: consulOptions{service: "llm"}, flavor: "vllm", listen: "0.0.0.0:8000",
			wantAddr: host, wantPort: 8000, wantMeta: map[string]string{"llmesh-kind": "vllm", "llmesh-scheme": "http"},
			wantURL: "http://" + net.JoinHostPort(host, "8000"),
		},
		{
			name: "advertised address, kind auto, key variable", o: consulOptions{service: "gpus", nodeID: "n", advertise: "sim-vllm:8000", kind: "auto", apiKeyEnv: "SIM_KEY"},
			flavor: "vllm", listen: "[::]:9000",
			wantAddr: "sim-vllm", wantPort: 8000, wantMeta: map[string]string{"llmesh-kind": "auto", "llmesh-scheme": "http", "llmesh-base-path": "/v1", "llmesh-api-key-env": "SIM_KEY"},
			wantURL: "http://sim-vllm:8000/v1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen, err := net.ResolveTCPAddr("tcp", tt.listen)
			if err != nil {
				t.Fatal(err)
			}
			reg, err := registration(tt.o, tt.flavor, listen)
			if err != nil {
				t.Fatal(err)
			}
			wantID := tt.o.nodeID
			if wantID == "" {
				wantID = host
			}
			if reg.ID != wantID || reg.Name != tt.o.service || reg.Address != tt.wantAddr || reg.Port != tt.wantPort {
				t.Errorf("registration = %s %s at %s:%d, want %s %s at %s:%d", reg.Name, reg.ID, reg.Address, reg.Port, tt.o.service, wantID, tt.wantAddr, tt.wantPort)
			}
			if len(reg.Meta) != len(tt.wantMeta) {
				t.Errorf("meta = %v, want %v", reg.Meta, tt.wantMeta)
			}
			for k, v := range tt.wantMeta {
				if reg.Meta[k] != v {
					t.Errorf("meta %s = %q, want %q", k, reg.Meta[k], v)
				}
			}
			if reg.Check != nil || len(reg.Checks) > 0 {
				t.Errorf("registration has checks: healthmon writes llmesh's")
			}
			n, err := consulnodes.FromEntry(&api.ServiceEntry{Node: &api.Node{Node: "agent", Address: "10.9.9.9"},
				Service: &api.AgentService{ID: reg.ID, Service: reg.Name, Address: reg.Address, Port: reg.Port, Meta: reg.Meta}})
			if err != nil {
				t.Fatalf("the mesh refuses the registration: %v", err)
			}
			if n.GetBaseUrl() != tt.wantURL {
				t.Errorf("the mesh reads base URL %s, want %s", n.GetBaseUrl(), tt.wantURL)
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	base, _, cancel, wait := startRun(t, "-flavor", "vllm", "-fault-probe-status", "503")
	_, port, err := net.SplitHostPort(base[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:" + port, "0.0.0.0:" + port} {
		if err := run(t.Context(), []string{"-healthcheck", "-addr", addr}, os.Stderr); err != nil {
			t.Errorf("-healthcheck -addr %s = %v, want nil (faults are not the container's health)", addr, err)
		}
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"-healthcheck", "-addr", "127.0.0.1:" + port}, os.Stderr)
	if err == nil {
		t.Fatal("-healthcheck of a stopped node succeeded")
	}
	if want := "connection refused"; !strings.Contains(err.Error(), want) {
		t.Errorf("-healthcheck = %v, want it to say %q", err, want)
	}
}
