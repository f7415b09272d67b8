/**
 * What the in-process kube-mode tests start from: an API server with a kubeconfig for it and a
 * scratch dir (testCluster), and the KubeAgentConfig of node n1 (vxlan on 198.19.0.0/16, the js
 * engine, no status server, no resync) with its state dir, subnet.env and CNI state under that
 * dir; `over` changes any field. And a data plane that forwards nothing and records its MTU
 * (fakeDataplane).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeAgentConfig } from '../../src/agent/kube-config.js';
import type { Dataplane, DataplaneOptions, Peer } from '../../src/dataplane/types.js';
import { FakeApiServer } from './fake-apiserver.js';

/** A fake API server (bookmarks every 100 ms), a kubeconfig for it, a scratch dir; close() removes all. */
export async function testCluster(tmpPrefix: string): Promise<{ server: FakeApiServer; kc: KubeConfig; dir: string; close(): Promise<void> }> {
  const server = await FakeApiServer.create({ bookmarkIntervalMs: 100 });
  const dir = await mkdtemp(join(tmpdir(), tmpPrefix));
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions());
  return { server, kc, dir, close: async () => { await server.stop(); await rm(dir, { recursive: true, force: true }); } };
}

/** n1's config under `dir`, with `over` applied. */
export function testKubeConfig(dir: string, over: Partial<KubeAgentConfig> = {}): KubeAgentConfig {
  return {
    kubeconfig: undefined, nodeName: 'n1',
    netConf: { networks: { 4: '198.19.0.0/16' }, backend: 'vxlan', vni: 1, port: 8472, mtu: undefined },
    iface: ['eth0'], ifaceRegex: [], ifaceCanReach: undefined, publicIP: undefined, prefix: 'userlay.io',
    stateDir: join(dir, 'state'), subnetFile: join(dir, 'subnet.env'), ipMasq: false, statusAddr: undefined,
    logLevel: 'error', engine: 'js', offloads: 'auto', tunName: 'ultest0', resyncMs: 0, cni: { socket: undefined, stateDir: join(dir, 'cni') },
    ...over,
  };
}

/** What a fake data plane was opened with and did to its MTU. */
export interface FakeTun { mtu: number; sets: number[]; options: DataplaneOptions | undefined }

export function newTun(): FakeTun {
  return { mtu: 0, sets: [], options: undefined };
}

/** KubeAgentDeps.openDataplane for tests: keeps the peers it is given, records its MTU in `tun`. */
export function fakeDataplane(tun: FakeTun = newTun()): (opts: DataplaneOptions) => Promise<Dataplane> {
  return async (opts) => {
    let peers: readonly Peer[] = [];
    tun.mtu = opts.mtu;
    tun.options = opts;
    return {
      options: opts, tunName: opts.tunName, setPeers: (p: readonly Peer[]) => { peers = p; }, peers: () => peers,
      mtu: () => tun.mtu, setMtu: (m: number) => { tun.mtu = m; tun.sets.push(m); },
      stats: () => ({ total: { txPackets: 0n, txBytes: 0n, rxPackets: 0n, rxBytes: 0n, drops: {} }, peers: {}, fdbPeers: 0, fdbRoutes: 0 }),
      close: async () => {},
    } as unknown as Dataplane;
  };
}
