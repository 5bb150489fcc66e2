package loopport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickGivesDistinctFreePortsBelowTheEphemeralRange(t *testing.T) {
	ports, err := Pick(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < lowest || p >= ephemeralStart() {
			t.Errorf("port %d outside [%d, %d)", p, lowest, ephemeralStart())
		}
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("picked port not free for TCP: %v", err)
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("picked port not free for UDP: %v", err)
		}
		l.Close()
		u.Close()
	}
}

func TestListenCanListenAgainOnItsPort(t *testing.T) {
	l, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	if addr.Port >= ephemeralStart() {
		t.Errorf("port %d is in the ephemeral range", addr.Port)
	}
	l.Close()
	again, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

func TestInUse(t *testing.T) {
	if !InUse([]byte(`Error starting agent: error="listen tcp 127.0.0.1:35635: bind: address already in use"`)) {
		t.Error("bind failure not recognised")
	}
	if InUse([]byte("agent: Consul agent running!")) {
		t.Error("normal start taken for a bind failure")
	}
}
