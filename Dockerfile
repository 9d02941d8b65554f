# pogocache-rs container image (see DOCKER.md).
#
# Stages, by the Docker guide's names:
#   deps-builder    compiles only the dependencies, from the manifests and
#                   Cargo.lock (dummy sources), so a source change never
#                   rebuilds them
#   source-builder  compiles the static (glibc static-pie), LTO release
#                   binary and prepares the runtime files
#   runtime         (default) FROM scratch: the binary, a passwd entry for
#                   user pogocache (1000:1000), /data, a real healthcheck
#   development     the same binary plus gdb, strace, redis-cli, curl, psql
#
# Needs BuildKit (DOCKER_BUILDKIT=1) for the cache mounts. Base images are
# build arguments with the standard public defaults.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG DEV_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS deps-builder
ARG TARGETARCH
ARG PARALLEL_JOBS=0
WORKDIR /build
# Static, stripped, LTO (from the release profile); debug info is not
# shipped.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=true \
    RUSTFLAGS="-C target-feature=+crt-static"
COPY Cargo.toml Cargo.lock ./
COPY crates/store/Cargo.toml crates/store/
COPY crates/protocol/Cargo.toml crates/protocol/
COPY crates/command/Cargo.toml crates/command/
COPY crates/persist/Cargo.toml crates/persist/
COPY crates/server/Cargo.toml crates/server/
COPY crates/pogocache/Cargo.toml crates/pogocache/
COPY crates/loadgen/Cargo.toml crates/loadgen/
RUN set -eu; \
    for c in store protocol command persist server; do mkdir -p crates/$c/src && : > crates/$c/src/lib.rs; done; \
    for c in pogocache loadgen; do mkdir -p crates/$c/src && echo 'fn main() {}' > crates/$c/src/main.rs; done; \
    mkdir -p crates/store/benches crates/protocol/benches; \
    echo 'fn main() {}' > crates/store/benches/store.rs; echo 'fn main() {}' > crates/protocol/benches/resp.rs; \
    echo 'fn main() {}' > crates/protocol/benches/parsers.rs; \
    case "${TARGETARCH:-amd64}" in arm64) echo aarch64-unknown-linux-gnu ;; *) echo x86_64-unknown-linux-gnu ;; esac > /build/target-triple
RUN --mount=type=cache,id=pogocache-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pogocache-target,target=/build/target \
    jobs=""; [ "${PARALLEL_JOBS:-0}" -gt 0 ] && jobs="-j $PARALLEL_JOBS"; \
    cargo build --release --locked -p pogocache --target "$(cat /build/target-triple)" $jobs

FROM deps-builder AS source-builder
ARG PARALLEL_JOBS=0
COPY crates crates
# COPY keeps the context's modification times, which can be older than the
# dummy sources: touch ours so cargo rebuilds them (and only them).
RUN --mount=type=cache,id=pogocache-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pogocache-target,target=/build/target \
    set -eu; \
    find crates -name '*.rs' -exec touch {} +; \
    jobs=""; [ "${PARALLEL_JOBS:-0}" -gt 0 ] && jobs="-j $PARALLEL_JOBS"; \
    triple="$(cat /build/target-triple)"; \
    cargo build --release --locked -p pogocache --target "$triple" $jobs; \
    mkdir -p /out/root/data /out/root/etc /out/root/usr/local/bin; \
    chmod 1777 /out/root/data; \
    cp "target/$triple/release/pogocache" /out/root/usr/local/bin/pogocache; \
    echo 'pogocache:x:1000:1000:pogocache:/data:/sbin/nologin' > /out/root/etc/passwd; \
    echo 'pogocache:x:1000:' > /out/root/etc/group

FROM scratch AS runtime
# The binary, passwd/group for user pogocache, and /data: world-writable
# with the sticky bit (a copied tree keeps its modes), so `--user <any uid>`
# can persist.
COPY --from=source-builder /out/root/ /
USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9401
STOPSIGNAL SIGTERM
# The binary's own probe: connects and expects +PONG (no shell needed).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/pogocache", "--health"]
# Listen on every interface inside the container. More flags: arguments
# after the image name, or POGOCACHE_EXTRA_FLAGS; the password in
# POGOCACHE_AUTH_PASSWORD or from a file: POGOCACHE_AUTH_FILE (not both).
ENTRYPOINT ["/usr/local/bin/pogocache", "-h", "0.0.0.0"]

FROM ${DEV_IMAGE} AS development
RUN apt-get update \
    && apt-get install -y --no-install-recommends gdb strace redis-tools curl postgresql-client procps ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=source-builder /out/root/usr/local/bin/pogocache /usr/local/bin/pogocache
RUN groupadd -g 1000 pogocache && useradd -u 1000 -g 1000 -d /data -s /usr/sbin/nologin pogocache \
    && mkdir -p /data && chmod 1777 /data
USER 1000:1000
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9401
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/pogocache", "--health"]
ENTRYPOINT ["/usr/local/bin/pogocache", "-h", "0.0.0.0"]

# The default target is the runtime image.
FROM runtime
