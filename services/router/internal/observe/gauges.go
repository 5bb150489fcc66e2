package observe

import (
	"context"
	"slices"
	"strings"

	nodev1 "github.com/llmesh/llmesh/gen/go/llmesh/node/v1"
	"github.com/llmesh/llmesh/services/router/internal/nodestats"
	"github.com/llmesh/llmesh/services/router/internal/nodetable"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// States are the node-status label values, one gauge series each.
var States = []nodev1.Status{nodev1.Status_STATUS_UP, nodev1.Status_STATUS_DOWN, nodev1.Status_STATUS_MISCONFIGURED, nodev1.Status_STATUS_LOADING}

// StateName is the label value of a node status ("up", "down", …).
func StateName(s nodev1.Status) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATUS_"))
}

// Sources are the node-state source label values.
var Sources = []string{"healthmon", "consul", "last known"}

// Gauges registers, on mp, the gauges read from the router's state when
// metrics are collected: per node its status (one series per state, 1
// for the current one), requests in flight, breaker, and what it
// reports about its own load and loaded models; the queue length; and
// where the node state comes from (source returns one of Sources).
func Gauges(mp metric.MeterProvider, table *nodetable.Table, stats *nodestats.Stats, waiting func() int64, source func() string) error {
	m := mp.Meter(Scope)
	status, _ := m.Int64ObservableGauge("llmesh.node.status", metric.WithDescription("1 for a node's current status (label state), 0 for the others."))
	inFlight, _ := m.Int64ObservableGauge("llmesh.node.in_flight", metric.WithUnit("{request}"), metric.WithDescription("This router's requests in flight on a node."))
	breaker, _ := m.Int64ObservableGauge("llmesh.node.breaker.open", metric.WithDescription("1 while this router's circuit breaker keeps a node out of rotation."))
	running, _ := m.Int64ObservableGauge("llmesh.node.requests.running", metric.WithUnit("{request}"), metric.WithDescription("Requests a node (vLLM) reports running."))
	waitingN, _ := m.Int64ObservableGauge("llmesh.node.requests.waiting", metric.WithUnit("{request}"), metric.WithDescription("Requests a node (vLLM) reports waiting."))
	kv, _ := m.Float64ObservableGauge("llmesh.node.kv_cache.usage", metric.WithUnit("1"), metric.WithDescription("KV-cache use a node (vLLM) reports, 0 to 1."))
	busy, _ := m.Int64ObservableGauge("llmesh.node.slots.busy", metric.WithUnit("{slot}"), metric.WithDescription("Busy slots a node (llama.cpp) reports."))
	slots, _ := m.Int64ObservableGauge("llmesh.node.slots.total", metric.WithUnit("{slot}"), metric.WithDescription("Slots a node (llama.cpp) has."))
	size, _ := m.Int64ObservableGauge("llmesh.node.model.size", metric.WithUnit("By"), metric.WithDescription("Memory a loaded model takes on a node (Ollama's size)."))
	vram, _ := m.Int64ObservableGauge("llmesh.node.model.size_vram", metric.WithUnit("By"), metric.WithDescription("GPU memory a loaded model takes on a node (Ollama's size_vram)."))
	queue, _ := m.Int64ObservableGauge("llmesh.router.queue.length", metric.WithUnit("{request}"), metric.WithDescription("Requests waiting for a node below its in-flight cap."))
	src, _ := m.Int64ObservableGauge("llmesh.router.node_state.source", metric.WithDescription("1 for what the router's node state follows now (label source), 0 for the others."))
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(queue, waiting())
		now := source()
		for _, s := range Sources {
			o.ObserveInt64(src, b2i(s == now), metric.WithAttributes(attribute.String("source", s)))
		}
		for _, st := range table.Snapshot().States() {
			id := st.GetNode().GetId()
			node := AttrNodeID.String(id)
			for _, s := range States {
				o.ObserveInt64(status, b2i(st.GetStatus() == s), metric.WithAttributes(node, attribute.String("state", StateName(s))))
			}
			l := stats.Load(id)
			o.ObserveInt64(inFlight, l.InFlight, metric.WithAttributes(node))
			o.ObserveInt64(breaker, b2i(l.Open), metric.WithAttributes(node))
			if nl := st.GetLoad(); nl != nil {
				if nl.RequestsRunning != nil {
					o.ObserveInt64(running, int64(nl.GetRequestsRunning()), metric.WithAttributes(node))
				}
				if nl.RequestsWaiting != nil {
					o.ObserveInt64(waitingN, int64(nl.GetRequestsWaiting()), metric.WithAttributes(node))
				}
				if nl.KvCacheUsage != nil {
					o.ObserveFloat64(kv, nl.GetKvCacheUsage(), metric.WithAttributes(node))
				}
				if nl.SlotsBusy != nil {
					o.ObserveInt64(busy, int64(nl.GetSlotsBusy()), metric.WithAttributes(node))
				}
				if nl.SlotsTotal != nil {
					o.ObserveInt64(slots, int64(nl.GetSlotsTotal()), metric.WithAttributes(node))
				}
			}
			for _, mi := range st.GetModels() {
				if !mi.GetLoaded() || (mi.GetSizeBytes() == 0 && mi.GetSizeVram() == 0) {
					continue
				}
				attrs := metric.WithAttributes(node, attribute.String("model", mi.GetId()))
				o.ObserveInt64(size, mi.GetSizeBytes(), attrs)
				o.ObserveInt64(vram, mi.GetSizeVram(), attrs)
			}
		}
		return nil
	}, status, inFlight, breaker, running, waitingN, kv, busy, slots, size, vram, queue, src)
	return err
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// KnownIn is a Known that looks model up in table's current snapshot:
// a model some node serves or would serve when back.
func KnownIn(table *nodetable.Table) Known {
	return func(model string) bool {
		snap := table.Snapshot()
		if len(snap.Candidates(model)) > 0 {
			return true
		}
		return slices.ContainsFunc(snap.Unavailable(model), func(d nodetable.Down) bool { return d.HadModel })
	}
}

// RefusedConnections registers llmesh.router.connections.refused: the
// connections each listener (label listener: http, grpc) refused because
// their client address held -max-conns-per-client already.
func RefusedConnections(mp metric.MeterProvider, refused map[string]func() int64) error {
	m := mp.Meter(Scope)
	c, err := m.Int64ObservableCounter("llmesh.router.connections.refused", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections refused because their client address held -max-conns-per-client already."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for name, n := range refused {
			o.ObserveInt64(c, n(), metric.WithAttributes(attribute.String("listener", name)))
		}
		return nil
	}, c)
	return err
}
