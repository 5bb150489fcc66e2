// Package admin serves a service's operator endpoints on their own
// address, away from the API: /debug/pprof for profiling on every service,
// plus what a service adds (the router's /debug/nodes). It is off unless an
// address is given.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Route is one endpoint a service adds.
type Route struct {
	Pattern string // a net/http ServeMux pattern, e.g. "/debug/nodes"
	Handler http.Handler
}

// Serve serves the admin endpoints and routes on addr until ctx is done.
// An empty addr serves nothing and returns when ctx is done.
func Serve(ctx context.Context, addr string, log *slog.Logger, routes ...Route) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("admin listening", "admin", lis.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
