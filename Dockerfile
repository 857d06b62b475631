# wasiter images.
#
# Default (last stage): a FROM-scratch image holding only wasiter.wasm, for
# Docker+Wasm with the WasmEdge containerd shim:
#   docker buildx build --platform wasi/wasm -t wasiter .
#   docker run --runtime=io.containerd.wasmedge.v1 --platform=wasi/wasm \
#     --ulimit nofile=65536:65536 -e WASITER_NOFILE=65536 \
#     -p 8080:8080 -e LOCAL=0.0.0.0:8080 -e REMOTE=backend:80 wasiter
# (--ulimit: a client takes two descriptors, and neither the image, which
# has no shell, nor the wasm runtime raises a soft limit of 1024; the
# module cannot ask for it, so WASITER_NOFILE says it. See
# docs/reliability-and-security.md, "Descriptors and the listen backlog".)
#
# With the wasmedge CLI inside an ordinary image (no Wasm shim needed),
# AOT-compiled at build time. The wasmedge CLI hands a module only the
# variables named with --env and the image has no shell to name them, so the
# settings are flags after the image name (or a routes file under /etc):
#   docker build --target wasmedge -t wasiter:wasmedge .
#   docker run --ulimit nofile=65536:65536 -p 8080:8080 wasiter:wasmedge --local 0.0.0.0:8080 --remote backend:80
#
# Offline, from a module already built here (scripts/build), no registry and no
# network: the context is a folder holding only wasiter.wasm (scripts/image
# makes it, builds with buildah and runs what it built):
#   buildah bud --target prebuilt --platform wasi/wasm \
#     --annotation module.wasm.image/variant=compat-smart -f Dockerfile CONTEXT
#
# Settings are environment variables: LOCAL and REMOTE (or WASITER_ROUTES for
# several routes) and the WASITER_* ones (see README.md).
# With --metrics, give an address other containers can reach, e.g.
# -e WASITER_METRICS=0.0.0.0:9090 (a bare port means loopback only).

ARG RUST_IMAGE=rust:1.95-slim
# wasmedge/slim has `wasmedge compile` (the AOT compiler); slim-runtime only
# runs modules (WasmEdge's docs: "includes only WasmEdge runtime").
ARG WASMEDGE_COMPILER_IMAGE=wasmedge/slim:0.17.1
ARG WASMEDGE_IMAGE=wasmedge/slim-runtime:0.17.1

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
# clang: ring (rustls' cryptography) compiles C for wasm32, which gcc cannot.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends clang \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
RUN cargo build --release --locked --target wasm32-wasip1

# Compile ahead of time where the compiler is...
FROM ${WASMEDGE_COMPILER_IMAGE} AS aot
COPY --from=build /src/target/wasm32-wasip1/release/wasiter.wasm /wasiter.wasm
RUN ["wasmedge", "compile", "/wasiter.wasm", "/wasiter.aot.wasm"]

# ...and run it where only the runtime is, with --run-mode=aot (WasmEdge 0.17
# interprets even an AOT file unless told otherwise). /etc is given to the
# module so that names resolve as in any container (resolv.conf, hosts) and a
# routes file can be mounted there. No shell: the entrypoint is the CLI.
FROM ${WASMEDGE_IMAGE} AS wasmedge
COPY --from=aot /wasiter.aot.wasm /wasiter.aot.wasm
EXPOSE 8080
ENTRYPOINT ["wasmedge", "--dir", "/etc:/etc", "--run-mode=aot", "/wasiter.aot.wasm"]

# The module built elsewhere (scripts/image): the same image as the default.
FROM scratch AS prebuilt
COPY wasiter.wasm /wasiter.wasm
EXPOSE 8080
ENTRYPOINT ["/wasiter.wasm"]

# The default: just the module, for the containerd WasmEdge shim.
FROM scratch AS wasm
COPY --from=build /src/target/wasm32-wasip1/release/wasiter.wasm /wasiter.wasm
EXPOSE 8080
ENTRYPOINT ["/wasiter.wasm"]
