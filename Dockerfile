# syntax=docker/dockerfile:1
# keyward's container image: one static (musl) binary on distroless "static", running as the
# non-root user 65532 that the Helm chart's securityContext expects (runAsUser/runAsGroup).
#
#   docker build -t registry.example/keyward:0.1.0 .
#
# Not built by the project's CI: its machines have no container engine. The binary inside is
# the same `cargo build --release` that CI tests, linked statically for the image.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The build platform's own architecture (x86_64 or aarch64): no cross toolchain needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    cargo build --release --locked --bin keyward --target "$target"; \
    install -D -m 0755 "target/$target/release/keyward" /out/keyward

# distroless/static: no shell, no package manager; CA certificates and /etc/passwd only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keyward /usr/local/bin/keyward
USER 65532:65532
# The chart passes the subcommand and flags as args (`run --listen=…`).
ENTRYPOINT ["/usr/local/bin/keyward"]
