# Consul ACL policy of llmesh-router (least privilege; docs/security.md#consul-acls).
# If the LLM nodes' service is not "llm" (-consul-service), rename it below.

# Registers itself with its agent (agent service register/deregister, with
# its gRPC health check), and reads the other routers' instances.
service "llmesh-router" {
  policy = "write"
}

# Finds adapters and healthmons (health/service queries) unless
# -adapter-addr / -healthmon-addr are given.
service "llmesh-adapter" {
  policy = "read"
}
service "llmesh-healthmon" {
  policy = "read"
}

# The fallback while healthmon is unreachable: the LLM nodes and the
# verdicts healthmon wrote as checks on them.
service "llm" {
  policy = "read"
}

# Health queries return only the instances on nodes the token may read.
node_prefix "" {
  policy = "read"
}

# The fallback's node states (models), which healthmon keeps in KV.
key_prefix "llmesh/nodes/" {
  policy = "read"
}

# Client API keys (`llmesh key`), watched for changes.
key_prefix "llmesh/keys/" {
  policy = "read"
}
