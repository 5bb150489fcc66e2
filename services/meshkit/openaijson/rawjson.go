package openaijson

import "unicode/utf8"

// JSON Schemas (a tool's parameters, a response_format schema) are kept as
// the JSON text the client sent, not parsed into a tree: their key order is
// part of their meaning (a model writes structured output in the order of
// the schema's properties) and numbers stay as written. The text is checked,
// compacted (whitespace outside strings dropped) and otherwise untouched.

// rawObject decodes a JSON object at pos into its compact text; null is "".
func (d *decoder) rawObject() (string, error) {
	switch d.next() {
	case '{':
		start := d.pos
		if err := d.skip(0); err != nil {
			return "", err
		}
		return compact(d.data[start:d.pos]), nil
	case 'n':
		return "", d.literal("null")
	default:
		return "", d.typeErr("an object")
	}
}

// JSONObject checks that data is one JSON object and returns its compact
// text with the members in their order and numbers as written. Invalid
// UTF-8 inside strings becomes U+FFFD (a request body's schema is refused
// for it instead, while the body is decoded).
// The error is a *DecodeError.
func JSONObject(data []byte) (string, error) {
	d := decoder{data: data}
	var s string
	err := d.body(func() (err error) {
		s, err = d.rawObject()
		return err
	})
	return s, err
}

// compact drops the whitespace outside strings of valid JSON and replaces
// invalid UTF-8 (which can only be inside strings) with U+FFFD, since a
// proto3 string must be valid UTF-8.
func compact(raw []byte) string {
	out := make([]byte, 0, len(raw))
	inStr := false
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, raw[i:i+size]...)
			}
			i += size
			continue
		case inStr && c == '\\':
			out = append(out, c, raw[i+1])
			i += 2
			continue
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			i++
			continue
		}
		out = append(out, c)
		i++
	}
	return string(out)
}
