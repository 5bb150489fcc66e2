# One llmesh service image from a static binary built on the host: no base
# image, no registry. scripts/images.sh (make images) prepares the context:
#   service                         the static binary (CGO off)
#   etc/ssl/certs/ca-certificates.crt   CA certificates, for https nodes
#   etc/passwd, etc/group           the non-root user llmesh (65532)
FROM scratch
ARG SERVICE
ARG VERSION=dev
LABEL org.opencontainers.image.title="llmesh-${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/llmesh/llmesh"
COPY . /
USER 65532:65532
ENTRYPOINT ["/service"]
