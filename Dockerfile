# syntax=docker/dockerfile:1
#
# The lb-k8s image: one static binary (the controller and the speaker) on an
# empty base. Build from the repository root:
#
#   docker build -t ghcr.io/example/lb-k8s:v0.1.0 .
#
# x86_64 only for now (musl-tools provides a C compiler for this target alone); see
# docs/install.md, "Building the image".

FROM rust:1.95-bookworm AS build
# ring (TLS to the API server) compiles C and assembly: musl-gcc comes with musl-tools.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions of Cargo.lock. The musl target links statically.
# The dist profile (Cargo.toml) optimises for size: the speaker runs on every node, and half
# the machine code is half the binary pages it keeps resident.
RUN cargo build --profile dist --locked -p lb-k8s --bin lb-k8s --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/dist/lb-k8s /out/lb-k8s

# Nothing but the binary: no shell, no libc, no CA bundle. In a cluster the API server's CA
# comes from the ServiceAccount mount (/var/run/secrets/kubernetes.io/serviceaccount/ca.crt),
# so system certificates are not needed.
FROM scratch
COPY --from=build /out/lb-k8s /lb-k8s
# nobody:nogroup. The controller runs as is; the speaker DaemonSet sets runAsUser 0 (see
# deploy/speaker.yaml for why).
USER 65534:65534
# 7472 controller metrics/health, 7473 speaker metrics/health, 7946/udp memberlist.
EXPOSE 7472 7473 7946/udp
ENTRYPOINT ["/lb-k8s"]
