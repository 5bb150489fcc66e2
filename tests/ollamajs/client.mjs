// Drives llmesh's Ollama edge with the official ollama npm client and
// prints what it got as one JSON object, which the Go end-to-end test
// (tests/e2e TestOllamaJSClient) checks. Usage:
//   node client.mjs <mesh URL> <chat model> <embed model>
import { Ollama } from 'ollama'

const [host, model, embedModel] = process.argv.slice(2)
const ollama = new Ollama({ host })
const out = {}

out.version = (await ollama.version()).version

const chat = await ollama.chat({
  model, stream: false, keep_alive: '7m', options: { num_predict: 3, seed: 42 },
  messages: [{ role: 'user', content: 'hello there' }],
})
out.chat = { content: chat.message.content, role: chat.message.role, done: chat.done,
  done_reason: chat.done_reason, eval_count: chat.eval_count, prompt_eval_count: chat.prompt_eval_count }

let streamed = ''
let parts = 0
let last
for await (const part of await ollama.chat({ model, stream: true, messages: [{ role: 'user', content: 'stream' }] })) {
  streamed += part.message.content
  parts++
  last = part
}
out.chatStream = { content: streamed, parts, done: last.done, eval_count: last.eval_count, total_duration: last.total_duration }

const gen = await ollama.generate({ model, prompt: 'once upon a time', stream: false })
out.generate = { response: gen.response, done: gen.done, eval_count: gen.eval_count }
let genText = ''
for await (const part of await ollama.generate({ model, prompt: 'go', stream: true })) {
  genText += part.response
}
out.generateStream = genText

const tools = await ollama.chat({
  model, stream: false, messages: [{ role: 'user', content: 'weather?' }],
  tools: [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { query: { type: 'string' } } } } }],
})
out.tools = (tools.message.tool_calls || []).map((c) => ({ name: c.function.name, arguments: c.function.arguments }))

const emb = await ollama.embed({ model: embedModel, input: ['a', 'b'] })
out.embed = { count: emb.embeddings.length, dims: emb.embeddings[0].length }

out.list = (await ollama.list()).models.map((m) => m.name).sort()
out.ps = (await ollama.ps()).models.map((m) => m.name).sort()
const show = await ollama.show({ model })
out.show = { capabilities: show.capabilities, modelfile: show.modelfile }

try {
  await ollama.chat({ model: 'no-such-model', stream: false, messages: [{ role: 'user', content: 'x' }] })
  out.unknown = 'no error'
} catch (e) {
  out.unknown = { status: e.status_code, error: e.error }
}

console.log(JSON.stringify(out))
