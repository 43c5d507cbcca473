# oauthgate: multi-stage build, small non-root runtime image.
#   docker build -t oauthgate .
#   docker volume create oauthgate-data
#   docker run -p 8443:8443 -v oauthgate-data:/var/lib/oauthgate \
#     -e OAUTHGATE_PUBLIC_URL=https://localhost:8443 \
#     -e GITHUB_CLIENT_ID=… -e GITHUB_CLIENT_SECRET=… oauthgate
# The image's config is deploy/docker/config.yaml; see README.md, "Docker".
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin oauthgate && strip target/release/oauthgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/oauthgate oauthgate \
 && mkdir -p /etc/oauthgate /var/lib/oauthgate \
 && chown oauthgate /var/lib/oauthgate
COPY --from=build /src/target/release/oauthgate /usr/local/bin/oauthgate
COPY demo /usr/share/oauthgate/demo
COPY deploy/docker/config.yaml /etc/oauthgate/config.yaml
# Defaults for the config's variables; override any with -e.
ENV OAUTHGATE_LISTEN=0.0.0.0:8443 \
    OAUTHGATE_DATA_DIR=/var/lib/oauthgate \
    OAUTHGATE_UPSTREAM=file:///usr/share/oauthgate/demo
USER oauthgate
WORKDIR /var/lib/oauthgate
VOLUME ["/var/lib/oauthgate"]
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/oauthgate", "health", "--config", "/etc/oauthgate/config.yaml"]
ENTRYPOINT ["/usr/local/bin/oauthgate"]
CMD ["serve", "--config", "/etc/oauthgate/config.yaml"]
