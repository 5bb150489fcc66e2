// Package openaijson converts between OpenAI's wire JSON and the
// llmesh.openai.v1 messages, in both directions: the router decodes client
// requests and encodes answers and stream chunks; the adapter encodes
// requests for LLM nodes and decodes what they send back.
//
// protojson cannot do this job. OpenAI's API has fields that are "a string
// or an array", uses null for "absent", and SDKs expect an exact layout for
// responses. The codec is written by hand over a single-pass reader and an
// append-only writer because it runs for every request and every streamed
// chunk.
//
// # Decoding
//
// Unknown fields are ignored at every level, and null anywhere means absent:
// a nil message, an unset optional, an empty string or list. A null element
// of an array of objects becomes an empty message. Optional scalars keep
// their presence, so "max_tokens":0 is set to 0 while an absent max_tokens
// stays nil. Integers may be written with a fraction or exponent when the
// value is integral (5.0); anything else where an integer is expected is an
// error. A request's strings (keys and values, unknown fields included)
// must be UTF-8, as JSON text must be (RFC 8259): a byte that is not is a
// DecodeError naming the field. In what nodes send back such bytes become
// U+FFFD, and a lone surrogate escape (\ud800) becomes U+FFFD everywhere,
// because proto3 strings must be valid UTF-8. An error message quotes at
// most a short prefix of a client's value (apierror.Clip).
//
// The unions:
//   - message content: a string is MessageContent.text, an array of parts is
//     MessageContent.parts, null is no content. Parts are text, image_url
//     (an {"url","detail"} object, or a bare URL string) and input_audio;
//     any other part type is rejected rather than silently dropped.
//   - stop: a string is one stop sequence, an array is several.
//   - tool_choice: a string is the mode; {"type":"function","function":
//     {"name":X}} is function_name X.
//   - embeddings input: a string, an array of strings, of token ids, or of
//     token-id arrays; [] is an empty array of strings.
//   - tool parameters and response_format schemas are held as their JSON
//     text (parameters_json, schema_json): checked to be a JSON object,
//     compacted, and otherwise kept verbatim (key order, numbers as
//     written), because a schema's property order is the order a model
//     writes structured output in.
//   - a node's base64 embedding is decoded into the float array.
//   - a thinking model's reasoning is read from "reasoning_content" (vLLM,
//     llama.cpp, LM Studio) or "reasoning" (Ollama's /v1), the former
//     winning when a node sends both.
//
// The deprecated function-calling fields (functions, function_call, and a
// message's function_call) are refused with a DecodeError naming them
// unless null: the data model has no place for them, and dropping them
// would answer a prompt without the functions it offered.
//
// Errors are *DecodeError. Param is the JSON path of the offending field
// ("messages[1].content[0].type") for a wrongly typed value and "" for
// malformed JSON, which is reported in preference to a type error.
//
// # Encoding
//
// Requests (adapter to node) carry only what is set, in the form it came in:
// content as a string or parts, tool_choice as a mode or an object, stop as
// an array, absent optionals left out so the node applies its own defaults.
// A message without content is written "content":null.
//
// Responses and chunks (router to client) follow OpenAI's layout exactly:
// "object" defaults to its OpenAI value, "choices" is always an array,
// finish_reason, logprobs and a completion message's content and refusal
// are null when unset, a chunk delta holds only what the chunk carries, and
// usage is written when set (with prompt_tokens_details and
// completion_tokens_details when set). Reasoning is written, when not
// empty, as both "reasoning_content" and "reasoning". Tool calls carry
// "index" only in chunks.
// Embeddings are float arrays, or the base64 string of embedding_base64
// when that is set. Strings are escaped as JSON requires and nothing more;
// float32 values use their shortest float32 form. NaN and infinities cannot
// be written as JSON and make Marshal fail.
//
// Schemas and tool parameters are written back as the text they were
// decoded from. The one other free-form object, a legacy completion's
// logprobs (a google.protobuf.Struct), is written with sorted keys.
package openaijson
