# Consul ACL policy of an LLM node that registers itself with its own
# Consul agent (a service definition, or `simnode -consul-register`) as an
# instance of "llm" (least privilege; docs/security.md#consul-acls).
# healthmon adds the check llmesh:<id> with its own token.
service "llm" {
  policy = "write"
}
