/**
 * V8 flags the agent process runs with, wherever it is started: the
 * bin/userlay.js shebang (what the DaemonSet and a user run), and the lab and
 * test harnesses that start `node bin/userlay.js agent` themselves.
 *
 * Chosen by measurement on the real agent in kube mode, 5,000 Nodes of 50
 * images, 5,000 updates (bench/kube-scale-real.ts; bench/RESULTS.md, issue 9):
 *
 *   flags                                    RSS sync / churn max / idle   sync    event p95
 *   --max-semi-space-size=1                  189 / 343 / 183 MB            0.80 s  33 ms
 *   --optimize-for-size + the above          130 / 148 / 134 MB            1.14 s  58 ms
 *   --lite-mode --no-expose-wasm + the above 130 / 142 / 131 MB            1.13 s  117 ms
 *
 * Re-checked with client-node out of the agent (credential helper) and the smaller FDB records:
 *   --max-semi-space-size=1                  82 / 167 / 95 MB              1.09 s  32 ms
 *   --optimize-for-size + the above          82 / 98 / 86 MB               1.01 s  34 ms
 *
 * --optimize-for-size keeps V8's old generation near the live size instead of
 * letting it grow to a multiple of it between full GCs (more, shorter full
 * GCs); the control plane is not on the packet path and both its costs stay
 * inside the targets (sync < 2 s, p95 < 100 ms). --lite-mode saves the same
 * memory only at a much higher latency: it turns off the JIT (and WebAssembly,
 * which Node's fetch needs), so it is not used.
 * --max-semi-space-size=1 (MiB): the young generation otherwise grows to
 * 16 MiB semi-spaces under packet load (the js engine allocates per datagram),
 * and RSS never gives those pages back. A 1 MiB semi-space costs more
 * scavenges, each short. It only takes effect at process start
 * (v8.setFlagsFromString is too late).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--optimize-for-size', '--max-semi-space-size=1'];
