module github.com/llmesh/llmesh/services/simnode

go 1.26.0
