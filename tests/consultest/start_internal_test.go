package consultest

import (
	"errors"
	"path/filepath"
	"testing"
)

// An agent whose ports another process holds reports errAddrInUse, which is
// what makes Start try again with other ports.
func TestStartReportsPortsInUse(t *testing.T) {
	running := Start(t)
	clash := &Agent{Node: running.Node + "-clash", bin: running.bin, args: running.args,
		HTTPAddr: running.HTTPAddr, logPath: filepath.Join(t.TempDir(), "consul.log")}
	t.Cleanup(func() { clash.stop() })
	err := clash.start()
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on ports in use: got %v, want errAddrInUse", err)
	}
}
