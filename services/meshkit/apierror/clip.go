package apierror

import (
	"strings"
	"unicode/utf8"
)

// ClipRunes is how many characters of a client's value an error message
// quotes.
const ClipRunes = 64

// Clip is what an error message may quote of a value the client sent (a
// model name, an enum value, a field path): the value itself when it is
// short, else its first ClipRunes characters followed by "…". Bytes that
// are not UTF-8 are shown as U+FFFD. Every error that echoes client input
// goes through Clip, so an answer never grows with what the client sent
// (a 1 MiB model name would otherwise come back whole in the 404).
func Clip(s string) string {
	n, i := 0, 0
	for i < len(s) && n < ClipRunes {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	if i == len(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:i], "\uFFFD") + "…"
}
