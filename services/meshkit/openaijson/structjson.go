package openaijson

import (
	"slices"

	"google.golang.org/protobuf/types/known/structpb"
)

// Free-form JSON objects that are google.protobuf.Struct in the data model
// (a legacy completion's logprobs). They are decoded straight from
// the input rather than via protojson, which would need the raw object cut
// out and parsed a second time.

// structObject decodes a JSON object into a Struct; null is nil.
func (d *decoder) structObject() (*structpb.Struct, error) {
	switch d.next() {
	case '{':
		return d.structFields(0)
	case 'n':
		return nil, d.literal("null")
	default:
		return nil, d.typeErr("an object")
	}
}

// structFields decodes the object at pos, depth levels below the Struct's
// root.
func (d *decoder) structFields(depth int) (*structpb.Struct, error) {
	if depth >= maxDepth {
		return nil, d.syntaxErr("JSON nested too deeply")
	}
	d.pos++ // '{'
	s := &structpb.Struct{}
	return s, d.fillStruct(s, depth)
}

func (d *decoder) fillStruct(s *structpb.Struct, depth int) error {
	for i := 0; ; i++ {
		key, more, err := d.member(i)
		if err != nil || !more {
			return err
		}
		v, err := d.structValue(depth + 1)
		if err != nil {
			return inField(err, key)
		}
		if s.Fields == nil {
			s.Fields = make(map[string]*structpb.Value)
		}
		s.Fields[intern(key)] = v
	}
}

// structValue decodes any JSON value. Each Value is allocated in one block
// with its oneof wrapper (and its Struct or ListValue), which halves the
// allocations of a nested object.
func (d *decoder) structValue(depth int) (*structpb.Value, error) {
	switch d.next() {
	case '{':
		if depth >= maxDepth {
			return nil, d.syntaxErr("JSON nested too deeply")
		}
		d.pos++
		p := &struct {
			v structpb.Value
			k structpb.Value_StructValue
			s structpb.Struct
		}{}
		p.k.StructValue, p.v.Kind = &p.s, &p.k
		return &p.v, d.fillStruct(&p.s, depth)
	case '[':
		if depth >= maxDepth {
			return nil, d.syntaxErr("JSON nested too deeply")
		}
		d.pos++
		p := &struct {
			v structpb.Value
			k structpb.Value_ListValue
			l structpb.ListValue
		}{}
		p.k.ListValue, p.v.Kind = &p.l, &p.k
		var stack [8]*structpb.Value // see objects
		items := stack[:0]
		for i := 0; ; i++ {
			more, err := d.element(i)
			if err != nil {
				return nil, err
			}
			if !more {
				p.l.Values = heapCopy(items)
				return &p.v, nil
			}
			item, err := d.structValue(depth + 1)
			if err != nil {
				return nil, atIndex(err, i)
			}
			items = append(items, item)
		}
	case '"':
		s, err := d.str()
		p := &struct {
			v structpb.Value
			k structpb.Value_StringValue
		}{k: structpb.Value_StringValue{StringValue: s}}
		p.v.Kind = &p.k
		return &p.v, err
	case 't', 'f':
		b, err := d.boolean()
		p := &struct {
			v structpb.Value
			k structpb.Value_BoolValue
		}{k: structpb.Value_BoolValue{BoolValue: b}}
		p.v.Kind = &p.k
		return &p.v, err
	case 'n':
		return structpb.NewNullValue(), d.literal("null")
	default:
		f, err := d.f64()
		p := &struct {
			v structpb.Value
			k structpb.Value_NumberValue
		}{k: structpb.Value_NumberValue{NumberValue: f}}
		p.v.Kind = &p.k
		return &p.v, err
	}
}

// structObject writes a Struct as the JSON object it was decoded from. Keys
// are sorted: a Struct does not keep the original order, and a stable order
// keeps the output identical for equal values.
func (e *encoder) structObject(s *structpb.Struct) {
	fields := s.GetFields()
	var buf [16]string // no allocation for the usual small schema object
	keys := buf[:0]
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.byte('{')
	for i, k := range keys {
		if i > 0 {
			e.byte(',')
		}
		e.str(k)
		e.byte(':')
		e.structValue(fields[k])
	}
	e.byte('}')
}

func (e *encoder) structValue(v *structpb.Value) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		e.str(k.StringValue)
	case *structpb.Value_NumberValue:
		e.f64(k.NumberValue)
	case *structpb.Value_BoolValue:
		e.boolean(k.BoolValue)
	case *structpb.Value_StructValue:
		e.structObject(k.StructValue)
	case *structpb.Value_ListValue:
		e.byte('[')
		for i, item := range k.ListValue.GetValues() {
			if i > 0 {
				e.byte(',')
			}
			e.structValue(item)
		}
		e.byte(']')
	default:
		// NullValue, and a Value with no kind set, which has no other
		// JSON rendering.
		e.raw("null")
	}
}
