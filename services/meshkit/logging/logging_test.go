package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// A line logged with a context that carries a span names its trace and
// span; one without, and one logged without a context, does not.
func TestTraceIDsOnContextLines(t *testing.T) {
	var out bytes.Buffer
	log, err := New(&out, "json", "info")
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	log.With("component", "router").ErrorContext(ctx, "internal error")
	log.InfoContext(context.Background(), "no span")
	log.Info("no context")

	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, sc.TraceID().String(), lines[0]["trace_id"])
	assert.Equal(t, sc.SpanID().String(), lines[0]["span_id"])
	assert.Equal(t, "router", lines[0]["component"], "attributes added with With are kept")
	for _, l := range lines[1:] {
		assert.NotContains(t, l, "trace_id")
	}
}

func TestNewRefusesUnknownSettings(t *testing.T) {
	_, err := New(&bytes.Buffer{}, "xml", "info")
	assert.ErrorContains(t, err, `log format "xml"`)
	_, err = New(&bytes.Buffer{}, "json", "loud")
	assert.ErrorContains(t, err, `log level "loud"`)
}
