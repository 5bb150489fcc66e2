package envvar

import (
	"strings"
	"testing"
)

func TestBool(t *testing.T) {
	env := map[string]string{"ON": "true", "ONE": "1", "OFF": "False", "EMPTY": "", "BAD": "yes"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for name, want := range map[string]bool{"ON": true, "ONE": true, "OFF": false, "EMPTY": false, "UNSET": false} {
		got, err := Bool(lookup, name)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", name, got, err, want)
		}
	}
	_, err := Bool(lookup, "BAD")
	if err == nil || !strings.Contains(err.Error(), `BAD="yes"`) {
		t.Errorf("BAD: %v, want an error naming the variable and value", err)
	}
}
