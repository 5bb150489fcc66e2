package openaijson

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// encoder appends JSON to b. Writing field names and punctuation as literals
// in a fixed order is what lets the responses match OpenAI's byte layout and
// keeps encoding to (usually) the one allocation of the output buffer.
//
// The only value that can fail to encode is a non-finite float, so instead of
// threading errors through every call the first one is kept in err.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) raw(s string) { e.b = append(e.b, s...) }

func (e *encoder) byte(c byte) { e.b = append(e.b, c) }

// key writes "name": preceded by a comma unless it is the first member,
// for objects whose members are all optional.
func (e *encoder) key(name string) {
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

// str writes s as a JSON string, escaping only what JSON requires: quotes,
// backslashes and control characters. Non-ASCII text is written as UTF-8;
// invalid UTF-8 becomes U+FFFD as with encoding/json. Unlike encoding/json,
// <, > and & are not HTML-escaped: the output is never embedded in HTML and
// the escapes would only bloat streamed text.
func (e *encoder) str(s string) {
	const hex = "0123456789abcdef"
	b := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.b = append(b, '"')
}

// emptyAsNull writes s, or null when s is empty.
func (e *encoder) emptyAsNull(s string) {
	if s == "" {
		e.raw("null")
		return
	}
	e.str(s)
}

// nilAsNull writes *s, or null when s is nil.
func (e *encoder) nilAsNull(s *string) {
	if s == nil {
		e.raw("null")
		return
	}
	e.str(*s)
}

// strOr writes s, or def when s is empty; used for "object" fields that a
// producer may leave to the codec.
func (e *encoder) strOr(s, def string) {
	if s == "" {
		s = def
	}
	e.str(s)
}

func (e *encoder) i64(v int64) { e.b = strconv.AppendInt(e.b, v, 10) }

func (e *encoder) boolean(v bool) { e.b = strconv.AppendBool(e.b, v) }

// finite records an error for NaN and ±Inf, which JSON cannot express.
func (e *encoder) finite(f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if e.err == nil {
			e.err = errors.New("openaijson: cannot encode " + strconv.FormatFloat(f, 'g', -1, 64) + " as JSON")
		}
		return false
	}
	return true
}

// f64 writes a float64 the way encoding/json does: shortest round-trip
// digits, plain notation for 1e-6 <= |f| < 1e21, and a trimmed exponent
// (1e-7, not 1e-07) outside it.
func (e *encoder) f64(f float64) {
	if !e.finite(f) {
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		if n := len(e.b); n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

// f32 writes a float32 with the shortest digits that round-trip as float32,
// so an embedding value 0.3 is written 0.3 and not 0.30000001192092896.
func (e *encoder) f32(f float32) {
	if !e.finite(float64(f)) {
		return
	}
	e.b = strconv.AppendFloat(e.b, float64(f), 'g', -1, 32)
}

// strs writes a JSON array of strings.
func (e *encoder) strs(vs []string) {
	e.byte('[')
	for i, v := range vs {
		if i > 0 {
			e.byte(',')
		}
		e.str(v)
	}
	e.byte(']')
}
