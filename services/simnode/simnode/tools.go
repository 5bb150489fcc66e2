package simnode

import (
	"encoding/json"
	"net/http"
)

// ToolArguments are the arguments of every tool call simnode makes.
const ToolArguments = `{"query":"simnode"}`

// toolSpec is the part of a request's tool simnode reads.
type toolSpec struct {
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// pickTool decides whether a chat is answered with a tool call and of
// which tool: when tools are given, tool_choice is not "none" and the
// last message is not already a tool's result. tool_choice may name the
// function; otherwise the first tool is called.
func pickTool(tools []toolSpec, choice json.RawMessage, lastRole string) string {
	if len(tools) == 0 || lastRole == "tool" {
		return ""
	}
	var mode string
	if json.Unmarshal(choice, &mode) == nil && mode == "none" {
		return ""
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(choice, &named) == nil && named.Function.Name != "" {
		return named.Function.Name
	}
	return tools[0].Function.Name
}

type fnCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type openAIToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function fnCall `json:"function"`
}

type toolMessage struct {
	Role      string           `json:"role"`
	Content   *string          `json:"content"`
	ToolCalls []openAIToolCall `json:"tool_calls"`
}

// answerToolCall answers an OpenAI chat with a call of tool: streamed as
// the call's head (id, name) and its arguments in two fragments, then the
// tool_calls finish chunk, as OpenAI streams calls; or whole.
func (s *Server) answerToolCall(c *call, w http.ResponseWriter, meta completionMeta, a answer, tool string, stream, includeUsage bool) {
	if c.sleep(s.cfg.FirstTokenDelay) != nil {
		return
	}
	id := "call_" + meta.ID
	a.tokens = 2
	if !stream {
		meta.Object = "chat.completion"
		writeJSON(w, http.StatusOK, struct {
			completionMeta
			Choices []struct {
				Index        int         `json:"index"`
				Message      toolMessage `json:"message"`
				FinishReason string      `json:"finish_reason"`
			} `json:"choices"`
			Usage usage `json:"usage"`
		}{completionMeta: meta, Choices: []struct {
			Index        int         `json:"index"`
			Message      toolMessage `json:"message"`
			FinishReason string      `json:"finish_reason"`
		}{{Message: toolMessage{Role: "assistant", ToolCalls: []openAIToolCall{{ID: id, Type: "function",
			Function: fnCall{Name: tool, Arguments: ToolArguments}}}}, FinishReason: "tool_calls"}}, Usage: a.usage()})
		return
	}
	meta.Object = "chat.completion.chunk"
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	sse := &sseWriter{c: c, w: w, rc: http.NewResponseController(w)}
	zero := 0
	half := len(ToolArguments) / 2
	type delta struct {
		Role      string           `json:"role,omitempty"`
		ToolCalls []openAIToolCall `json:"tool_calls,omitempty"`
	}
	type choice struct {
		Index        int     `json:"index"`
		Delta        delta   `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	}
	send := func(ch choice, u *usage) error {
		chs := []choice{ch}
		if u != nil {
			chs = []choice{}
		}
		payload, _ := json.Marshal(struct {
			completionMeta
			Choices []choice `json:"choices"`
			Usage   *usage   `json:"usage,omitempty"`
		}{meta, chs, u})
		return sse.send(payload)
	}
	frags := []openAIToolCall{
		{Index: &zero, ID: id, Type: "function", Function: fnCall{Name: tool, Arguments: ""}},
		{Index: &zero, Function: fnCall{Arguments: ToolArguments[:half]}},
		{Index: &zero, Function: fnCall{Arguments: ToolArguments[half:]}},
	}
	for i, f := range frags {
		d := delta{ToolCalls: []openAIToolCall{f}}
		if i == 0 {
			d.Role = "assistant"
		}
		if send(choice{Delta: d}, nil) != nil {
			return
		}
	}
	finish := "tool_calls"
	if send(choice{FinishReason: &finish}, nil) != nil {
		return
	}
	if includeUsage {
		u := a.usage()
		if send(choice{}, &u) != nil {
			return
		}
	}
	c.release()
	_ = sse.send([]byte("[DONE]"))
}
