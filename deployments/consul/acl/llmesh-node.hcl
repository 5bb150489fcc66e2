# Consul ACL policy of the operator's `llmesh node register | deregister | list`
# (least privilege; docs/security.md#consul-acls).
# If the LLM nodes' service is not "llm" (-service), rename it below.

# register: the node as an instance of "llm" with the check llmesh:<id>
# (catalog register); list: its instances and checks (health/service).
service "llm" {
  policy = "write"
}

# Each registered node lives on a Consul node of its own, llmesh-<id>:
# register creates it, deregister removes it (catalog deregister).
node_prefix "llmesh-" {
  policy = "write"
}

# list and deregister look nodes up (catalog and health queries).
node_prefix "" {
  policy = "read"
}
