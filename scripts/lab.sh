#!/usr/bin/env bash
# Set up a fresh Debian machine (system packages, npm deps, addon, TypeScript)
# and run the main job: a local multi-node overlay lab with pings and throughput.
# Usage (as root): bash scripts/lab.sh [lab flags, e.g. --nodes 3 --backend vxlan --engine native]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/userlay.js lab "$@"
