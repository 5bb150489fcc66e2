# Consul ACL policy of llmesh-adapter (least privilege; docs/security.md#consul-acls).
# The adapter reads nothing from Consul: node descriptions come to it in
# each call. With -consul it only registers itself with its agent (agent
# service register/deregister, with its gRPC health check).
service "llmesh-adapter" {
  policy = "write"
}
