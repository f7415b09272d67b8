/**
 * The partial-checksum capability in the control plane (native/src/csum.c, "Partial checksums"):
 * who says a peer takes inner checksums left partial, and that nobody else is taken to.
 * A userlay node publishes userlay.io/partial-csum "true" with its lease (under any annotation
 * prefix); a Node without it (flannel) is never treated so; a peers-file entry says
 * partialCsum: true; the snapshot and the lab's peers files carry it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { parsePeers } from '../../src/control/static-file.js';
import { FLANNEL_ANNOTATION_PREFIX, PARTIAL_CSUM_ANNOTATION, leasePatch } from '../../src/control/kube/lease.js';
import { nodeToPeer, peerKeys, trimNode, type SyncConfig } from '../../src/control/kube/desired-peers.js';
import { SnapshotStore, type OwnLease } from '../../src/control/snapshot-store.js';
import { peerEntries } from '../../src/cli/lab/overlay.js';
import { labNode } from '../../src/cli/lab/topology.js';
import { UserlayError } from '../../src/errors.js';
import { cfg } from '../support/kube-nodes.js';

const n2 = { name: 'n2', subnet: '198.19.2.0/24', publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:12:00:02' };

test('peers file: partialCsum true is kept, false or absent leaves it out, anything else names the field', () => {
  assert.equal(parsePeers([{ ...n2, partialCsum: true }], 'vxlan')[0]!.partialCsum, true);
  assert.equal(parsePeers([{ ...n2, partialCsum: false }], 'vxlan')[0]!.partialCsum, undefined);
  assert.equal(parsePeers([n2], 'vxlan')[0]!.partialCsum, undefined);
  for (const bad of ['true', 1, null]) {
    assert.throws(() => parsePeers([{ ...n2, partialCsum: bad }], 'vxlan'),
      (err: unknown) => err instanceof UserlayError && err.message.startsWith('peers[0].partialCsum:'), String(bad));
  }
});

test('lease: userlay.io/partial-csum "true" under any prefix; without the capability the annotation is removed', () => {
  const lease = { backend: 'vxlan' as const, vni: 1, vtepMAC: '0a:58:c6:13:01:00', publicIP: '198.18.0.1', family: 4 as const };
  for (const prefix of ['userlay.io', FLANNEL_ANNOTATION_PREFIX]) {
    const on = leasePatch(prefix, { ...lease, partialCsum: true }) as { metadata: { annotations: Record<string, string | null> } };
    assert.equal(on.metadata.annotations[PARTIAL_CSUM_ANNOTATION], 'true', prefix);
    const off = leasePatch(prefix, lease) as { metadata: { annotations: Record<string, string | null> } };
    assert.equal(off.metadata.annotations[PARTIAL_CSUM_ANNOTATION], null, prefix);
  }
  assert.equal(PARTIAL_CSUM_ANNOTATION, 'userlay.io/partial-csum');
});

test('nodeToPeer: only the exact "true" of userlay.io/partial-csum makes a peer take partial checksums; trimNode keeps it', () => {
  const flannel: SyncConfig = { ...cfg, prefix: FLANNEL_ANNOTATION_PREFIX };
  const node = (extra: Record<string, string>): V1Node => ({
    metadata: {
      name: 'f2',
      annotations: {
        [`${FLANNEL_ANNOTATION_PREFIX}/backend-type`]: 'vxlan',
        [`${FLANNEL_ANNOTATION_PREFIX}/backend-data`]: '{"VNI":1,"VtepMAC":"7a:11:22:33:44:55"}',
        [`${FLANNEL_ANNOTATION_PREFIX}/public-ip`]: '198.18.0.2',
        'unrelated.example/x': 'y',
        ...extra,
      },
    },
    spec: { podCIDR: '198.19.2.0/24' },
  });
  const peerOf = (n: V1Node) => {
    const v = nodeToPeer(trimNode(n, FLANNEL_ANNOTATION_PREFIX), flannel);
    assert.ok(v.ok, JSON.stringify(v));
    return v.peer;
  };
  assert.equal(trimNode(node({ [PARTIAL_CSUM_ANNOTATION]: 'true' }), FLANNEL_ANNOTATION_PREFIX).metadata?.annotations?.[PARTIAL_CSUM_ANNOTATION], 'true');
  assert.equal(trimNode(node({}), FLANNEL_ANNOTATION_PREFIX).metadata?.annotations?.['unrelated.example/x'], undefined);
  const userlay = peerOf(node({ [PARTIAL_CSUM_ANNOTATION]: 'true' }));
  assert.equal(userlay.partialCsum, true);
  assert.equal(peerOf(node({})).partialCsum, undefined, 'a flannel node gets complete checksums');
  for (const v of ['false', 'TRUE', 'yes', '']) assert.equal(peerOf(node({ [PARTIAL_CSUM_ANNOTATION]: v })).partialCsum, undefined, v);
  // the peer key sees the change, so a node that starts or stops saying so is applied
  assert.notDeepEqual(peerKeys([userlay]), peerKeys([peerOf(node({}))]));
});

test('snapshot: peers keep partialCsum and a dual-stack peer its IPv6 underlay across save and load', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ul-psnap-'));
  try {
    const own: OwnLease = {
      nodeName: 'n1', subnets: ['198.19.1.0/24'], networks: ['198.19.0.0/16'], publicIP: '198.18.0.1', vtepMAC: '0a:58:c6:13:01:00',
      backend: 'vxlan', vni: 1, port: 8472, mtu: 1450,
    };
    const peers = [
      { name: 'n2', subnets: ['198.19.2.0/24', '2001:2:0:102::/64'], publicIP: '198.18.0.2', vtepMAC: '0a:58:c6:13:02:00',
        publicIPv6: '2001:2::2', vtepMACv6: '0a:58:c6:13:02:06', partialCsum: true },
      { name: 'f3', subnets: ['198.19.3.0/24'], publicIP: '198.18.0.3', vtepMAC: '0a:58:c6:13:03:00' },
    ];
    const store = new SnapshotStore(dir);
    await store.save(own, peers);
    assert.deepEqual((await store.load())?.peers, peers);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lab peers files: partialCsum for the peers that are userlay nodes only', () => {
  const [a, b] = [labNode('x-', 1), labNode('x-', 2)];
  const entries = peerEntries([a, b], 'vxlan', undefined, (n) => n === a);
  assert.equal(entries[0]!.partialCsum, true);
  assert.equal(entries[1]!.partialCsum, undefined);
  assert.equal(peerEntries([a], 'vxlan')[0]!.partialCsum, undefined, 'not unless asked');
});
