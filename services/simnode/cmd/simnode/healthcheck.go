package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	meshhealth "github.com/llmesh/llmesh/services/meshkit/healthcheck"
)

// healthPath is what -healthcheck asks for: an admin endpoint every
// flavour serves and no injected fault touches, so a node is healthy
// while it answers HTTP at all (its faults are the mesh's business).
const healthPath = "/simnode/stats"

// healthTimeout bounds -healthcheck.
const healthTimeout = 3 * time.Second

// healthcheck GETs healthPath from the node listening on listen, over
// loopback when listen is 0.0.0.0 or ::, and returns nil on a 2xx answer
// within healthTimeout.
func healthcheck(ctx context.Context, listen string) error {
	addr, err := meshhealth.DialAddr(listen)
	if err != nil {
		return fmt.Errorf("healthcheck: -addr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	url := "http://" + addr + healthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err) // *url.Error names the URL
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("healthcheck %s: %s", url, resp.Status)
	}
	return nil
}
