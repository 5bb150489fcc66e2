package openaijson

import (
	"errors"
	"strconv"

	"github.com/llmesh/llmesh/services/meshkit/apierror"
)

// DecodeError is a body that cannot be decoded: malformed JSON (Param is "")
// or a field of the wrong type (Param is its JSON path, such as
// "messages[0].content"). The REST edge maps it to OpenAI's 400
// invalid_request_error with the same param.
type DecodeError struct {
	Param string
	Msg   string
}

// Error omits a package prefix on purpose: the text is what an API client
// sees in the 400 answer.
func (e *DecodeError) Error() string {
	if e.Param == "" {
		return e.Msg
	}
	return e.Param + ": " + e.Msg
}

// inField prefixes a type error's Param with the object member it was found
// in. Paths are built only on the way out of a failed decode, so successful
// decodes pay nothing for them. Syntax errors pass through untouched because
// their Param stays empty.
// A key is clipped (apierror.Clip): an unknown member's key is the
// client's to choose and may be megabytes long.
func inField(err error, key []byte) error {
	if de := (*DecodeError)(nil); errors.As(err, &de) {
		k := apierror.Clip(string(key))
		switch {
		case de.Param == "":
			de.Param = k
		case de.Param[0] == '[':
			de.Param = k + de.Param
		default:
			de.Param = k + "." + de.Param
		}
	}
	return err
}

// atIndex prefixes a type error's Param with the array index it was found at.
func atIndex(err error, i int) error {
	if de := (*DecodeError)(nil); errors.As(err, &de) {
		idx := "[" + strconv.Itoa(i) + "]"
		if de.Param == "" || de.Param[0] == '[' {
			de.Param = idx + de.Param
		} else {
			de.Param = idx + "." + de.Param
		}
	}
	return err
}

// ErrorObject is OpenAI's error body, {"error":{"message","type","param","code"}}.
type ErrorObject struct {
	Message string
	Type    string
	Param   string // "" is null
	Code    string // "" is null
}

// MarshalError encodes e as OpenAI's error body.
func MarshalError(e ErrorObject) []byte {
	enc := encoder{b: make([]byte, 0, 64+len(e.Message)+len(e.Type)+len(e.Param)+len(e.Code))}
	enc.raw(`{"error":{"message":`)
	enc.str(e.Message)
	enc.raw(`,"type":`)
	enc.str(e.Type)
	enc.raw(`,"param":`)
	enc.emptyAsNull(e.Param)
	enc.raw(`,"code":`)
	enc.emptyAsNull(e.Code)
	enc.raw(`}}`)
	return enc.b
}

// UnmarshalError reads an LLM node's error body. It accepts OpenAI's shape,
// Ollama's native {"error":"text"} and llama.cpp's numeric code
// ({"code":503}, kept as "503"). Fields of unexpected types are ignored
// rather than failing, since the point is to surface whatever the node said.
// It reports false for invalid JSON or a body with neither shape.
func UnmarshalError(data []byte) (ErrorObject, bool) {
	d := decoder{data: data}
	if d.next() != '{' {
		return ErrorObject{}, false
	}
	var eo ErrorObject
	found := false
	err := d.fields(func(key []byte) error {
		if string(key) != "error" {
			return d.skip(0)
		}
		switch d.next() {
		case '"':
			msg, err := d.str()
			eo, found = ErrorObject{Message: msg}, true
			return err
		case '{':
			eo, found = ErrorObject{}, true
			return d.fields(func(key []byte) (err error) {
				switch string(key) {
				case "message":
					eo.Message, err = d.lenientText()
				case "type":
					eo.Type, err = d.lenientText()
				case "param":
					eo.Param, err = d.lenientText()
				case "code":
					eo.Code, err = d.lenientText()
				default:
					err = d.skip(0)
				}
				return err
			})
		default:
			found = false
			return d.skip(0)
		}
	})
	if err == nil {
		err = d.end()
	}
	if err != nil || !found {
		return ErrorObject{}, false
	}
	return eo, true
}

// lenientText reads a string, or a number as its literal text; any other
// value is skipped and reads as "".
func (d *decoder) lenientText() (string, error) {
	switch c := d.next(); {
	case c == '"':
		return d.str()
	case c == '-' || '0' <= c && c <= '9':
		lit, _, err := d.number()
		return string(lit), err
	default:
		return "", d.skip(0)
	}
}
