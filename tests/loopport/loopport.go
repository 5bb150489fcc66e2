// Package loopport picks loopback ports for servers that tests start as
// other processes (Consul agents, ollama serve), which must be told their
// port before they bind it.
//
// A port found by listening on 127.0.0.1:0 and closing again comes from the
// kernel's ephemeral range, the same range every outgoing connection of
// every test takes its source port from; on a busy machine one of them
// grabs the port before the server binds it ("address already in use").
// Pick therefore chooses at random from the ports below the ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never hands out by
// itself, and checks that each is free. Processes that pick the same port
// at the same moment can still meet, rarely; callers that can, retry with
// new ports when the server reports the address in use.
package loopport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

const (
	lowest           = 10000 // below are the well-known and registered ports
	defaultEphemeral = 32768 // Linux's default start of the ephemeral range
	attempts         = 200
)

// Pick returns n distinct ports on 127.0.0.1 that were free for both TCP
// and UDP when it looked (Consul's Serf gossips over both on one port).
func Pick(n int) ([]int, error) {
	high := ephemeralStart()
	if high-lowest < 100*n {
		return nil, fmt.Errorf("loopport: only %d ports below the ephemeral range", high-lowest)
	}
	var ports []int
	var held []func() error
	defer func() {
		for _, release := range held {
			_ = release()
		}
	}()
	for try := 0; len(ports) < n; try++ {
		if try == attempts {
			return nil, errors.New("loopport: no loopback port free for both TCP and UDP")
		}
		port := lowest + rand.IntN(high-lowest)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", addr)
		if err != nil {
			tl.Close()
			continue
		}
		// Held until all n are chosen, so they are distinct.
		held = append(held, tl.Close, ul.Close)
		ports = append(ports, port)
	}
	return ports, nil
}

// Listen listens on a port of 127.0.0.1 below the ephemeral range, for a
// server that must be able to stop and listen on the same port again: a
// port in the ephemeral range may meanwhile become some connection's
// source port.
func Listen() (net.Listener, error) {
	high := ephemeralStart()
	for try := 0; try < attempts; try++ {
		port := lowest + rand.IntN(high-lowest)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return l, nil
		}
	}
	return nil, errors.New("loopport: no loopback port free for TCP")
}

// ephemeralStart reads the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return defaultEphemeral
	}
	start, err := strconv.Atoi(fields[0])
	if err != nil || start <= lowest {
		return defaultEphemeral
	}
	return start
}

// InUse reports whether a server's log says it could not bind its address.
func InUse(log []byte) bool {
	return strings.Contains(string(log), "address already in use")
}
