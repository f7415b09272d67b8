#!/usr/bin/env -S node --optimize-for-size --max-semi-space-size=1
// The V8 flags above are AGENT_NODE_FLAGS (src/agent/node-flags.ts); a unit test keeps them equal.
import '../dist/src/cli/main.js';
