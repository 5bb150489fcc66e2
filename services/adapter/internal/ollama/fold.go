package ollama

import (
	"encoding/json"
	"strings"
)

// Fold follows a native /api/chat or /api/generate stream: it makes sure
// the final (done) object reports eval_count when tokens were produced,
// and can fold the whole stream into the single object Ollama sends for
// "stream": false.
type Fold struct {
	content, thinking, response strings.Builder
	toolCalls                   []json.RawMessage
	logprobs                    []json.RawMessage // each object's, in order
	role                        string
	pieces                      int // objects that carried output
	final                       map[string]json.RawMessage
}

type streamObject struct {
	Done    bool `json:"done"`
	Message *struct {
		Role      string            `json:"role"`
		Content   string            `json:"content"`
		Thinking  string            `json:"thinking"`
		ToolCalls []json.RawMessage `json:"tool_calls"`
	} `json:"message"`
	Response  string            `json:"response"`
	Thinking  string            `json:"thinking"`
	Logprobs  []json.RawMessage `json:"logprobs"`
	EvalCount int64             `json:"eval_count"`
}

// Add takes one object of the stream. For the done object it returns the
// object to send on (eval_count filled in when the node left it 0 although
// it produced output) and done=true.
func (f *Fold) Add(line []byte) (final []byte, done bool, err error) {
	var o streamObject
	if err := json.Unmarshal(line, &o); err != nil {
		return nil, false, err
	}
	if m := o.Message; m != nil {
		if m.Role != "" {
			f.role = m.Role
		}
		f.content.WriteString(m.Content)
		f.thinking.WriteString(m.Thinking)
		f.toolCalls = append(f.toolCalls, m.ToolCalls...)
		if m.Content != "" || m.Thinking != "" || len(m.ToolCalls) > 0 {
			f.pieces++
		}
	}
	f.response.WriteString(o.Response)
	f.thinking.WriteString(o.Thinking)
	f.logprobs = append(f.logprobs, o.Logprobs...)
	if o.Response != "" || o.Thinking != "" {
		f.pieces++
	}
	if !o.Done {
		return nil, false, nil
	}
	if err := json.Unmarshal(line, &f.final); err != nil {
		return nil, false, err
	}
	if o.EvalCount == 0 && f.pieces > 0 {
		f.final["eval_count"] = mustJSON(f.pieces)
		line, err = json.Marshal(f.final)
		if err != nil {
			return nil, false, err
		}
	}
	return line, true, nil
}

// Result is the whole answer as one object: the done object with the
// text, thinking, tool calls and logprobs of the stream gathered into it.
func (f *Fold) Result() []byte {
	out := make(map[string]json.RawMessage, len(f.final)+2)
	for k, v := range f.final {
		out[k] = v
	}
	if _, chat := f.final["message"]; chat {
		msg := map[string]any{"role": f.role, "content": f.content.String()}
		if f.role == "" {
			msg["role"] = "assistant"
		}
		if f.thinking.Len() > 0 {
			msg["thinking"] = f.thinking.String()
		}
		if len(f.toolCalls) > 0 {
			msg["tool_calls"] = f.toolCalls
		}
		out["message"] = mustJSON(msg)
	} else {
		out["response"] = mustJSON(f.response.String())
		if f.thinking.Len() > 0 {
			out["thinking"] = mustJSON(f.thinking.String())
		}
	}
	if len(f.logprobs) > 0 {
		out["logprobs"] = mustJSON(f.logprobs)
	}
	return mustJSON(out)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, numbers and raw JSON go in
	}
	return b
}
