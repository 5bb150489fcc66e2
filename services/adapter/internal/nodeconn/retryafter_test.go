package nodeconn

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		headers map[string]string
		want    time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{"seconds with spaces", map[string]string{"Retry-After": " 7 "}, 7 * time.Second},
		{"HTTP date", map[string]string{"Retry-After": "Fri, 27 Nov 2026 12:02:00 GMT"}, 2 * time.Minute},
		{"date in the past", map[string]string{"Retry-After": "Fri, 27 Nov 2026 11:00:00 GMT"}, 0},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-5"}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"overflow", map[string]string{"Retry-After": "99999999999999999"}, 0},
		{"OpenAI's milliseconds win", map[string]string{"Retry-After": "2", "Retry-After-Ms": "1250"}, 1250 * time.Millisecond},
		{"bad milliseconds fall back", map[string]string{"Retry-After": "2", "Retry-After-Ms": "x"}, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.headers {
				h.Set(k, v)
			}
			if got := RetryAfter(h, now); got != c.want {
				t.Errorf("RetryAfter(%v) = %s, want %s", c.headers, got, c.want)
			}
		})
	}
}
