// Package promtext reads the few samples llmesh needs from a Prometheus
// text exposition (a node's /metrics), such as vLLM's
// `vllm:num_requests_running{model_name="m"} 2.0`.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Samples returns, for each wanted metric name, the values of all its
// series (one per label set) in the order they appear. Names not in the
// text are absent from the map. Comments, other metrics and malformed
// lines of other metrics are skipped; a malformed value of a wanted
// metric is an error.
func Samples(r io.Reader, names ...string) (map[string][]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := splitName(line)
		if !want[name] {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			end := labelsEnd(rest)
			if end < 0 {
				return nil, fmt.Errorf("metric %s: unterminated label set", name)
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metric %s: no value", name)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: value %q: %w", name, fields[0], err)
		}
		out[name] = append(out[name], v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// splitName cuts a sample line after its metric name.
func splitName(line string) (name, rest string) {
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], line[i:]
}

// labelsEnd is the index of the '}' closing the label set that s starts
// with, honouring quoted values with escapes; -1 when there is none.
func labelsEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i
		}
	}
	return -1
}
