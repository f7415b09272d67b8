/**
 * What the agent may do to its host (needs root): it adds routes only where none exists and
 * deletes only its own, refuses a cluster range that reaches into the underlay, names `--tun`
 * when that is not a TUN, and warns about an --mtu the underlay cannot carry. Each case runs
 * real agents in one fresh namespace whose underlay is one end of a veth pair, 198.18.0.1/24.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { ip, nsSpawn, stopChild } from '../../src/cli/lab/exec.js';
import { userlayBin } from '../../src/cli/lab/agent-process.js';
import { cleanupStale } from '../../src/cli/lab/stale.js';
import { AGENT_NODE_FLAGS } from '../../src/agent/node-flags.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT } from '../support/lab.js';

const ns = `${TEST_PREFIX_ROOT}${process.pid}-host`;
const dir = mkdtempSync(path.join(tmpdir(), 'ul-host-'));
const peers = path.join(dir, 'peers.json');

interface Agent {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first log line matching `re`; rejects when the agent exits first. */
  line(re: RegExp): Promise<string>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

function agent(args: string[]): Agent {
  const child = nsSpawn(ns, process.execPath, [...AGENT_NODE_FLAGS, userlayBin(), 'agent', '--node', 'n1', '--public-ip', '198.18.0.1',
    '--peers', peers, ...args]);
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }> = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (l) => {
      lines.push(l);
      for (const w of waiters.splice(0)) {
        if (w.re.test(l)) w.resolve(l);
        else waiters.push(w);
      }
    });
  }
  // a case that goes wrong must not hang the suite: no agent here lives longer than this
  const limit = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => {
    clearTimeout(limit);
    for (const w of waiters.splice(0)) w.reject(new Error(`agent exited (${code}) before ${w.re}:\n${lines.join('\n')}`));
    resolve(code);
  }));
  return {
    child, lines, exited,
    line: (re) => {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      if (child.exitCode !== null) return Promise.reject(new Error(`agent exited before ${re}:\n${lines.join('\n')}`));
      return new Promise((resolve, reject) => waiters.push({ re, resolve, reject }));
    },
  };
}

const ready = /"msg":"agent ready"/;

async function routes(): Promise<string> {
  return (await ip(ns, ['-4', 'route', 'show'])).stdout;
}

describe('host ownership (routes, underlay, --tun, --mtu)', { skip: NEEDS_ROOT }, () => {
  before(async () => {
    await cleanupStale(`${TEST_PREFIX_ROOT}${process.pid}-host`);
    writeFileSync(peers, '[]');
    await ip(undefined, ['netns', 'add', ns]);
    await ip(ns, ['link', 'set', 'lo', 'up']);
    await ip(ns, ['link', 'add', 'under0', 'type', 'veth', 'peer', 'name', 'under1']);
    await ip(ns, ['addr', 'add', '198.18.0.1/24', 'dev', 'under0']);
    await ip(ns, ['link', 'set', 'under0', 'up']);
    await ip(ns, ['link', 'set', 'under1', 'up']);
  });
  after(async () => {
    await ip(undefined, ['netns', 'del', ns], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('a second agent does not take over the first one\'s route, and its exit leaves it in place', async () => {
    const a = agent(['--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--tun', 'ulA0', '--port', '8472']);
    try {
      await a.line(ready);
      assert.match(await routes(), /198\.19\.0\.0\/16 dev ulA0 proto 85/);
      const b = agent(['--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--tun', 'ulB0', '--port', '8473']);
      assert.equal(await b.exited, 2, b.lines.join('\n'));
      assert.match(b.lines.join('\n'), /userlay: --network: a route for 198\.19\.0\.0\/16 exists already \(dev ulA0\)/);
      // the first agent still owns its route: nothing the second did removed it
      assert.match(await routes(), /198\.19\.0\.0\/16 dev ulA0 proto 85/);
    } finally {
      await stopChild(a.child);
    }
    assert.doesNotMatch(await routes(), /198\.19\.0\.0\/16/, 'the owner removes its route when it stops');
  });

  test('an operator\'s route for the cluster network is refused, named and left alone', async () => {
    await ip(ns, ['route', 'add', '198.19.0.0/16', 'dev', 'under0']);
    try {
      const a = agent(['--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--tun', 'ulA0']);
      assert.equal(await a.exited, 2, a.lines.join('\n'));
      assert.match(a.lines.join('\n'), /--network: a route for 198\.19\.0\.0\/16 exists already \(dev under0\)/);
      assert.match(await routes(), /198\.19\.0\.0\/16 dev under0 scope link/);
      assert.doesNotMatch(await routes(), /ulA0/);
    } finally {
      await ip(ns, ['route', 'del', '198.19.0.0/16', 'dev', 'under0'], { allowFail: true });
    }
  });

  test('a cluster network over the underlay\'s connected prefix is refused; the underlay route stays', async () => {
    for (const [network, subnet, want] of [
      ['198.18.0.0/16', '198.18.5.0/24', /--network: 198\.18\.0\.0\/16 contains the underlay address 198\.18\.0\.1/],
      ['198.18.0.128/25', '198.18.0.192/26', /--network: 198\.18\.0\.128\/25 overlaps 198\.18\.0\.0\/24, the underlay's connected prefix on under0/],
    ] as const) {
      const a = agent(['--subnet', subnet, '--network', network, '--tun', 'ulA0']);
      assert.equal(await a.exited, 2, a.lines.join('\n'));
      assert.match(a.lines.join('\n'), want);
      assert.match(await routes(), /198\.18\.0\.0\/24 dev under0 proto kernel/);
      assert.doesNotMatch(await routes(), /ulA0/);
    }
  });

  test('--tun naming an existing non-TUN link exits 2 naming --tun', async () => {
    const a = agent(['--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--tun', 'under0']);
    assert.equal(await a.exited, 2, a.lines.join('\n'));
    assert.match(a.lines.join('\n'), /userlay: --tun: under0 exists and is not a TUN device/);
    assert.match((await ip(ns, ['-o', 'link', 'show', 'under0'])).stdout, /under0/, 'the link is untouched');
  });

  test('an --mtu larger than the underlay carries is warned about, with the numbers', async () => {
    const a = agent(['--subnet', '198.19.1.0/24', '--network', '198.19.0.0/16', '--tun', 'ulA0', '--mtu', '1480']);
    try {
      const warn = await a.line(/larger than underlay/);
      assert.match(warn, /--mtu 1480 is larger than underlay under0 \(MTU 1500\) carries after 50 bytes of vxlan overhead \(1450\)/);
      await a.line(ready);
    } finally {
      await stopChild(a.child);
    }
  });
});
