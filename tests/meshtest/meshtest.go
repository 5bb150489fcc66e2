// Package meshtest starts llmesh the way a user does — router, adapter and
// healthmon as separate processes on 127.0.0.1 — in front of simulated
// nodes served in-process, for end-to-end tests and benchmarks.
package meshtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/simnode/simnode"
	"github.com/llmesh/llmesh/tests/loopport"
	"github.com/llmesh/llmesh/tests/repo"
)

// Main is a suite's TestMain: it checks the suite's prerequisites (e.g.
// that bin/consul exists), builds the services into a temporary directory
// (setting *bins), runs the tests and exits.
func Main(m *testing.M, bins *map[string]string, prereqs ...func() (string, error)) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, p := range prereqs {
		if _, err := p(); err != nil {
			fail(err)
		}
	}
	dir, err := os.MkdirTemp("", "llmesh-bin-")
	if err != nil {
		fail(err)
	}
	if *bins, err = Binaries(dir); err != nil {
		os.RemoveAll(dir)
		fail(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Binaries builds the three services, the llmesh CLI and simnode into dir
// once and returns their paths by name.
func Binaries(dir string) (map[string]string, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var args []string
	for _, svc := range []string{"router", "adapter", "healthmon"} {
		args = append(args, "./services/"+svc+"/cmd/"+svc)
		out[svc] = filepath.Join(dir, svc)
	}
	args = append(args, "./services/llmesh/cmd/llmesh", "./services/simnode/cmd/simnode")
	out["llmesh"] = filepath.Join(dir, "llmesh")
	out["simnode"] = filepath.Join(dir, "simnode")
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, args...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, b)
	}
	return out, nil
}

// Node is a simulated node on a real loopback HTTP server.
type Node struct {
	*simnode.Server
	ID       string
	URL      string
	ModelIDs []string
	Kind     string // nodes-file kind: the simnode flavour
	// MaxInFlight and Group, set before Start, go into the nodes file.
	MaxInFlight int
	Group       string
	mu          sync.Mutex // guards srv
	srv         *http.Server
	lis         net.Listener
}

// StartNode serves a simulated node on 127.0.0.1 until the test ends or
// Kill is called.
func StartNode(t testing.TB, id string, cfg simnode.Config) *Node {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = id
	}
	s, err := simnode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Restart listens on the same port again, so keep out of the range that
	// outgoing connections take their source ports from.
	lis, err := loopport.Listen()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Server: s, ID: id, ModelIDs: cfg.Models, Kind: cfg.Flavor, URL: "http://" + lis.Addr().String(), lis: lis}
	n.serve(lis)
	t.Cleanup(n.Kill)
	return n
}

func (n *Node) serve(lis net.Listener) {
	srv := &http.Server{Handler: n.Server}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// Kill stops the node at once: its listener closes and open connections
// drop, as when the process dies.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	_ = n.srv.Close()
}

// Restart serves the killed node again on its address, as when the
// process comes back.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	lis, err := net.Listen("tcp", n.lis.Addr().String())
	if err != nil {
		t.Fatalf("restart node %s: %v", n.ID, err)
	}
	n.serve(lis)
}

// Options tune a mesh.
type Options struct {
	// HealthmonArgs are extra healthmon flags (defaults probe every 100ms).
	HealthmonArgs []string
	RouterArgs    []string
	Env           []string // extra environment for every process
	// AdapterEnv, HealthmonEnv and RouterEnv are more environment for
	// that service's processes only, after Env (e.g. each its own
	// CONSUL_HTTP_TOKEN).
	AdapterEnv, HealthmonEnv, RouterEnv []string
	// Consul, when set (host:port of a Consul agent's HTTP API), runs
	// healthmon with -consul: the nodes are registered in Consul and
	// discovered from there.
	Consul string
	// ConsulDiscovery (with Consul) also registers every service in Consul
	// and lets router and healthmon find adapters and healthmons there.
	ConsulDiscovery bool
	// Adapters and Healthmons are how many replicas to run (default 1).
	Adapters, Healthmons int
	// NoModelWait skips waiting for the nodes' models (for tests that
	// register nodes later).
	NoModelWait bool
}

