// Package ollamatest runs real `ollama serve` processes for tests: each on
// a free loopback port with its own model store, serving tiny models
// imported from a tinygguf file with `ollama create`.
//
// The ollama binary comes from `make ollama` (bin/ollama); Binary says
// where it is and fails when it is missing, so a suite that needs it can
// never pass by skipping.
package ollamatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmesh/llmesh/tests/loopport"
	"github.com/llmesh/llmesh/tests/repo"
	"github.com/llmesh/llmesh/tests/tinygguf"
)

const startTries = 3

var errAddrInUse = errors.New("its port was taken by another process")

// Binary returns the path of bin/ollama at the repository root.
func Binary() (string, error) { return repo.Tool("ollama", "ollama") }

// Model is a model to import into a server.
type Model struct {
	Name       string // e.g. "tiny-chat"
	NumPredict int    // default answer length in tokens when a request sets none; 16 if 0
}

// Options configure one server.
type Options struct {
	Models []Model
	// Env adds OLLAMA_* settings, e.g. "OLLAMA_NUM_PARALLEL=1".
	Env []string
}

// Server is one running `ollama serve`.
type Server struct {
	ID   string
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port, for OLLAMA_HOST
	bin  string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Start runs a server and imports its models. It stops when the test ends.
func Start(t testing.TB, id string, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &Server{ID: id, bin: bin, dir: dir, log: filepath.Join(dir, "serve.log")}
	t.Cleanup(func() { s.Kill(); s.dumpOnFailure(t) })
	// Another process may take the port between the pick and the server's
	// bind; the server then simply gets a new one.
	for try := 1; ; try++ {
		ports, err := loopport.Pick(1)
		if err != nil {
			t.Fatal(err)
		}
		s.Host = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.URL = "http://" + s.Host
		err = s.start(opts.Env)
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || try == startTries {
			t.Fatalf("ollama serve %s: %v", s.ID, err)
		}
		t.Logf("ollama serve %s: %v; trying another port", s.ID, err)
	}

	gguf := filepath.Join(dir, "tiny.gguf")
	f, err := os.Create(gguf)
	if err != nil {
		t.Fatal(err)
	}
	if err := tinygguf.Write(f, tinygguf.Spec{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, m := range opts.Models {
		s.create(t, m, gguf)
	}
	return s
}

func (s *Server) env(extra []string) []string {
	env := append(os.Environ(),
		"OLLAMA_HOST="+s.Host,
		"OLLAMA_MODELS="+filepath.Join(s.dir, "models"),
		"HOME="+s.dir, // ollama keeps its key pair under ~/.ollama
		"OLLAMA_NOPRUNE=1",
		"GIN_MODE=release",
	)
	return append(env, extra...)
}

// start runs `ollama serve` and waits until it answers. errAddrInUse says
// it could not bind its port.
func (s *Server) start(extra []string) error {
	logf, err := os.Create(s.log)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(s.bin, "serve")
	s.cmd.Env = s.env(extra)
	// Its own process group, so Kill takes the model runners it starts
	// down with it: an orphaned runner would keep burning CPU.
	// Pdeathsig: a test binary that dies (a timeout panic) takes it along.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(s.log)
			if loopport.InUse(b) {
				return fmt.Errorf("%w: %s", errAddrInUse, b)
			}
			return fmt.Errorf("exited:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return errors.New("not ready after 60s")
		}
	}
}

func (s *Server) create(t testing.TB, m Model, gguf string) {
	t.Helper()
	n := m.NumPredict
	if n == 0 {
		n = 16
	}
	modelfile := filepath.Join(s.dir, m.Name+".Modelfile")
	content := fmt.Sprintf("FROM %s\n"+
		"TEMPLATE \"\"\"{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}\n{{ end }}<|assistant|>\"\"\"\n"+
		"PARAMETER num_ctx 256\nPARAMETER num_predict %d\n", gguf, n)
	if err := os.WriteFile(modelfile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "create", m.Name, "-f", modelfile)
	cmd.Env = s.env(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ollama create %s on %s: %v\n%s", m.Name, s.ID, err, out)
	}
}

// Kill stops the server and its runners at once (SIGKILL to the process
// group), as a crash of the whole service would.
func (s *Server) Kill() {
	if s.done == nil {
		return // never started
	}
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-s.done
}

// Log returns what the server has logged so far, including Ollama's
// access log: one "[GIN] … | status | … | POST "/path"" line per request.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

func (s *Server) dumpOnFailure(t testing.TB) {
	if !t.Failed() {
		return
	}
	b, _ := os.ReadFile(s.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("---- ollama %s log (tail) ----\n%s", s.ID, b)
}

// Get fetches path from the server's API and returns the body.
func (s *Server) Get(t testing.TB, path string) string {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
