package openaijson

import "strconv"

// maxDepth bounds the nesting of free-form JSON (schemas, skipped unknown
// fields). Each JSON level is two proto levels inside a google.protobuf.Struct,
// so 1000 stays well under protobuf's default recursion limit of 10000 and
// the decoded request can still cross gRPC.
const maxDepth = 1000

// decoder is a single-pass JSON reader over data. It decodes straight into
// the proto messages instead of building an intermediate tree, which is what
// keeps the hot path allocation-light.
//
// Errors: syntax problems are *syntaxError (reported with an empty Param);
// type problems are *DecodeError whose Param callers extend with inField and
// atIndex as the error travels up, so the happy path never tracks a path.
type decoder struct {
	data []byte
	pos  int
	// buf holds unescaped string bytes; strView results that point into it
	// are valid only until the next string is read.
	buf []byte
	// strict refuses strings that are not UTF-8 (a client's request: JSON
	// text must be UTF-8) instead of replacing the bad bytes with U+FFFD
	// (what a node sends back, which is relayed as best it can be).
	strict bool
}

// syntaxError is malformed JSON; Unmarshal turns it into a DecodeError with
// an empty Param.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return e.msg + " at offset " + strconv.Itoa(e.off) }

func (d *decoder) syntaxErr(msg string) error { return &syntaxError{msg: msg, off: d.pos} }

