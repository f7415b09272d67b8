#!/usr/bin/env bash
# Set up a fresh Debian machine and run every test: C core tests, unit tests,
# and (as root) the netns, interop and end-to-end tests.
# Usage (as root): bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npm test
