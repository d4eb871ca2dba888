# fom-qbo: one image for both processes. The default command is the web process; compose and
# heroku.yml choose fom-web or fom-worker. No BuildKit-only features, so any builder works.

# --- build: the two release binaries ------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Dependencies first, against stub sources, so a source change does not rebuild them.
# Every workspace member's manifest is needed for Cargo to load the workspace (--locked).
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml crates/core/
COPY crates/web/Cargo.toml crates/web/
COPY crates/worker/Cargo.toml crates/worker/
COPY crates/testkit/Cargo.toml crates/testkit/
COPY tests/Cargo.toml tests/
RUN mkdir -p crates/core/src crates/web/src crates/worker/src crates/testkit/src \
 && touch crates/core/src/lib.rs crates/testkit/src/lib.rs tests/lib.rs tests/e2e.rs \
 && echo 'fn main() {}' > crates/web/src/main.rs \
 && echo 'fn main() {}' > crates/worker/src/main.rs \
 && cargo build --release --locked -p fom-web -p fom-worker \
 && rm -rf crates tests

# The real sources; touched so Cargo sees them as newer than the stub build.
COPY crates crates
COPY tests tests
RUN find crates tests -type f -exec touch {} + \
 && cargo build --release --locked -p fom-web -p fom-worker \
 && cp target/release/fom-web target/release/fom-worker /usr/local/bin/

# --- pdfium: from the same pinned pypdfium2 wheel as `make pdfium` --------------------------
FROM debian:bookworm-slim AS pdfium
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/install-pdfium.sh scripts/
RUN bash scripts/install-pdfium.sh && ls -l vendor/pdfium

# --- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home fom \
 && mkdir -p /app/bin /app/vendor/pdfium /data/uploads \
 && chown fom:fom /data/uploads
COPY --from=builder /usr/local/bin/fom-web /usr/local/bin/fom-worker /app/bin/
COPY --from=pdfium /src/vendor/pdfium/ /app/vendor/pdfium/

# /data/uploads is for UPLOAD_STORE=dir:/data/uploads (a volume shared by web and worker);
# it is created here owned by fom so a new named volume starts out writable.
ENV PATH=/app/bin:$PATH \
    PDFIUM_LIB_PATH=/app/vendor/pdfium/libpdfium.so \
    PORT=8080 \
    RUST_LOG=info
WORKDIR /app
USER fom
EXPOSE 8080
CMD ["fom-web"]
