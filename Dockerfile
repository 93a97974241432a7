# syntax=docker/dockerfile:1
# bootstrap as a small non-root image, with all four providers (the default features, AWS included):
#   docker build -t bootstrap .
#   docker run --rm -e HCLOUD_TOKEN bootstrap snapshot run --dry-run
# Stage 1 builds the release binary with Rust; stage 2 is distroless/cc (glibc, libgcc and the CA
# certificates the binary links and reads; no shell, no package manager), running as uid 65532,
# the user `snapshot install --kubernetes` sets in its CronJob.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the build between builds; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin bootstrap \
    && cp target/release/bootstrap /usr/local/bin/bootstrap

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/bootstrap /usr/local/bin/bootstrap
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bootstrap"]
CMD ["--help"]
