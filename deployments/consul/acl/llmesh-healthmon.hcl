# Consul ACL policy of llmesh-healthmon (least privilege; docs/security.md#consul-acls).
# If the LLM nodes' service is not "llm" (-consul-service), rename it below.

# Registers itself with its agent (agent service register/deregister, with
# its gRPC health check).
service "llmesh-healthmon" {
  policy = "write"
}

# Finds adapters (health/service queries) unless -adapter-addr is given.
service "llmesh-adapter" {
  policy = "read"
}

# Watches the LLM nodes (health/service queries) and writes its verdict
# as the check llmesh:<id> on each: a TTL check through its agent for
# nodes that agent registered (agent check register/update), a catalog
# check for the others (catalog register with SkipNodeUpdate).
service "llm" {
  policy = "write"
}

# Health queries return only the instances on nodes the token may read.
node_prefix "" {
  policy = "read"
}

# Registers the nodes of its nodes file in the catalog, each on a Consul
# node of its own named llmesh-<id> (and again when Consul lost them).
node_prefix "llmesh-" {
  policy = "write"
}

# Keeps each up node's state (its models) under llmesh/nodes/ for the
# routers' fallback (KV put, delete, keys).
key_prefix "llmesh/nodes/" {
  policy = "write"
}

# Only the holder of this lock writes checks and node states.
key "llmesh/healthmon/check-writer" {
  policy = "write"
}

# The lock's session, created on the healthmon's own agent node. To narrow
# it, replace the prefix "" with one session "<node>" rule per agent node
# that runs a healthmon.
session_prefix "" {
  policy = "write"
}
