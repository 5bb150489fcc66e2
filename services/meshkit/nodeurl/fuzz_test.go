package nodeurl

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input panics the parser, that whatever it
// accepts is a well-formed URL whose canonical form parses back to the
// same URL, and that no credentials survive into an accepted URL or an
// error message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:11434", "http://[::1]", "https://api.example.com/v1/", "http://u:p@h",
		"HTTP://H:80//", "http://h/a%2Fb", "http://h/%zz", "[::ffff:1.2.3.4]:1", "h:1/a?b#c", "http://h:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := Parse(raw)
		if err != nil {
			if strings.Contains(raw, "@") && strings.Contains(err.Error(), raw) && strings.Contains(raw, "://") {
				authority := raw[strings.Index(raw, "://")+3:]
				if i := strings.IndexAny(authority, "/?#"); i >= 0 {
					authority = authority[:i]
				}
				if strings.Contains(authority, "@") {
					t.Fatalf("error %q echoes the user information of %q", err, raw)
				}
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Port < 1 || u.Port > 65535 {
			t.Fatalf("Parse(%q) = %+v", raw, u)
		}
		if strings.HasSuffix(u.Path, "/") || (u.Path != "" && !strings.HasPrefix(u.Path, "/")) {
			t.Fatalf("Parse(%q) path %q", raw, u.Path)
		}
		s := u.String()
		if strings.Contains(s, "@") && !strings.Contains(u.Path, "@") {
			t.Fatalf("Parse(%q) kept user information: %s", raw, s)
		}
		again, err := Parse(s)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", s, raw, err)
		}
		if again != u {
			t.Fatalf("canonical %q of %q parses to %+v, want %+v", s, raw, again, u)
		}
	})
}
