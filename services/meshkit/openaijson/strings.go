package openaijson

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// str decodes a string value; null is "".
func (d *decoder) str() (string, error) {
	switch d.next() {
	case '"':
		b, err := d.strView()
		if err != nil {
			return "", err
		}
		return intern(b), nil
	case 'n':
		return "", d.literal("null")
	default:
		return "", d.typeErr("a string")
	}
}

// optStr decodes a string whose presence matters; null is nil.
func (d *decoder) optStr() (*string, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// intern returns constant strings for the values that recur in every request
// and response (roles, types, finish reasons), so decoding them does not allocate; anything else is copied.
// Copying rather than aliasing the input keeps a long-lived string (say a
// model name used as a metrics label) from pinning a whole body in memory.
func intern(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "system":
		return "system"
	case "developer":
		return "developer"
	case "user":
		return "user"
	case "assistant":
		return "assistant"
	case "tool":
		return "tool"
	case "function":
		return "function"
	case "text":
		return "text"
	case "image_url":
		return "image_url"
	case "input_audio":
		return "input_audio"
	case "auto":
		return "auto"
	case "none":
		return "none"
	case "required":
		return "required"
	case "low":
		return "low"
	case "high":
		return "high"
	case "stop":
		return "stop"
	case "length":
		return "length"
	case "tool_calls":
		return "tool_calls"
	case "content_filter":
		return "content_filter"
	case "chat.completion":
		return "chat.completion"
	case "chat.completion.chunk":
		return "chat.completion.chunk"
	case "list":
		return "list"
	case "model":
		return "model"
	case "embedding":
		return "embedding"
	case "json_object":
		return "json_object"
	case "json_schema":
		return "json_schema"
	case "float":
		return "float"
	case "base64":
		return "base64"
	}
	return string(b)
}

// strView decodes the string starting at pos (a '"') and returns its bytes:
// a slice of the input when the string needs no rewriting, else of d.buf.
func (d *decoder) strView() ([]byte, error) {
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return d.data[start:i], nil
		case c == '\\' || c < 0x20 || c >= 0x80:
			return d.strSlow(start, i)
		}
	}
	d.pos = len(d.data)
	return nil, d.unexpected()
}

// strSlow continues strView from i, the first byte that may need work:
// escapes are resolved and lone surrogates become U+FFFD (as encoding/json
// does), because proto3 strings must be valid UTF-8. Bytes that are not
// UTF-8 are refused in strict mode (a client's request) and otherwise
// become U+FFFD too. Valid non-ASCII text without escapes is still
// returned as an input slice.
func (d *decoder) strSlow(start, i int) ([]byte, error) {
	data := d.data
	buf := d.buf[:0]
	copied := false
	lit := start // first byte not yet copied into buf
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			if !copied {
				return data[start:i], nil
			}
			buf = append(buf, data[lit:i]...)
			d.buf = buf
			return buf, nil
		case c == '\\':
			buf = append(buf, data[lit:i]...)
			copied = true
			d.pos = i
			n, err := d.escape(&buf)
			if err != nil {
				return nil, err
			}
			i += n
			lit = i
		case c < 0x20:
			d.pos = i
			return nil, d.syntaxErr("invalid control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				if d.strict {
					d.pos = i
					return nil, &DecodeError{Msg: "string is not valid UTF-8 (byte 0x" +
						strconv.FormatUint(uint64(c), 16) + " at offset " + strconv.Itoa(i) + "); JSON text must be UTF-8"}
				}
				buf = append(buf, data[lit:i]...)
				buf = utf8.AppendRune(buf, utf8.RuneError)
				copied = true
				lit = i + 1
			}
			i += size
		}
	}
	d.pos = len(data)
	return nil, d.unexpected()
}

// escape decodes the escape sequence at pos into buf and returns its length.
func (d *decoder) escape(buf *[]byte) (int, error) {
	data := d.data[d.pos:]
	if len(data) < 2 {
		d.pos = len(d.data)
		return 0, d.unexpected()
	}
	var r byte
	switch data[1] {
	case '"', '\\', '/':
		r = data[1]
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		r1, ok := hex4(data[2:])
		if !ok {
			return 0, d.syntaxErr("invalid \\u escape in string")
		}
		n := 6
		if utf16.IsSurrogate(r1) {
			// A high surrogate must pair with a following \u low surrogate;
			// anything else is a lone surrogate, which becomes U+FFFD.
			r2, ok := rune(0), false
			if len(data) >= 12 && data[6] == '\\' && data[7] == 'u' {
				r2, ok = hex4(data[8:])
			}
			if dec := utf16.DecodeRune(r1, r2); ok && dec != utf8.RuneError {
				r1, n = dec, 12
			} else {
				r1 = utf8.RuneError
			}
		}
		*buf = utf8.AppendRune(*buf, r1)
		return n, nil
	default:
		d.pos++
		return 0, d.syntaxErr("invalid escape in string")
	}
	*buf = append(*buf, r)
	return 2, nil
}

// hex4 parses the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// CheckUTF8 finds the first string, key or value, of the JSON text data
// that is not valid UTF-8, and reports it as a *DecodeError whose Param is
// its JSON path ("messages[0].content"). It returns nil when every string
// is UTF-8, and also when data is not JSON at all: the caller's own parser
// reports that. It is for bodies that are passed on rather than decoded
// here (the Ollama edge); Unmarshal checks requests itself.
func CheckUTF8(data []byte) error {
	if utf8.Valid(data) {
		return nil
	}
	d := decoder{data: data, strict: true}
	if de := (*DecodeError)(nil); errors.As(d.skip(0), &de) {
		return de
	}
	return nil
}
