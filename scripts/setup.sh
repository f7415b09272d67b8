#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine for userlay, as root:
#   - system packages the lab, the tests and the bench use (apt-get; prometheus for
#     promtool and `userlay lab --prometheus`),
#   - npm dependencies (npm ci), which
#     also builds the native addon (node-gyp), the CNI shim (make -C native cni)
#     and compiles the TypeScript.
# Quiet unless something fails; then the failing step's output is shown.
# Node.js >= 20 must already be installed. Usage: sudo bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp -t userlay-setup.XXXXXX)"
trap 'rm -f "$log"' EXIT

step() {
  # step "what" cmd args...: run quietly, show the output only on failure.
  local what="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    echo "setup: $what failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (installs packages; the lab and tests create network namespaces)" >&2
  exit 2
fi
if ! command -v node >/dev/null 2>&1; then
  echo "setup: Node.js >= 20 is required (e.g. apt-get install nodejs, or nodesource)" >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required, found $(node -v)" >&2
  exit 2
fi

packages=(
  iproute2 iputils-ping procps ethtool iperf3 tshark tcpdump curl
  containernetworking-plugins iptables build-essential python3 make g++ prometheus
  # nft: the agent's pod egress table (--ip-masq) and its tests
  nftables
  # the container image (scripts/image.sh) and the podman-on-userlay test
  podman buildah runc mmdebstrap
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer "no" without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  step "apt-get update" apt-get update -q
  step "apt-get install ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The lockfile is the source of truth: a lockfile out of step with
# package.json is a bug to fix, not something to paper over here.
step "npm ci" npm ci --no-audit --no-fund
# npm skips lifecycle scripts when run as root in some setups; make sure both builds exist.
[ -f native/build/Release/userlay.node ] && [ -x native/build-cni/userlay ] || step "native addon and CNI shim build" npm run build:native
[ -f dist/src/cli/main.js ] || step "TypeScript build" npm run build
