// Package consulsource connects healthmon to Consul: LLM nodes come from a
// Consul service (watched with blocking queries), and healthmon's verdict
// on each goes back to Consul as a check on that node's service, so the
// Consul UI and health API tell the truth.
//
// Several healthmon replicas can run: all of them probe and serve the node
// stream, but only the holder of a Consul lock (key LockKey) writes checks,
// so replicas that briefly disagree never make a check flap.
package consulsource

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	healthmonv1 "github.com/llmesh/llmesh/gen/go/llmesh/healthmon/v1"
	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/meshkit/consulwatch"
)

// ReregisterGrace is how long, after Consul was unreachable or came back
// without its state, a node that Consul no longer lists stays monitored:
// its own agent, `llmesh node register` or the node itself registers it
// again meanwhile, and dropping it first would fail every request for its
// models until then. A node still missing after that is dropped.
const ReregisterGrace = 30 * time.Second

// callTimeout bounds one Consul write or lookup, so an agent that stopped
// answering cannot stall the check writer.
const callTimeout = 10 * time.Second

// Nodes is what the source drives: the monitor's node set and its stream.
type Nodes interface {
	SetNodes(ctx context.Context, nodes []*nodev1.Node)
	SetNotes(notes map[string]string)
	Watch(ctx context.Context, send func(*healthmonv1.WatchNodesResponse) error) error
}

// Source feeds Nodes from Consul and writes verdicts back.
type Source struct {
	Client  *api.Client
	Service string
	Nodes   Nodes
	Log     *slog.Logger
	// Static are healthmon's own configured nodes. They are registered in
	// Consul (again whenever they go missing there, e.g. after Consul lost
	// its state) and stay monitored whatever Consul says meanwhile. When
	// Consul has another registration under a static node's id, Consul's
	// wins: it is the one every router's fallback sees. The conflict is
	// logged once and noted in that node's reason.
	Static []*nodev1.Node
	// Wait bounds one blocking query (consulwatch.Watch.Wait).
	Wait time.Duration
	// CheckTTL is the TTL of checks written to an agent (DefaultCheckTTL
	// when zero).
	CheckTTL time.Duration

	// wmu orders check writes: a refresh never rewrites a verdict that a
	// newer write has replaced meanwhile.
	wmu       sync.Mutex
	mu        sync.Mutex
	placement map[string]placement // by node id
	reported  map[string]string    // invalid instance id → reason already logged
	conflicts map[string]string    // static node id → the conflict already logged
	invalid   map[string]verdict   // the check of each bad registration
	desired   map[string]verdict   // the check each monitored node should have
	written   map[string]verdict   // the check last written for each node
	kv        map[string]string    // KV's copy of each node's state as last written; "" = deleted
	leader    atomic.Bool          // this replica holds the writer lock
	viewed    atomic.Bool          // the monitor has had Consul's view of the nodes
	// listed are the nodes Consul listed in the last view (or kept, see
	// ReregisterGrace); keepUntil ends the grace after a gap in the watch.
	// Both belong to the watch's goroutine.
	listed    map[string]*nodev1.Node
	keepUntil time.Time
}

// verdict is the status and output of llmesh's check on a node.
type verdict struct{ status, output string }

// placement is where a node's service lives in Consul.
type placement struct {
	consulNode string
	address    string
	external   bool // registered in the catalog, on a node without an agent
}

// Run watches Consul and writes checks until ctx is done.
func (s *Source) Run(ctx context.Context) error {
	s.placement = map[string]placement{}
	s.reported = map[string]string{}
	s.conflicts = map[string]string{}
	s.invalid = map[string]verdict{}
	s.desired = map[string]verdict{}
	s.written = map[string]verdict{}
	s.kv = map[string]string{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.writeWhileLeader(ctx)
	}()
	// Until Consul first answers, the static nodes are all there is.
	s.Nodes.SetNodes(ctx, s.Static)
	w := &consulwatch.Watch{Client: s.Client, Service: s.Service, Wait: s.Wait, Log: s.Log,
		OnGap: func() { s.keepUntil = time.Now().Add(ReregisterGrace) }}
	w.Run(ctx, func(entries []*api.ServiceEntry) { s.apply(ctx, entries) })
	wg.Wait()
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
