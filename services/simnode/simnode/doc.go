// Package simnode is a simulated LLM node: an http.Handler that behaves
// like an Ollama server (v0.17) for the parts llmesh uses, deterministically,
// so that tests, benchmarks and the demo can run a mesh without GPUs.
//
// Run it in-process:
//
//	node, err := simnode.New(simnode.Config{Models: []string{"llama3.2:3b"}})
//	if err != nil { ... }
//	ts := httptest.NewServer(node)
//	defer ts.Close()
//
// or as a process with cmd/simnode (flags below).
//
// # Endpoints
//
// Every response carries the header X-Simnode-Name: <Name>, so tests can
// tell which node answered. Routing is on exact method and path.
//
//	GET|HEAD /               200 "Ollama is running" (text/plain). Never faulted.
//	GET|HEAD /api/version    {"version":"0.17.4"}
//	GET|HEAD /api/tags       {"models":[{"name","model","modified_at","size","digest","details"}]}
//	                         for every configured model, in Config.Models order.
//	GET /api/ps              {"models":[{"name","model","size","digest","details",
//	                         "expires_at","size_vram","context_length"}]} for Config.Loaded.
//	GET /v1/models           {"object":"list","data":[{"id","object":"model","created","owned_by":"library"}]}
//	POST /v1/chat/completions  OpenAI chat completions, streamed or not (below).
//	POST /v1/embeddings      OpenAI embeddings (below).
//	POST /v1/completions     OpenAI legacy completions: prompt a string or an
//	                         array of strings, choice i answering prompt i with
//	                         the chat tokens; streamed (with include_usage) or not.
//	POST /api/chat, /api/generate  Ollama native, NDJSON streamed unless
//	                         "stream":false: one object per token, then the done
//	                         object (done_reason, durations, prompt_eval_count,
//	                         eval_count); options.num_predict caps the tokens.
//	POST /api/embed, /api/embeddings  Ollama native embeddings (same vectors).
//	POST /api/show           Ollama native model description.
//	                         Unknown models get Ollama's 404 {"error":"model 'x' not found"}.
//	                         LastRequest(path) returns the last body received
//	                         (also for /v1/chat/completions).
//	POST /simnode/faults     admin: replace the active faults (below).
//	GET /simnode/faults      admin: the active faults as JSON.
//	GET /simnode/stats       admin: Stats as JSON {"requests":{...},"in_flight":N,"canceled":N}.
//	POST /api/show           {"capabilities":["completion","tools"]}, or ["embedding"]
//	                         for Config.EmbeddingModels (whose chats get 400).
//
// Config.Flavor replaces the Ollama endpoints (/, /api/*) with another
// server's: "vllm" serves GET /health (empty 200), /version and /metrics
// (vllm:num_requests_running = requests in flight); "llamacpp" serves
// GET /health ({"status":"ok"}, or 503 "Loading model" — also on /v1/ —
// with Faults.Loading), /props (its settings) and /slots (Config.Slots
// slots, filled by requests in flight); "lmstudio" serves GET
// /api/v0/models with state and type. GET /v1/models gives each flavour's
// owned_by: Ollama's "library", "vllm", "llamacpp", LM Studio's
// "organization_owner".
//
// Model metadata is fixed: modified_at is 2026-01-02T03:04:05Z (and
// "created" its Unix time), digest is the hex SHA-256 of the name, size is
// 1 GiB plus a 32-bit FNV-1a hash of the name modulo 1 GiB (/api/ps adds 32 MiB
// of KV cache to it, and size_vram equals that), context_length is 4096, expires_at is now + 5m (RFC 3339 with
// nanoseconds), and details are {"parent_model":"","format":"gguf",
// "family":"llama","families":["llama"],"parameter_size":"1B",
// "quantization_level":"Q4_0"}.
//
// Any other method or path answers 404: {"error":"not found"}, or under
// /v1/ the OpenAI shape {"error":{"message":"Invalid URL (METHOD PATH)",
// "type":"invalid_request_error","param":null,"code":null}}.
//
// # Authentication
//
// If Config.APIKey is set, every /v1/ request (including unknown /v1/ paths)
// must carry "Authorization: Bearer <APIKey>", otherwise it gets 401
// {"error":{"message":"Incorrect API key provided","type":"invalid_request_error",
// "param":null,"code":"invalid_api_key"}}. The Ollama-native, root and
// /simnode/ admin endpoints never require a key: simnode is meant for
// loopback use by tests.
//
// # Tool calls
//
// A chat (OpenAI or native) that has "tools", whose tool_choice is not
// "none" and whose last message is not a tool result is answered with one
// call of the first tool (or the one tool_choice names) with arguments
// ToolArguments: streamed the OpenAI way as the call's head and two
// argument fragments then finish_reason "tool_calls", or in Ollama's way
// as one message carrying the whole call.
//
// # Chat completions
//
// The body is OpenAI's; simnode reads model, messages (content as a string,
// null, or an array of parts of which "text" parts count), stream,
// stream_options.include_usage, max_tokens, max_completion_tokens and stop
// (a string or an array of strings; validated but not applied, since the
// generated text is fixed). Unknown fields are ignored, as Ollama does.
//
// Errors use the OpenAI shape {"error":{"message","type","param":null,"code":null}}:
// 400 invalid_request_error for malformed JSON, a missing model, content
// that is neither string nor parts, a stop of another type, or a token
// limit below 1; 404 api_error `model "X" not found, try pulling it first`
// for a model not in Config.Models (Ollama's wording); 413 for bodies over
// 32 MiB.
//
// The answer has Config.Tokens tokens, or fewer if max_tokens or
// max_completion_tokens is smaller (the smaller of the two wins), in which
// case finish_reason is "length" instead of "stop". Token i (from 0) is the
// text "t<i> ", so three tokens read "t0 t1 t2 " (see Content). Prompt
// tokens are the number of whitespace-separated words in all message text,
// at least 1. Ids are "chatcmpl-<n>" with n counting from 1 per Server;
// system_fingerprint is "simnode-<Name>".
//
// # Reasoning
//
// With Config.ReasoningTokens R > 0 (-reasoning-tokens) the node is a
// thinking model: a chat answered with text (not a tool call) first
// "thinks" R tokens, "r0 r1 … r<R-1> " (see Reasoning). Flavour ollama
// sends them as Ollama's /v1 does, in "reasoning"; the other flavours in
// "reasoning_content", as vLLM and llama-server do. Streamed, each is one
// chunk with delta {"role":"assistant","content":"","reasoning…":"r<i> "}
// before the content chunks; non-streamed, the message carries the whole
// reasoning next to its content. Reasoning tokens take TokenDelay like the
// others, count in completion_tokens, and usage adds
// "completion_tokens_details":{"reasoning_tokens":R}.
//
// Non-streamed, the answer is
//
//	{"id","object":"chat.completion","created","model","system_fingerprint",
//	 "choices":[{"index":0,"message":{"role":"assistant","content":"t0 t1 "},"finish_reason":"stop"}],
//	 "usage":{"prompt_tokens","completion_tokens","total_tokens"}}
//
// sent after FirstTokenDelay + (n-1)*TokenDelay.
//
// Streamed, the response is Content-Type text/event-stream and each event
// is "data: <json>\n\n", flushed as soon as it is written. Headers are sent
// with the first token, after FirstTokenDelay, as Ollama does; each later
// token follows TokenDelay after the previous one. The events are one
// chat.completion.chunk per token with
// "choices":[{"index":0,"delta":{"role":"assistant","content":"t<i> "},"finish_reason":null}]
// (Ollama repeats the role in every chunk); then a finish chunk with
// delta {"role":"assistant","content":""} and the finish_reason; then, only
// if stream_options.include_usage is true, a chunk with "choices":[] and
// "usage"; then "data: [DONE]\n\n".
//
// # Embeddings
//
// The body has model, input and optionally encoding_format ("float", the
// default, or "base64": little-endian float32s, as OpenAI's SDKs request).
// input is a string, an array of strings, an array of token ids, or an
// array of token-id arrays; null or empty arrays are a 400. The answer,
// sent after FirstTokenDelay, is
//
//	{"object":"list","data":[{"object":"embedding","index":0,"embedding":[...]}],
//	 "model","usage":{"prompt_tokens","total_tokens"}}
//
// with Config.EmbeddingDims floats per vector. Usage counts words (at least
// 1) per string input and ids per token array. Model errors are as for chat.
//
// # Faults
//
// Faults are set in Config.Faults, by Server.SetFaults, or with
// POST /simnode/faults and a JSON body {"status","message","retry_after",
// "fail_after_tokens","hang","probe_status"}; each call replaces all faults
// (omitted fields become zero, so {} heals the node), answers 200 with the
// faults now active, and rejects unknown fields and invalid values with 400.
// A request obeys the faults active when it arrived; changes apply to new
// requests at once. Status, FailAfterTokens and Hang are mutually exclusive.
//
//   - Status (400-599): every chat and embeddings request, whatever its body,
//     is answered with that status and an OpenAI error whose type is
//     "invalid_request_error" for 4xx and "api_error" for 5xx. The message
//     is Message, or for 503 Ollama's "server busy, please try again.
//     maximum pending requests exceeded", or else the status text.
//     RetryAfter (seconds, only with Status) adds a Retry-After header.
//   - FailAfterTokens (N > 0): the node "crashes" after generating N tokens
//     (reasoning tokens count).
//     A stream sends min(N, tokens) token chunks, then closes the TCP
//     connection without ending the chunked body, so the client reads an
//     unexpected EOF, never a finish chunk or [DONE]. A non-streamed chat
//     waits as long as N tokens take and an embeddings request waits
//     FirstTokenDelay, then the connection is closed with no response.
//     (Where a connection cannot be hijacked, e.g. HTTP/2, the handler
//     panics with http.ErrAbortHandler, which resets the stream.)
//   - Hang: chat and embeddings requests are accepted, their body read, and
//     then never answered until the client goes away (counted in Canceled).
//   - ProbeStatus (400-599): /api/version, /api/tags and /api/ps answer that
//     status with {"error":"<status text>"}, /v1/models with an OpenAI error.
//     Chat and embeddings are unaffected, so a node can look sick to health
//     checks while still serving.
//
// # Stats
//
// Server.Stats and GET /simnode/stats report Requests (every request
// received, keyed "METHOD PATH", counted on arrival, non-zero entries
// only), InFlight (chat and embeddings requests being handled, including
// hung ones; a request stops counting as it starts writing the last
// bytes of its answer, its work done, as a real server's slot is free
// then) and Canceled (chat and embeddings requests whose client went
// away before the answer was complete: the request context ended during a
// wait, a streamed write or flush failed, or the body could not be read).
// Canceled is incremented exactly once per such request, the moment the
// handler notices, so tests can poll it to prove that a disconnect
// propagated to the node.
//
// # Determinism
//
// Given the same Config and requests, every response body is identical
// except for "created" in chat responses and "expires_at" in /api/ps, which
// follow the wall clock, and ids, which follow request order. Chat content
// and usage depend only on Config.Tokens, the token limits and the message
// words. Embeddings depend only on the model, the input text and
// EmbeddingDims: FNV-1a 64 over model, a zero byte and the text seeds a
// math/rand/v2 PCG (both seeds set to the hash), whose Float64s are mapped
// to [-1,1) and L2-normalised, then sent as float32 (see Embedding). Token
// arrays are embedded as their decimal ids joined by spaces, so [1,2] and
// "1 2" give the same vector. Timing follows FirstTokenDelay and TokenDelay;
// every wait ends as soon as the request context is done.
//
// # Command-line flags (cmd/simnode)
//
//	-addr                     listen address (default 127.0.0.1:11434; port 0 picks one
//	                          and the log line "msg=listening addr=HOST:PORT" shows it)
//	-name                     Config.Name (default "simnode")
//	-models                   Config.Models, comma-separated (default "llama3.2:3b")
//	-loaded                   Config.Loaded, comma-separated (default: all models;
//	                          an explicit empty value means none)
//	-tokens                   Config.Tokens (default 8)
//	-reasoning-tokens         Config.ReasoningTokens (default 0)
//	-first-token-delay        Config.FirstTokenDelay (e.g. 200ms)
//	-token-delay              Config.TokenDelay
//	-embedding-dims           Config.EmbeddingDims (default 8)
//	-api-key-env              name of an environment variable holding Config.APIKey;
//	                          it is an error if that variable is empty or unset
//	-fault-status             Faults.Status
//	-fault-message            Faults.Message
//	-fault-fail-after-tokens  Faults.FailAfterTokens
//	-fault-hang               Faults.Hang
//	-fault-probe-status       Faults.ProbeStatus
//	-shutdown-timeout         grace period for in-flight requests on SIGINT/SIGTERM
//	                          (default 5s); after it, remaining requests are cut off
//	-log-format               text (default) or json
//	-healthcheck              do not serve: GET /simnode/stats at -addr (0.0.0.0 or ::
//	                          over loopback) and exit 0 on a 2xx within 3s, else 1
//	-consul-register          register in Consul (agent at CONSUL_HTTP_ADDR) as an LLM
//	                          node, as its own agent would; see below
//	-consul-service           Consul service name of LLM nodes (default "llm")
//	-node-id                  the node's id, its Consul service id (default: host name)
//	-advertise                host:port the mesh dials (default: the listen address;
//	                          on 0.0.0.0 or :: the host name and the listen port)
//	-kind                     llmesh-kind registered (default: the -flavor)
//
// With -consul-register the command registers the node on the Consul agent
// once it listens, with the Meta `llmesh node register` writes (llmesh-kind,
// llmesh-scheme http, llmesh-api-key-env when -api-key-env is set) and no
// checks (healthmon adds its own); it retries every second while Consul is
// away, looks every 5 s and registers again when the agent lost or changed
// the registration, and deregisters on SIGINT/SIGTERM before it stops
// listening.
//
// The command logs with log/slog to stderr, in text form unless
// -log-format json.
package simnode
