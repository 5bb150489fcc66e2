package telemetry

import "go.opentelemetry.io/otel/attribute"

// Attributes of the OpenTelemetry GenAI semantic conventions that llmesh
// sets on spans and metrics. Message content is never recorded.
const (
	GenAIOperationName         = attribute.Key("gen_ai.operation.name")
	GenAIProviderName          = attribute.Key("gen_ai.provider.name")
	GenAIRequestModel          = attribute.Key("gen_ai.request.model")
	GenAIRequestStream         = attribute.Key("gen_ai.request.stream")
	GenAIResponseModel         = attribute.Key("gen_ai.response.model")
	GenAIResponseID            = attribute.Key("gen_ai.response.id")
	GenAIResponseFinishReasons = attribute.Key("gen_ai.response.finish_reasons")
	GenAIUsageInputTokens      = attribute.Key("gen_ai.usage.input_tokens")
	GenAIUsageOutputTokens     = attribute.Key("gen_ai.usage.output_tokens")
	GenAITokenType             = attribute.Key("gen_ai.token.type")
	ServerAddress              = attribute.Key("server.address")
	ServerPort                 = attribute.Key("server.port")
	ErrorType                  = attribute.Key("error.type")
	GenAIOperationChat         = "chat"
	GenAIOperationTextComplete = "text_completion"
	GenAIOperationEmbeddings   = "embeddings"
	GenAITokenTypeInput        = "input"
	GenAITokenTypeOutput       = "output"
)

// Bucket boundaries the GenAI semantic conventions give for their
// histograms.
var (
	// DurationBuckets are gen_ai.server.request.duration's (seconds).
	DurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	// TTFTBuckets are gen_ai.server.time_to_first_token's (seconds).
	TTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	// TPOTBuckets are gen_ai.server.time_per_output_token's (seconds).
	TPOTBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	// TokenBuckets are gen_ai.client.token.usage's (tokens).
	TokenBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)
