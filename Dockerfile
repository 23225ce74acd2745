# chops: the ClickHouse ChatOps bot (Discord) plus /livez, /readyz, /metrics on :9187.
#
#   docker build -t chops .
#
# Multi-stage: cargo-chef turns the manifests into a recipe so that the ~300 dependencies
# build in a layer of their own, reused until Cargo.toml/Cargo.lock change; editing src/
# then recompiles chops alone. tests/it/docker.rs keeps this file in sync with Cargo.toml,
# docker-compose.yml and deploy/compose/chops.toml.

# --- chef: the toolchain plus cargo-chef ------------------------------------------------
# Cargo.toml's rust-version is 1.89. The slim image already has gcc, libc6-dev and binutils,
# which is all the C the dependencies need (the bundled SQLite of rusqlite, ring); nothing
# uses OpenSSL, pkg-config or cmake. Bookworm, like the runtime image, for the same glibc.
FROM rust:1.89-slim-bookworm AS chef
# Pinned and --locked: the same cargo-chef on every build; its registry cache is not needed.
RUN cargo install cargo-chef --locked --version 0.1.78 \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /app

# --- planner: the recipe (manifests and lockfile only) -----------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (the cached layer), then chops itself --------------------
FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Same profile, lockfile and target as the final build, so its artifacts are reused.
RUN cargo chef cook --release --locked --bin chops --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin chops

# --- runtime: the binary on a slim Debian of the same release ----------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates: Debian's CA bundle at /etc/ssl/certs/ca-certificates.crt. chops' own TLS
# (Discord, https:// replicas, tls:// Keeper) trusts Mozilla's roots built into the binary; a
# cluster's `tls.ca_file` may point at this bundle to trust the system store instead (e.g. a
# private CA added in a derived image with update-ca-certificates). tzdata: the system zone
# database (schedules are also covered by the zone data built into the binary).
# Versions are not pinned: Debian's security updates replace them within the release, and a
# pinned version would make the build fail once the archive drops it.
# --no-log-init: a high uid would otherwise make useradd write a huge sparse lastlog (DL3046).
# /var/lib/chops: the working directory (SQLite store, an optional .env), owned by chops.
# /etc/chops: where the config is mounted read-only; root-owned, so chops cannot rewrite it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 chops \
    && useradd --uid 10001 --gid chops --no-log-init --no-create-home \
        --home-dir /var/lib/chops --shell /usr/sbin/nologin chops \
    && install -d -o chops -g chops -m 0750 /var/lib/chops \
    && install -d -o root -g root -m 0755 /etc/chops
COPY --from=builder /app/target/release/chops /usr/local/bin/chops
# chops loads .env from its working directory: mount one at /var/lib/chops/.env, or pass the
# variables with --env-file.
WORKDIR /var/lib/chops
# The config is mounted here read-only (--config still overrides it).
ENV CHOPS_CONFIG=/etc/chops/chops.toml
# [http] listen: inside a container it must be 0.0.0.0:9187 to be reachable from outside.
EXPOSE 9187
# There is no curl in the image: chops itself GETs /livez and exits 0 on a 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["chops", "healthcheck", "--url", "http://127.0.0.1:9187/livez"]
# Numeric (the chops user created above): Kubernetes' runAsNonRoot can only verify a uid (DL3066).
USER 10001:10001
ENTRYPOINT ["chops"]
CMD ["serve"]
