// Package envvar reads the services' environment settings strictly: a
// value that does not parse is an error naming the variable, never a
// silent default.
package envvar

import (
	"fmt"
	"strconv"
)

// Bool reads name with lookup (os.LookupEnv in production): false when
// unset or empty, else one of strconv.ParseBool's spellings (1, t, true,
// 0, f, false, in any case).
func Bool(lookup func(string) (string, bool), name string) (bool, error) {
	v, ok := lookup(name)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}
