# oauthgate: multi-stage build, small non-root runtime image.
#   docker build -t oauthgate .
#   docker run -p 8443:8443 -v $PWD/config.yaml:/etc/oauthgate/config.yaml:ro \
#              -v oauthgate-data:/var/lib/oauthgate oauthgate
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/oauthgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/oauthgate oauthgate \
 && mkdir -p /etc/oauthgate /var/lib/oauthgate \
 && chown oauthgate /var/lib/oauthgate
COPY --from=build /src/target/release/oauthgate /usr/local/bin/oauthgate
COPY demo /usr/share/oauthgate/demo
USER oauthgate
WORKDIR /var/lib/oauthgate
# The config names data_dir (relative paths resolve against this working directory).
VOLUME ["/etc/oauthgate", "/var/lib/oauthgate"]
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/oauthgate"]
CMD ["serve", "--config", "/etc/oauthgate/config.yaml"]
