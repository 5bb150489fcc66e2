package openaijson

import (
	"math"
	"strconv"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// number consumes a JSON number and returns its literal. It reports whether
// the literal is a plain integer (no fraction or exponent).
func (d *decoder) number() (lit []byte, integer bool, err error) {
	data, start, i := d.data, d.pos, d.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return nil, false, d.unexpected()
	}
	integer = true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, false, d.unexpected()
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, false, d.unexpected()
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return data[start:i], integer, nil
}

// numberStart checks that a number comes next; anything but a number or
// null is a type error.
func (d *decoder) numberStart() (bool, error) {
	switch c := d.next(); {
	case c == '-' || '0' <= c && c <= '9':
		return true, nil
	case c == 'n':
		return false, d.literal("null")
	default:
		return false, d.typeErr("a number")
	}
}

// float decodes a number into a float of the given bit size; null is 0.
// Numbers too large for it are rejected because they would re-encode as
// invalid JSON (Inf).
func (d *decoder) float(bits int) (float64, error) {
	if ok, err := d.numberStart(); !ok || err != nil {
		return 0, err
	}
	lit, _, err := d.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(lit), bits)
	if err != nil {
		return 0, &DecodeError{Msg: "number " + apierror.Clip(string(lit)) + " is out of range"}
	}
	return f, nil
}

// optF64 decodes a number whose presence matters; null is nil.
func (d *decoder) optF64() (*float64, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	f, err := d.f64()
	if err != nil {
		return nil, err
	}
	return &f, nil
}

func (d *decoder) f64() (float64, error) { return d.float(64) }

func (d *decoder) f32() (float32, error) {
	f, err := d.float(32)
	return float32(f), err
}

// integer decodes an integer in [lo, hi]; null is 0. A number written with a
// fraction or exponent is accepted when its value is integral (Python
// clients send 5.0), anything else is a DecodeError.
func (d *decoder) integer(lo, hi int64) (int64, error) {
	if ok, err := d.numberStart(); !ok || err != nil {
		return 0, err
	}
	lit, integer, err := d.number()
	if err != nil {
		return 0, err
	}
	if integer {
		if v, ok := parseInt(lit); ok && lo <= v && v <= hi {
			return v, nil
		}
		return 0, &DecodeError{Msg: "number " + apierror.Clip(string(lit)) + " is out of range"}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || f != math.Trunc(f) {
		return 0, &DecodeError{Msg: "expected an integer, got " + apierror.Clip(string(lit))}
	}
	if f < float64(lo) || f >= float64(hi)+1 {
		return 0, &DecodeError{Msg: "number " + apierror.Clip(string(lit)) + " is out of range"}
	}
	return int64(f), nil
}

// parseInt parses a validated JSON integer literal, reporting int64 overflow.
func parseInt(lit []byte) (int64, bool) {
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	var u uint64
	for _, c := range lit {
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}

func (d *decoder) i32() (int32, error) {
	v, err := d.integer(math.MinInt32, math.MaxInt32)
	return int32(v), err
}

func (d *decoder) i64() (int64, error) { return d.integer(math.MinInt64, math.MaxInt64) }

// optI32 decodes an integer whose presence matters; null is nil.
func (d *decoder) optI32() (*int32, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	v, err := d.i32()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// optI64 decodes an integer whose presence matters; null is nil.
func (d *decoder) optI64() (*int64, error) {
	if null, err := d.null(); null || err != nil {
		return nil, err
	}
	v, err := d.i64()
	if err != nil {
		return nil, err
	}
	return &v, nil
}
