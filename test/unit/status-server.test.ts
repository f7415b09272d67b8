import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { parseListenAddress } from '../../src/agent/agent-flags.js';
import {
  escapeLabelValue,
  startStatusServer,
  type StatusSources,
} from '../../src/agent/status-server.js';
import { silentLogger } from '../../src/log.js';
import type { Dataplane, DataplaneStats, Peer } from '../../src/dataplane/types.js';

function fakeDataplane(peers: Peer[], stats: DataplaneStats): Dataplane {
  return {
    options: {} as Dataplane['options'],
    tunName: 'ul0',
    setPeers() {},
    peers: () => peers,
    mtu: () => 1450,
    setMtu() {},
    stats: () => stats,
    close: async () => {},
  };
}

const stats: DataplaneStats = {
  total: { txPackets: 3n, txBytes: 300n, rxPackets: 2n, rxBytes: 200n, drops: { no_route: 4n } },
  peers: {
    'n2': { txPackets: 3n, txBytes: 300n, rxPackets: 2n, rxBytes: 200n, drops: { spoofed: 1n } },
    'we"ird\\n\name': { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n, drops: {} },
  },
  fdbPeers: 2,
  fdbRoutes: 2,
  socketDrops: 5n,
  sendSocketDrops: 12n,
};

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

test('parseListenAddress accepts HOST:PORT, [v6]:PORT, :PORT and rejects the rest', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseListenAddress('[::1]:80'), { host: '::1', port: 80 });
  assert.deepEqual(parseListenAddress(':0'), { host: undefined, port: 0 });
  for (const bad of ['9100', '1.2.3.4', '1.2.3.4:70000', '::1:80', 'a:b']) {
    assert.throws(() => parseListenAddress(bad), (e: Error & { code?: string }) => e.code === 'EUSAGE' && /--status-addr/.test(e.message), bad);
  }
});

test('escapeLabelValue escapes backslash, quote and newline', () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

test('status server serves healthz, readyz, metrics, debug endpoints', async () => {
  let ready = { ready: false, reasons: ['lease not published'] };
  const dp = fakeDataplane([{ name: 'n2', subnets: ['198.19.2.0/24'], publicIP: '198.18.0.2' }], stats);
  let up: Dataplane | undefined;
  const sources: StatusSources = {
    dataplane: () => up,
    ready: () => ready,
    metrics: () => '# HELP userlay_informer_restarts_total x\n# TYPE userlay_informer_restarts_total counter\nuserlay_informer_restarts_total 7',
  };
  const srv = await startStatusServer('127.0.0.1:0', sources, silentLogger);
  try {
    assert.ok(srv.port > 0);
    assert.equal((await get(srv.port, '/healthz')).status, 200);

    let r = await get(srv.port, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { ready: false, reasons: ['lease not published'] });
    assert.equal((await get(srv.port, '/debug/stats')).status, 503);
    assert.deepEqual(JSON.parse((await get(srv.port, '/debug/fdb')).body), { peers: [] });

    up = dp;
    ready = { ready: true, reasons: [] };
    r = await get(srv.port, '/readyz');
    assert.equal(r.status, 200);

    r = await get(srv.port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^# HELP userlay_tx_packets_total .+\n# TYPE userlay_tx_packets_total counter\n/m);
    assert.match(r.body, /^userlay_tx_packets_total\{peer="n2"\} 3$/m);
    assert.match(r.body, /^userlay_rx_bytes_total\{peer="n2"\} 200$/m);
    assert.match(r.body, /^userlay_tx_packets_total\{peer="we\\"ird\\\\n\\name"\} 0$/m);
    assert.match(r.body, /^userlay_dropped_packets_total\{reason="no_route"\} 4$/m);
    assert.match(r.body, /^userlay_dropped_packets_total\{reason="spoofed"\} 0$/m, 'every reason in the totals, zero too');
    assert.match(r.body, /^userlay_peer_dropped_packets_total\{peer="n2",reason="spoofed"\} 1$/m);
    assert.doesNotMatch(r.body, /^userlay_dropped_packets_total\{.*peer=/m, 'totals and the per-peer breakdown are separate families');
    assert.match(r.body, /^userlay_build_info\{version="\d+\.\d+\.\d+",nodejs_version="v\d+\.\d+\.\d+"\} 1$/m);
    assert.match(r.body, /^process_resident_memory_bytes [1-9]\d+$/m);
    assert.match(r.body, /^userlay_fdb_peers 2$/m);
    assert.match(r.body, /^userlay_fdb_routes 2$/m);
    assert.match(r.body, /^# TYPE userlay_udp_receive_drops_total counter\nuserlay_udp_receive_drops_total 5$/m);
    assert.match(r.body, /^# TYPE userlay_udp_send_socket_drops_total counter\nuserlay_udp_send_socket_drops_total 12$/m);
    assert.match(r.body, /^userlay_informer_restarts_total 7\n$/m);
    // Every sample line belongs to a family announced by a TYPE line.
    const typed = new Set([...r.body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const line of r.body.split('\n').filter((l) => l && !l.startsWith('#'))) {
      assert.ok(typed.has(line.split(/[{ ]/)[0]!), `untyped sample: ${line}`);
    }

    r = await get(srv.port, '/debug/fdb');
    assert.equal(JSON.parse(r.body).peers[0].publicIP, '198.18.0.2');
    r = await get(srv.port, '/debug/stats');
    const js = JSON.parse(r.body);
    assert.equal(js.total.txPackets, '3');
    assert.equal(js.peers.n2.drops.spoofed, '1');

    assert.equal((await get(srv.port, '/nope')).status, 404);
    const post = await fetch(`http://127.0.0.1:${srv.port}/healthz`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  } finally {
    await srv.close();
    await srv.close();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/healthz`));
});

test('status server reports a port in use with its errno code', async () => {
  const blocker = createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const port = (blocker.address() as { port: number }).port;
  try {
    await assert.rejects(
      startStatusServer(`127.0.0.1:${port}`, { dataplane: () => undefined, ready: () => ({ ready: true, reasons: [] }) }, silentLogger),
      (e: Error & { code?: string }) => e.code === 'EADDRINUSE' && e.message.includes(`127.0.0.1:${port}`),
    );
  } finally {
    await new Promise((res) => blocker.close(res));
  }
});
