package consulreg

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A service listening on every interface is registered without an address
// (Consul then uses its agent node's) and checked over loopback; one
// listening on a given address advertises and is checked at that address.
func TestRegistrationAddress(t *testing.T) {
	cases := []struct {
		listen, agent, wantAddr, wantCheck string
	}{
		{"0.0.0.0:9091", "", "", "127.0.0.1:9091"},
		{"[::]:9091", "", "", "127.0.0.1:9091"},
		// An agent on this host, however it is named, is local.
		{"0.0.0.0:9091", "127.0.0.1:8500", "", "127.0.0.1:9091"},
		{"0.0.0.0:9091", "localhost:8500", "", "127.0.0.1:9091"},
		{"0.0.0.0:9091", "[::1]:8500", "", "127.0.0.1:9091"},
		{"127.0.0.1:9091", "", "127.0.0.1", "127.0.0.1:9091"},
		{"10.0.0.5:9091", "", "10.0.0.5", "10.0.0.5:9091"},
		{"[fd00::5]:9091", "", "fd00::5", "[fd00::5]:9091"},
	}
	for _, tc := range cases {
		t.Run(tc.listen+" agent "+tc.agent, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tc.listen)
			require.NoError(t, err)
			reg, err := Instance{Name: "llmesh-adapter", Addr: addr, Agent: tc.agent}.registration()
			require.NoError(t, err)
			assert.Equal(t, tc.wantAddr, reg.Address)
			assert.Equal(t, 9091, reg.Port)
			assert.Equal(t, tc.wantCheck, reg.Check.GRPC)
		})
	}
}
