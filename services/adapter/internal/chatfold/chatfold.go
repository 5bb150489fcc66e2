// Package chatfold folds a streamed chat answer into the chat.completion
// a non-streamed request expects. The adapter asks a node for a stream
// even for a non-streamed request when the caller bounds the time to the
// first token, so that a hung node costs that bound, not a whole deadline.
package chatfold

import (
	"slices"

	openaiv1 "github.com/llmesh/llmesh/gen/go/llmesh/openai/v1"
)

// Completion accumulates chunks.
type Completion struct {
	out     *openaiv1.ChatCompletion
	choices map[int32]*openaiv1.ChatCompletionChoice
	order   []int32
}

// New returns an empty accumulator.
func New() *Completion {
	return &Completion{out: &openaiv1.ChatCompletion{Object: "chat.completion"}, choices: map[int32]*openaiv1.ChatCompletionChoice{}}
}

// Add folds one chunk in.
func (c *Completion) Add(ch *openaiv1.ChatCompletionChunk) {
	o := c.out
	if o.Id == "" {
		o.Id, o.Created, o.Model = ch.GetId(), ch.GetCreated(), ch.GetModel()
	}
	if v := ch.GetSystemFingerprint(); v != "" {
		o.SystemFingerprint = v
	}
	if v := ch.GetServiceTier(); v != "" {
		o.ServiceTier = v
	}
	if u := ch.GetUsage(); u != nil {
		o.Usage = u
	}
	for _, cc := range ch.GetChoices() {
		choice, ok := c.choices[cc.GetIndex()]
		if !ok {
			choice = &openaiv1.ChatCompletionChoice{Index: cc.GetIndex(), Message: &openaiv1.ResponseMessage{}}
			c.choices[cc.GetIndex()] = choice
			c.order = append(c.order, cc.GetIndex())
		}
		m, d := choice.Message, cc.GetDelta()
		if d.GetRole() != "" {
			m.Role = d.GetRole()
		}
		if d.Content != nil {
			m.Content = appendText(m.Content, d.GetContent())
		}
		if d.Refusal != nil {
			m.Refusal = appendText(m.Refusal, d.GetRefusal())
		}
		if d.ReasoningContent != nil {
			m.ReasoningContent = appendText(m.ReasoningContent, d.GetReasoningContent())
		}
		for _, tc := range d.GetToolCalls() {
			m.ToolCalls = mergeToolCall(m.ToolCalls, tc)
		}
		if r := cc.GetFinishReason(); r != "" {
			choice.FinishReason = r
		}
		if lp := cc.GetLogprobs(); lp != nil {
			if choice.Logprobs == nil {
				choice.Logprobs = &openaiv1.Logprobs{}
			}
			choice.Logprobs.Content = append(choice.Logprobs.Content, lp.GetContent()...)
			choice.Logprobs.Refusal = append(choice.Logprobs.Refusal, lp.GetRefusal()...)
		}
	}
}

// Result is the completion so far, choices in index order (a stream may
// interleave them, and a fanned-out one start any of them first).
func (c *Completion) Result() *openaiv1.ChatCompletion {
	slices.Sort(c.order)
	c.out.Choices = c.out.Choices[:0]
	for _, i := range c.order {
		ch := c.choices[i]
		if ch.Message.Role == "" {
			ch.Message.Role = "assistant"
		}
		c.out.Choices = append(c.out.Choices, ch)
	}
	return c.out
}

func appendText(have *string, more string) *string {
	s := more
	if have != nil {
		s = *have + more
	}
	return &s
}

// mergeToolCall folds a streamed tool-call fragment into the calls: the
// first fragment of an index brings its id, type and name, later ones add
// to the arguments. Tool calls in a completion carry no index.
func mergeToolCall(calls []*openaiv1.ToolCall, frag *openaiv1.ToolCall) []*openaiv1.ToolCall {
	for _, tc := range calls {
		if tc.GetIndex() == frag.GetIndex() {
			if frag.GetId() != "" {
				tc.Id = frag.GetId()
			}
			if frag.GetType() != "" {
				tc.Type = frag.GetType()
			}
			if n := frag.GetFunction().GetName(); n != "" {
				tc.Function.Name = n
			}
			tc.Function.Arguments += frag.GetFunction().GetArguments()
			return calls
		}
	}
	return append(calls, &openaiv1.ToolCall{Index: frag.GetIndex(), Id: frag.GetId(), Type: frag.GetType(),
		Function: &openaiv1.FunctionCall{Name: frag.GetFunction().GetName(), Arguments: frag.GetFunction().GetArguments()}})
}
