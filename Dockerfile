# One build of the workspace, three small runtime images (pick one with --target):
#   docker build --target auth-service -t wxauth/auth-service .
# The dependencies are built from the manifests alone (cargo-chef's recipe), in a layer of
# their own: editing the workspace's sources rebuilds only its own crates.
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bins \
    && mkdir /out \
    && cp target/release/auth-service target/release/gateway target/release/wechat-sim /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates follows Debian's security updates; a pinned version would stop doing so.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
USER 65532:65532

FROM runtime AS auth-service
COPY --from=build /out/auth-service /usr/local/bin/auth-service
ENV WXAUTH_GRPC_ADDR=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/auth-service"]

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
ENV GATEWAY_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS wechat-sim
COPY --from=build /out/wechat-sim /usr/local/bin/wechat-sim
ENV WECHAT_SIM_ADDR=0.0.0.0:9090
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/wechat-sim"]
