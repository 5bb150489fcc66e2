# Consul ACL policy of the operator's `llmesh key create | list | revoke | update`
# (least privilege; docs/security.md#consul-acls). Keys are stored, as keyed
# hashes with their limits, under llmesh/keys/ in KV.
key_prefix "llmesh/keys/" {
  policy = "write"
}
