/**
 * What the in-process kube-mode tests start from: an API server with a kubeconfig for it and a
 * scratch dir (testCluster), and the KubeAgentConfig of node n1 (vxlan on 198.19.0.0/16, the js
 * engine, no status server, no resync) with its state dir, subnet.env and CNI state under that
 * dir; `over` changes any field.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeAgentConfig } from '../../src/agent/kube-config.js';
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
