// Package consultest runs real Consul agents for tests: `consul agent -dev`
// on loopback, on ports chosen by the test so that agents of parallel tests
// and packages never meet.
//
// The consul binary comes from `make consul` (bin/consul, Consul v1.14.11);
// Binary says where it is and Start fails when it is missing, so a suite
// that needs Consul can never pass by skipping.
package consultest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/llmesh/llmesh/tests/loopport"
	"github.com/llmesh/llmesh/tests/repo"
)

const (
	startTries   = 3
	readyTimeout = 60 * time.Second // generous: `go test -race` keeps both cores busy
	stopTimeout  = 10 * time.Second // SIGTERM grace before SIGKILL
)

// Binary returns the path of bin/consul at the repository root.
func Binary() (string, error) { return repo.Tool("consul", "consul") }

// Agent is one `consul agent -dev` process.
//
// Dev mode keeps everything in memory: after Stop and Restart the agent is
// a fresh single-node cluster on the same address, with an empty catalog,
// an empty KV store and a Raft index that starts again near zero. That is
// what a client sees when its Consul server is rebuilt, and watchers must
// cope with the index going backwards.
type Agent struct {
	HTTPAddr string // 127.0.0.1:port of the HTTP API
	Node     string // node name, unique per agent and kept across Restart
	// ManagementToken, with Options.ACL, may do everything; Client uses
	// it. Empty without ACLs.
	ManagementToken string

	bin        string
	configFile string // "" or an extra -config-file
	args       []string
	logPath    string
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd has exited
}

var agents atomic.Int64

// Options tune an agent.
type Options struct {
	// ACL turns Consul's ACL system on, denying what no token allows:
	//
	//	acl { enabled = true, default_policy = "deny",
	//	      tokens { initial_management = <random>, agent = <the same> } }
	//
	// The agent's own token (for its node's anti-entropy) is the
	// management token; clients get only what Token gives them.
	ACL bool
}

var errAddrInUse = errors.New("a port was taken by another process")

// Start runs a dev agent, waits until it has elected itself leader and
// registered its node, and stops it when the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Agent {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &Agent{
		Node:    fmt.Sprintf("consultest-%d-%d", os.Getpid(), agents.Add(1)),
		bin:     bin,
		logPath: filepath.Join(dir, "consul.log"),
	}
	if o.ACL {
		a.ManagementToken = newUUID(t)
		a.configFile = filepath.Join(dir, "acl.hcl")
		conf := fmt.Sprintf("acl {\n  enabled = true\n  default_policy = \"deny\"\n  tokens {\n    initial_management = %q\n    agent = %q\n  }\n}\n",
			a.ManagementToken, a.ManagementToken)
		if err := os.WriteFile(a.configFile, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = a.stop() // a failed stop shows in the agent's log, dumped on failure
		a.dumpOnFailure(t)
	})
	// Another process may take a port between the pick and the agent's
	// bind; a fresh agent then simply gets new ports.
	for try := 1; ; try++ {
		if err := a.choosePorts(); err != nil {
			t.Fatal(err)
		}
		err := a.start()
		if err == nil {
			return a
		}
		if !errors.Is(err, errAddrInUse) || try == startTries {
			t.Fatalf("consul agent on %s: %v", a.HTTPAddr, err)
		}
		t.Logf("consul agent on %s: %v; trying other ports", a.HTTPAddr, err)
	}
}

// choosePorts picks the agent's four listeners: HTTP and server RPC (TCP),
// Serf LAN and WAN (TCP and UDP). DNS, gRPC and gRPC-TLS are disabled:
// llmesh uses none of them, and dev mode would otherwise bind the fixed
// ports 8502 and 8503, which parallel agents would fight over.
func (a *Agent) choosePorts() error {
	ports, err := loopport.Pick(4)
	if err != nil {
		return err
	}
	a.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	a.args = []string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", a.Node,
		"-http-port", strconv.Itoa(ports[0]),
		"-server-port", strconv.Itoa(ports[1]),
		"-serf-lan-port", strconv.Itoa(ports[2]),
		"-serf-wan-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-log-level", "info", // dev mode's default DEBUG buries the useful lines
	}
	if a.configFile != "" {
		a.args = append(a.args, "-config-file", a.configFile)
	}
	return nil
}

