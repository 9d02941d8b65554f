# twemproxy (Debian's nutcracker package) for the compose cluster profile.
# Built from the local debian:bookworm-slim; apt needs the network at build
# time (docker-compose builds it with network: host).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nutcracker \
    && rm -rf /var/lib/apt/lists/*
COPY twemproxy.yml /etc/nutcracker/nutcracker.yml
USER 65534:65534
EXPOSE 22121
ENTRYPOINT ["/usr/sbin/nutcracker", "-c", "/etc/nutcracker/nutcracker.yml", "-o", "/dev/stderr", "-s", "22222", "-a", "127.0.0.1"]
