# Redis Sentinel (Debian's redis-sentinel package) for the compose ha
# profile: it watches the pogocache primary, promotes a replica when the
# primary is lost and tells clients where the primary is. Built from the
# local debian:bookworm-slim; apt needs the network at build time
# (docker-compose builds it with network: host).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-sentinel \
    && rm -rf /var/lib/apt/lists/*
COPY sentinel-entrypoint.sh /usr/local/bin/sentinel-entrypoint.sh
USER redis
EXPOSE 26379
ENTRYPOINT ["/bin/sh", "/usr/local/bin/sentinel-entrypoint.sh"]