// Stop stops the agent now (SIGTERM, then SIGKILL after 10s), as when
// Consul goes away. Stopping a stopped agent does nothing.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the agent again on the same address and node name, as
// when Consul comes back (stopping it first if it is running). Its state is
// gone: see Agent.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatalf("consul agent on %s: %v", a.HTTPAddr, err)
	}
}

// Client returns a consul/api client for this agent. It ignores the
// CONSUL_HTTP_ADDR and CONSUL_HTTP_SSL of the environment, which name some
// other Consul.
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	return a.ClientWithToken(t, a.ManagementToken)
}

// ClientWithToken returns a client that sends token ("" none).
func (a *Agent) ClientWithToken(t testing.TB, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: a.HTTPAddr, Scheme: "http", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Token creates (with Options.ACL) a policy named name with rules (ACL
// rules in HCL) and a token holding that policy only, and returns the
// token's secret.
func (a *Agent) Token(t testing.TB, name, rules string) string {
	t.Helper()
	acl := a.Client(t).ACL()
	p, _, err := acl.PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		t.Fatalf("policy %s: %v", name, err)
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{Description: name, Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
	if err != nil {
		t.Fatalf("token for %s: %v", name, err)
	}
	return tok.SecretID
}

// newUUID is a random UUID, the form Consul wants its tokens in.
func newUUID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// start runs the agent and waits until it is ready. errAddrInUse says it
// could not bind one of its ports.
func (a *Agent) start() error {
	// Append, so the log of a restarted agent keeps what came before.
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s %v\n", a.bin, a.args)
	logStart, _ := logf.Seek(0, io.SeekCurrent)
	a.cmd = exec.Command(a.bin, a.args...)
	// A test binary that dies (a timeout panic) takes its agent along.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	a.done = done
	cmd := a.cmd
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	if err := a.waitReady(done); err != nil {
		_ = a.stop() // the start failed: its error is the one to report
		if b, _ := os.ReadFile(a.logPath); int64(len(b)) > logStart && loopport.InUse(b[logStart:]) {
			return fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return err
	}
	return nil
}

// waitReady polls until the agent is a usable single-node cluster: it has
// a leader (else writes fail with "No cluster leader"), its own API answers,
// and its node is in the catalog (the first anti-entropy sync is done, so
// reads of what a test registers do not race that sync).
func (a *Agent) waitReady(exited <-chan struct{}) error {
	base := "http://" + a.HTTPAddr
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		last = a.ready(base)
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready: %v", a.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		}
	}
}

func (a *Agent) ready(base string) error {
	var leader string
	if err := a.getJSON(base+"/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	if err := a.getJSON(base+"/v1/agent/self", nil); err != nil {
		return err
	}
	var node *struct{ Node struct{ Node string } }
	if err := a.getJSON(base+"/v1/catalog/node/"+a.Node, &node); err != nil {
		return err
	}
	if node == nil {
		return errors.New("node not in the catalog yet")
	}
	return nil
}

func (a *Agent) getJSON(url string, v any) error {
	client := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if a.ManagementToken != "" {
		req.Header.Set("X-Consul-Token", a.ManagementToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (a *Agent) stop() error {
	if a.cmd == nil {
		return nil
	}
	select {
	case <-a.done:
		return nil
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	return fmt.Errorf("consul agent on %s ignored SIGTERM for %s; killed", a.HTTPAddr, stopTimeout)
}

func (a *Agent) dumpOnFailure(t testing.TB) {
	if !t.Failed() {
		return
	}
	b, _ := os.ReadFile(a.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("---- consul agent %s log (tail) ----\n%s", a.HTTPAddr, b)
}
