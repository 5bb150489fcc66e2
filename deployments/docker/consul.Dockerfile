# A Consul image from the static bin/consul that `make consul` builds, for
# where the official hashicorp/consul image cannot be pulled (the test
# suite). Compose runs it like the official image: entrypoint `consul`,
# data in /consul/data. scripts/images.sh prepares the context.
FROM scratch
ARG VERSION
LABEL org.opencontainers.image.title="consul" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="Consul built from source (MPL-2.0) for llmesh's tests"
COPY . /
ENV PATH=/bin
ENTRYPOINT ["/bin/consul"]
