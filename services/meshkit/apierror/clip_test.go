package apierror

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClip(t *testing.T) {
	long := strings.Repeat("a", ClipRunes)
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"short stays whole", "llama3.2:3b", "llama3.2:3b"},
		{"exactly the limit stays whole", long, long},
		{"one more is cut", long + "b", long + "…"},
		{"a megabyte is cut", strings.Repeat("x", 1<<20), strings.Repeat("x", ClipRunes) + "…"},
		{"cut on characters, not bytes", strings.Repeat("é", ClipRunes+1), strings.Repeat("é", ClipRunes) + "…"},
		{"invalid UTF-8 shown as U+FFFD", "mock-\xc3(", "mock-\uFFFD("},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Clip(tc.in))
		})
	}
}