// unexpected reports the byte at pos, or the end of input.
func (d *decoder) unexpected() error {
	if d.pos >= len(d.data) {
		return d.syntaxErr("unexpected end of JSON input")
	}
	return d.syntaxErr("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])))
}

// typeErr is a wrongly typed value at the current position. The value is not
// consumed: decoding stops at the first type error.
func (d *decoder) typeErr(want string) error {
	return &DecodeError{Msg: "expected " + want + ", got " + d.kind()}
}

// kind names the JSON type of the next value for error messages.
func (d *decoder) kind() string {
	switch d.next() {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// next skips whitespace and returns the next byte without consuming it, or 0
// at the end of input.
func (d *decoder) next() byte {
	for d.pos < len(d.data) {
		switch c := d.data[d.pos]; c {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return c
		}
	}
	return 0
}

// end checks that only whitespace follows the top-level value. It tests the
// position, not next() == 0, since a NUL byte is also trailing garbage.
func (d *decoder) end() error {
	if d.next(); d.pos < len(d.data) {
		return d.syntaxErr("invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " after top-level value")
	}
	return nil
}

// literal consumes word (true, false or null) at pos.
func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		for i := 0; i < len(word) && d.pos < len(d.data) && d.data[d.pos] == word[i]; i++ {
			d.pos++
		}
		return d.unexpected()
	}
	d.pos += len(word)
	return nil
}

// null consumes a null if one comes next. JSON null means "absent" for every
// field in the OpenAI API, so field decoders check it first.
func (d *decoder) null() (bool, error) {
	if d.next() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// objectStart consumes '{'. It returns false, consuming the null, when the
// value is null.
func (d *decoder) objectStart() (bool, error) {
	switch d.next() {
	case '{':
		d.pos++
		return true, nil
	case 'n':
		return false, d.literal("null")
	default:
		return false, d.typeErr("an object")
	}
}

// member advances to the i-th member of an object opened by objectStart and
// returns its key, consuming the ':'. It returns false after consuming the
// closing '}'. The key stays valid while the member's value is decoded: it
// points into the input, or is a fresh copy when it had escapes.
func (d *decoder) member(i int) (key []byte, more bool, err error) {
	c := d.next()
	if c == '}' && i == 0 {
		d.pos++
		return nil, false, nil
	}
	if i > 0 {
		switch c {
		case '}':
			d.pos++
			return nil, false, nil
		case ',':
			d.pos++
			c = d.next()
		default:
			return nil, false, d.unexpected()
		}
	}
	if c != '"' {
		return nil, false, d.unexpected()
	}
	key, err = d.strView()
	if err != nil {
		return nil, false, err
	}
	// A key rewritten into d.buf would be overwritten by the value's strings.
	if len(key) > 0 && cap(d.buf) > 0 && &key[0] == &d.buf[:1][0] {
		key = append([]byte(nil), key...)
	}
	if d.next() != ':' {
		return nil, false, d.unexpected()
	}
	d.pos++
	return key, true, nil
}

// fields decodes an object, calling field with each member's key and the
// decoder positioned at its value; field must consume the value (d.skip for
// keys it does not know, which OpenAI's contract says to ignore). null is
// an empty object. A type error is prefixed with the key.
func (d *decoder) fields(field func(key []byte) error) error {
	ok, err := d.objectStart()
	if !ok || err != nil {
		return err
	}
	for i := 0; ; i++ {
		key, more, err := d.member(i)
		if err != nil || !more {
			return err
		}
		if err := field(key); err != nil {
			return inField(err, key)
		}
	}
}

// arrayStart consumes '['. It returns false, consuming the null, when the
// value is null.
func (d *decoder) arrayStart() (bool, error) {
	switch d.next() {
	case '[':
		d.pos++
		return true, nil
	case 'n':
		return false, d.literal("null")
	default:
		return false, d.typeErr("an array")
	}
}

// element advances to the i-th element of an array opened by arrayStart. It
// returns false after consuming the closing ']'.
func (d *decoder) element(i int) (bool, error) {
	c := d.next()
	if c == ']' {
		d.pos++
		return false, nil
	}
	if i == 0 {
		return true, nil
	}
	if c != ',' {
		return false, d.unexpected()
	}
	d.pos++
	if d.next() == ']' {
		return false, d.unexpected()
	}
	return true, nil
}

// boolean decodes true or false; null is false.
func (d *decoder) boolean() (bool, error) {
	switch d.next() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return false, d.literal("null")
	default:
		return false, d.typeErr("a boolean")
	}
}

// optBool decodes a boolean whose presence matters; null is nil.
func (d *decoder) optBool() (*bool, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	v, err := d.boolean()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// skip consumes any value, checking its syntax; unknown fields go through
// here so that a malformed body is never half-accepted.
func (d *decoder) skip(depth int) error {
	switch d.next() {
	case '{':
		if depth >= maxDepth {
			return d.syntaxErr("JSON nested too deeply")
		}
		d.pos++
		for i := 0; ; i++ {
			key, more, err := d.member(i)
			if err != nil || !more {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return inField(err, key)
			}
		}
	case '[':
		if depth >= maxDepth {
			return d.syntaxErr("JSON nested too deeply")
		}
		d.pos++
		for i := 0; ; i++ {
			more, err := d.element(i)
			if err != nil || !more {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return atIndex(err, i)
			}
		}
	case '"':
		_, err := d.strView()
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		_, _, err := d.number()
		return err
	}
}

// objects decodes an array of objects with fill; null is an empty list. A
// null element becomes an empty message, since a repeated message field
// cannot hold nil.
func objects[T any](d *decoder, fill func(*decoder, *T) error) ([]*T, error) {
	ok, err := d.arrayStart()
	if !ok || err != nil {
		return nil, err
	}
	// Elements are gathered on the stack and copied once into a slice of
	// the exact length, instead of growing a heap slice 1, 2, 4, 8...
	var stack [8]*T
	out := stack[:0]
	for i := 0; ; i++ {
		more, err := d.element(i)
		if err != nil {
			return nil, err
		}
		if !more {
			return heapCopy(out), nil
		}
		v := new(T)
		if err := fill(d, v); err != nil {
			return nil, atIndex(err, i)
		}
		out = append(out, v)
	}
}

// object decodes an object with fill; null is nil.
func object[T any](d *decoder, fill func(*decoder, *T) error) (*T, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	v := new(T)
	if err := fill(d, v); err != nil {
		return nil, err
	}
	return v, nil
}

// heapCopy moves a list gathered in a stack buffer to the heap; empty is nil.
func heapCopy[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

// scalars decodes an array of scalars with elem; null is an empty list and a
// null element is the zero value.
func scalars[T any](d *decoder, elem func(*decoder) (T, error)) ([]T, error) {
	ok, err := d.arrayStart()
	if !ok || err != nil {
		return nil, err
	}
	var stack [8]T // as in objects
	out := stack[:0]
	for i := 0; ; i++ {
		more, err := d.element(i)
		if err != nil {
			return nil, err
		}
		if !more {
			return heapCopy(out), nil
		}
		v, err := elem(d)
		if err != nil {
			return nil, atIndex(err, i)
		}
		out = append(out, v)
	}
}
