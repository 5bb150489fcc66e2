package nodeurl

import (
	"strconv"
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
			checkQuote(t, raw, err)
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

// checkQuote fails when err's quote of raw shows what may be a secret:
// user information (up to the last "@") or a query or fragment.
func checkQuote(t *testing.T, raw string, err error) {
	msg, ok := strings.CutPrefix(err.Error(), "url ")
	if !ok || !strings.HasPrefix(msg, `"`) {
		return // "url is required"
	}
	quoted, qerr := strconv.QuotedPrefix(msg)
	if qerr != nil {
		t.Fatalf("error %q does not quote the value", err)
	}
	q, _ := strconv.Unquote(quoted)
	s := strings.TrimSpace(raw)
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	var secrets []string
	if at := strings.LastIndex(s[start:], "@"); at >= 0 {
		secrets = append(secrets, s[start:start+at])
		s = s[:start] + s[start+at:] // what may be shown
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		secrets = append(secrets, s[i+1:])
		s = s[:i+1] // the "?" or "#" itself is shown
	}
	for _, secret := range secrets {
		if len(secret) >= 4 && !strings.Contains(s, secret) && strings.Contains(q, secret) {
			t.Fatalf("error %q shows %q of %q", err, secret, raw)
		}
	}
}