// Mesh is a running router + adapter + healthmon.
type Mesh struct {
	RESTURL  string // http://127.0.0.1:port (no /v1)
	GRPCAddr string // router native gRPC
	// RouterAdminURL is the first router's admin address (/debug/nodes).
	RouterAdminURL string
	AdapterAddr    string
	HealthmonAddr  string
	procs          []*proc
	dir            string
	healthmonBin   string
	healthmonArgs  []string
	healthmonEnv   []string
	routerBin      string
	routerArgs     []string
	routerEnv      []string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// NodeRef is what the mesh needs to know of a node: its nodes-file entry
// and the models it serves (to know when the mesh is ready).
type NodeRef struct {
	ID, URL     string
	Models      []string
	Kind        string // the nodes-file kind; "" is ollama
	APIKeyEnv   string // the adapter's variable with its key (see Options.Env)
	MaxInFlight int    // the node's max_in_flight; 0: its kind's default
	Group       string // the node's group
	// Extra is more of the node's nodes-file entry, YAML lines indented
	// by four spaces (e.g. "    api_key_env: KEY\n").
	Extra string
}

// Ref is n as a NodeRef.
func (n *Node) Ref() NodeRef {
	return NodeRef{ID: n.ID, URL: n.URL, Models: n.ModelIDs, Kind: n.Kind, MaxInFlight: n.MaxInFlight, Group: n.Group}
}

// Start runs the mesh in front of simulated nodes; see StartRefs.
func Start(t testing.TB, bins map[string]string, nodes []*Node, opts Options) *Mesh {
	t.Helper()
	refs := make([]NodeRef, len(nodes))
	for i, n := range nodes {
		refs[i] = n.Ref()
	}
	return StartRefs(t, bins, refs, opts)
}

// StartRefs runs the mesh in front of nodes and waits until the router
// lists every model they serve.
func StartRefs(t testing.TB, bins map[string]string, nodes []NodeRef, opts Options) *Mesh {
	t.Helper()
	dir := t.TempDir()
	var yaml strings.Builder
	yaml.WriteString("nodes:\n")
	for _, n := range nodes {
		kind := n.Kind
		if kind == "" {
			kind = "ollama"
		}
		fmt.Fprintf(&yaml, "  - id: %s\n    kind: %s\n    url: %s\n    max_in_flight: %d\n", n.ID, kind, n.URL, n.MaxInFlight)
		if n.Group != "" {
			fmt.Fprintf(&yaml, "    group: %s\n", n.Group)
		}
		if n.APIKeyEnv != "" {
			fmt.Fprintf(&yaml, "    api_key_env: %s\n", n.APIKeyEnv)
		}
		yaml.WriteString(n.Extra)
	}
	nodesFile := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(nodesFile, []byte(yaml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mesh{}
	t.Cleanup(func() { m.stop(t) })

	consulEnv := append(append([]string{}, opts.Env...), "CONSUL_HTTP_ADDR="+opts.Consul)
	discovery := opts.Consul != "" && opts.ConsulDiscovery
	for range max(opts.Adapters, 1) {
		aargs, aenv := []string{"-grpc-addr", "127.0.0.1:0"}, opts.Env
		if len(nodes) > 0 {
			// The operator's nodes file binds the variables its nodes
			// name to their hosts, as `make run` does.
			aargs = append(aargs, "-nodes", nodesFile)
		}
		if discovery {
			aargs, aenv = append(aargs, "-consul"), consulEnv
		}
		adapter := m.run(t, bins["adapter"], dir, append(slices.Clone(aenv), opts.AdapterEnv...), aargs...)
		m.AdapterAddr = adapter.addr(t, "addr")
	}
	hargs := []string{"-grpc-addr", "127.0.0.1:0", "-probe-interval", "100ms", "-rise", "1", "-fall", "1"}
	if !discovery {
		hargs = append(hargs, "-adapter-addr", m.AdapterAddr)
	}
	if len(nodes) > 0 {
		hargs = append(hargs, "-nodes", nodesFile)
	}
	henv := opts.Env
	if opts.Consul != "" {
		hargs = append(hargs, "-consul", "-consul-wait", "1s")
		henv = consulEnv
	}
	henv = append(slices.Clone(henv), opts.HealthmonEnv...)
	m.healthmonBin, m.healthmonArgs, m.healthmonEnv = bins["healthmon"], append(hargs, opts.HealthmonArgs...), henv
	for i := range max(opts.Healthmons, 1) {
		healthmon := m.run(t, m.healthmonBin, dir, henv, m.healthmonArgs...)
		if i == 0 {
			m.HealthmonAddr = healthmon.addr(t, "grpc")
		}
	}
	rargs, renv := []string{"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, opts.Env
	if discovery {
		rargs, renv = append(rargs, "-consul"), consulEnv
	} else {
		rargs = append(rargs, "-adapter-addr", m.AdapterAddr, "-healthmon-addr", m.HealthmonAddr)
	}
	m.dir, m.routerArgs, m.routerEnv = dir, append(rargs, opts.RouterArgs...), append(slices.Clone(renv), opts.RouterEnv...)
	m.routerBin = bins["router"]
	router := m.run(t, bins["router"], dir, m.routerEnv, m.routerArgs...)
	m.GRPCAddr = router.addr(t, "grpc")
	m.RESTURL = "http://" + router.addr(t, "http")
	m.RouterAdminURL = "http://" + router.addr(t, "admin")

	if opts.NoModelWait {
		return m
	}
	want := map[string]bool{}
	for _, n := range nodes {
		for _, model := range n.Models {
			want[model] = true
		}
	}
	m.WaitModels(t, len(want))
	return m
}

// WaitModels waits until GET /v1/models lists n models.
func (m *Mesh) WaitModels(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := m.countModels()
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			m.dumpLogs(t)
			t.Fatalf("router lists %d models, want %d (err %v)", got, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var modelID = regexp.MustCompile(`"id":`)

func (m *Mesh) countModels() (int, error) {
	resp, err := http.Get(m.RESTURL + "/v1/models")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return len(modelID.FindAll(b, -1)), nil
}

func (m *Mesh) run(t testing.TB, bin, dir string, env []string, args ...string) *proc {
	t.Helper()
	name := filepath.Base(bin)
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, len(m.procs)))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// A test binary that dies (a timeout panic) takes its services along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	m.procs = append(m.procs, p)
	return p
}

// addr waits for the process's "listening" log line and returns the
// address logged under key.
func (p *proc) addr(t testing.TB, key string) string {
	t.Helper()
	re := regexp.MustCompile(`msg=(?:listening|"admin listening").* ` + key + `=(127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(p.log)
		if mm := re.FindSubmatch(b); mm != nil {
			return string(mm[1])
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening:\n%s", p.name, b)
		case <-time.After(10 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(p.log)
	t.Fatalf("%s did not log its %s address:\n%s", p.name, key, b)
	return ""
}

// Stop sends SIGTERM to every process of a service ("router", "adapter"
// or "healthmon") and waits for them to exit.
func (m *Mesh) Stop(t testing.TB, name string) {
	for _, p := range m.procs {
		if p.name == name {
			p.terminate(t)
		}
	}
}

// StartHealthmon runs one more healthmon, configured like the first (on
// the same address when HealthmonArgs fixed one: to bring back a healthmon
// that was stopped).
func (m *Mesh) StartHealthmon(t testing.TB) {
	t.Helper()
	m.StartHealthmonEnv(t)
}

// StartHealthmonEnv is StartHealthmon with more environment (after the
// first healthmon's), e.g. another CONSUL_HTTP_TOKEN.
func (m *Mesh) StartHealthmonEnv(t testing.TB, env ...string) {
	t.Helper()
	p := m.run(t, m.healthmonBin, m.dir, append(slices.Clone(m.healthmonEnv), env...), m.healthmonArgs...)
	p.addr(t, "grpc")
}

// StartRouter runs one more router, configured like the first, and
// returns its REST base URL.
func (m *Mesh) StartRouter(t testing.TB) string {
	t.Helper()
	return m.StartRouterEnv(t)
}

// StartRouterEnv is StartRouter with more environment (after the first
// router's), e.g. another CONSUL_HTTP_TOKEN.
func (m *Mesh) StartRouterEnv(t testing.TB, env ...string) string {
	t.Helper()
	p := m.run(t, m.routerBin, m.dir, append(slices.Clone(m.routerEnv), env...), m.routerArgs...)
	return "http://" + p.addr(t, "http")
}

// Logs returns what each running or exited process of a service logged.
func (m *Mesh) Logs(name string) []string {
	var out []string
	for _, p := range m.procs {
		if p.name == name {
			b, _ := os.ReadFile(p.log)
			out = append(out, string(b))
		}
	}
	return out
}

// KillWhere kills the first running process of a service whose log so far
// contains text.
func (m *Mesh) KillWhere(t testing.TB, name, text string) {
	for _, p := range m.procs {
		b, _ := os.ReadFile(p.log)
		if p.name == name && strings.Contains(string(b), text) {
			_ = p.cmd.Process.Kill()
			<-p.done
			return
		}
	}
	t.Fatalf("no %s logged %q", name, text)
}

// Kill sends SIGKILL to the first still-running process of a service, as
// a crash would, and waits for it to exit.
func (m *Mesh) Kill(t testing.TB, name string) {
	for _, p := range m.procs {
		select {
		case <-p.done:
			continue
		default:
		}
		if p.name == name {
			_ = p.cmd.Process.Kill()
			<-p.done
			return
		}
	}
	t.Fatalf("no running %s to kill", name)
}

func (p *proc) terminate(t testing.TB) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s ignored SIGTERM for 15s", p.name)
	}
}

func (m *Mesh) stop(t testing.TB) {
	var wg sync.WaitGroup
	for _, p := range m.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.terminate(t) }()
	}
	wg.Wait()
	if t.Failed() {
		m.dumpLogs(t)
	}
}

func (m *Mesh) dumpLogs(t testing.TB) {
	for _, p := range m.procs {
		b, _ := os.ReadFile(p.log)
		t.Logf("---- %s log ----\n%s", p.name, b)
	}
}

// Context is a test context bounded to d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
