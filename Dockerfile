# syntax=docker/dockerfile:1
# keyward's container image: the `keyward` binary, linked against glibc, on distroless "cc"
# (glibc, libgcc, CA certificates, /etc/passwd; no shell, no package manager), running as the
# non-root user 65532 that the Helm chart's securityContext expects (runAsUser/runAsGroup).
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example/keyward:0.1.0 .
#
# glibc, not musl: docs/performance.md measured glibc's allocator (musl's returns memory
# differently and was never measured), and the chart is sized from those figures.
#
# Built and pushed by .github/workflows/release.yaml on each v* tag. The digests below were
# taken from published references, not pulled on the project's machines (no container engine
# there); the release workflow is the first to pull them. Renew both together, e.g.
#   docker buildx imagetools inspect docker.io/library/rust:1.95-bookworm

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

# The build stage runs on the builder's own platform and cross-compiles for the target one:
# compiling under QEMU emulation would take hours for arm64.
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
ARG BUILDARCH
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gcc=x86-64-linux-gnu ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gcc=aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$gcc" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
      env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_'); \
      { echo "export CARGO_TARGET_${env_triple}_LINKER=$gcc-gcc"; \
        echo "export CC_$(echo "$triple" | tr '-' '_')=$gcc-gcc"; } > /cross.env; \
    else \
      : > /cross.env; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" > /triple
WORKDIR /src

# Dependencies first, in a layer of their own: a change to keyward's sources rebuilds only
# keyward. The manifest names a library, a binary and three benches; empty stand-ins let
# cargo build every dependency without them.
COPY Cargo.toml Cargo.lock ./
RUN set -eux; \
    mkdir -p src benches; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    for bench in plan operator_latency operator_scale; do echo 'fn main() {}' > "benches/$bench.rs"; done; \
    cargo fetch --locked --target "$(cat /triple)"
RUN set -eux; . /cross.env; \
    cargo build --release --locked --offline --target "$(cat /triple)" --bin keyward

# The stand-ins' build is newer than the real sources' copy: touch them so cargo rebuilds.
COPY src ./src
RUN set -eux; . /cross.env; \
    triple=$(cat /triple); \
    touch src/main.rs src/lib.rs; \
    cargo build --release --locked --offline --target "$triple" --bin keyward; \
    install -D -m 0755 "target/$triple/release/keyward" /out/keyward

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/keyward/keyward
LABEL org.opencontainers.image.title="keyward" \
      org.opencontainers.image.description="Kubernetes operator that revokes every MFA enrolment that is no longer declared" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/tree/main/docs" \
      org.opencontainers.image.vendor="keyward" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/keyward /usr/local/bin/keyward
USER 65532:65532
# The chart passes the subcommand and flags as args (`run --listen=…`).
ENTRYPOINT ["/usr/local/bin/keyward"]
