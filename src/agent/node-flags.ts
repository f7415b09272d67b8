/**
 * V8 flags the agent process runs with, wherever it is started: the
 * bin/userlay.js shebang (what the DaemonSet and a user run), and the lab and
 * test harnesses that start `node bin/userlay.js agent` themselves.
 *
 * --max-semi-space-size=1 (MiB): the young generation otherwise grows to
 * 16 MiB semi-spaces under packet load (the js engine allocates per datagram),
 * and RSS never gives those pages back. A 1 MiB semi-space costs more
 * scavenges, each short; bench/RESULTS.md has the RSS and throughput of both.
 * It only takes effect at process start (v8.setFlagsFromString is too late).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
