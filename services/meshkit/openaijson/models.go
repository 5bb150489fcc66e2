package openaijson

import openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"

func (e *encoder) modelList(m *openaiv1.ModelList) {
	e.raw(`{"object":`)
	e.strOr(m.GetObject(), "list")
	e.raw(`,"data":[`)
	for i, mod := range m.GetData() {
		if i > 0 {
			e.byte(',')
		}
		e.model(mod)
	}
	e.raw(`]}`)
}

func (e *encoder) model(m *openaiv1.Model) {
	e.raw(`{"id":`)
	e.str(m.GetId())
	e.raw(`,"object":`)
	e.strOr(m.GetObject(), "model")
	e.raw(`,"created":`)
	e.i64(m.GetCreated())
	e.raw(`,"owned_by":`)
	e.str(m.GetOwnedBy())
	e.byte('}')
}

func (d *decoder) modelList(m *openaiv1.ModelList) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "object":
			m.Object, err = d.str()
		case "data":
			m.Data, err = objects(d, (*decoder).model)
		default:
			err = d.skip(0)
		}
		return err
	})
}

func (d *decoder) model(m *openaiv1.Model) error {
	return d.fields(func(key []byte) (err error) {
		switch string(key) {
		case "id":
			m.Id, err = d.str()
		case "object":
			m.Object, err = d.str()
		case "created":
			m.Created, err = d.i64()
		case "owned_by":
			m.OwnedBy, err = d.str()
		default:
			err = d.skip(0)
		}
		return err
	})
}
