/**
 * A fuzz run against one engine (root; shared by test/netns/fuzz.test.ts and
 * bench/fuzz.ts): a 2-node userlay lab, node n1 under test. Its peers file
 * gets a fake peer "fp" (underlay 198.18.0.99, added to n1's lo; pod subnet
 * 198.19.99.0/24) that test/support/fuzz-tool.ts plays from inside n1's
 * namespace. While the tool runs, a ping flow n2 pod -> n1 pod goes on over
 * the real overlay; afterwards a hashed TCP transfer n2 -> n1 must arrive
 * intact and the agent must still be the same, healthy process.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ip, nsRun, nsSpawn, pidAlive, stopChild } from '../../src/cli/lab/exec.js';
import { peerEntries, VXLAN_PORT, VXLAN_VNI } from '../../src/cli/lab/overlay.js';
import { hashedTransfer } from '../../src/cli/lab/probes.js';
import type { EngineKind } from '../../src/dataplane/types.js';
import type { FuzzResult, FuzzToolConfig } from './fuzz-tool.js';
import { JsonLines } from './json-lines.js';
import { openTestLab, statusJson, type TestLab } from './lab.js';
import { startPingFlow, type FlowResult } from './ping-flow.js';

const STATUS_PORT = 9465;
const FAKE_PEER = { name: 'fp', subnet: '198.19.99.0/24', publicIP: '198.18.0.99', vtepMAC: '0a:58:c6:13:63:00' };
const fuzzTool = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-tool.js');

/** What to run. */
export interface FuzzRunOptions {
  readonly engine: EngineKind;
  readonly seed: number;
  readonly datagrams: number;
  readonly tunPackets: number;
  /** Datagrams per round (default 500) and TUN packets per round (default 60). */
  readonly window?: number;
  readonly tunWindow?: number;
  /** Progress lines of the tool go here. */
  readonly onProgress?: (line: Record<string, unknown>) => void;
}

/** The tool's result plus what was checked around it. */
export interface FuzzRun {
  readonly result: FuzzResult;
  /** The agent's pid before and after, and whether it is alive and /healthz answers ok. */
  readonly agent: { readonly pidBefore: number; readonly pidAfter: number; readonly alive: boolean; readonly healthz: string };
  /** ping n2 pod -> n1 pod during the run: transmitted and received. */
  readonly flow: { readonly transmitted: number; readonly received: number; readonly lost: readonly number[] };
  /** The hashed transfer afterwards. */
  readonly transfer: { readonly bytes: number; readonly intact: boolean };
  readonly seconds: number;
}

/** Run one fuzz pass; the lab is always torn down. Rejects with the tool's error line when it fails. */
export async function runFuzz(o: FuzzRunOptions): Promise<FuzzRun> {
  const t0 = Date.now();
  let lab: TestLab | undefined;
  try {
    lab = await openTestLab(2, { modes: ['userlay', 'userlay'], userlay: { backend: 'vxlan', engine: o.engine, statusPort: STATUS_PORT } });
    const n1 = lab.node(1);
    const n2 = lab.node(2);
    const agent = lab.overlay.agents.get(1)!;

    await ip(n1.ns, ['addr', 'add', `${FAKE_PEER.publicIP}/32`, 'dev', 'lo']);
    await writeFile(lab.overlay.peersFile(1), JSON.stringify([...peerEntries([n2], 'vxlan'), FAKE_PEER], null, 2) + '\n');
    agent.hup();
    await waitFdb(lab, FAKE_PEER.name);

    const flow = startPingFlow(n2.podNs, n1.podIP);
    let result: FuzzResult;
    let flowResult: FlowResult;
    try {
      const cfg: FuzzToolConfig = {
        seed: o.seed, datagrams: o.datagrams, tunPackets: o.tunPackets, window: o.window ?? 500, tunWindow: o.tunWindow ?? 60,
        statusPort: STATUS_PORT, agentPid: agent.pid, nodeIP: n1.underlayIP, port: VXLAN_PORT,
        fakePeerIP: FAKE_PEER.publicIP, fakePeer: FAKE_PEER.name, realPeer: n2.name,
        target: {
          vni: VXLAN_VNI, vtepMAC: n1.vtepMAC, peerSubnet24: '198.19.99.', podIP: n1.podIP,
          tunSrc24: '198.18.200.', tunPeerDst24: '198.19.99.', tunNoRouteDst24: '198.19.77.', tunMaxLen: agent.ready.mtu,
        },
        tunName: `fz${process.pid % 100000}`, roundTimeoutMs: 30_000,
      };
      const tool = new JsonLines(nsSpawn(n1.ns, process.execPath, [fuzzTool, JSON.stringify(cfg)]), 'fuzz-tool');
      if (o.onProgress) tool.onLine((l) => { if (l['progress']) o.onProgress!(l); });
      try {
        const last = await tool.line('the result', (l) => l['error'] !== undefined || l['datagrams'] !== undefined, 30 * 60_000);
        if (last['error'] !== undefined) throw new Error(`fuzz tool (seed ${o.seed}, ${o.engine}): ${JSON.stringify(last)}`);
        result = last as unknown as FuzzResult;
      } finally {
        await stopChild(tool.child, 5000);
      }
    } finally {
      flowResult = await flow.stop();
    }
    const healthz = await nsRun(n1.ns, 'curl', ['-s', '--max-time', '5', `http://127.0.0.1:${STATUS_PORT}/healthz`], { allowFail: true });
    const transfer = await hashedTransfer(n2, n1, 4 * 1024 * 1024);
    const pidAfter = lab.overlay.agents.get(1)!.pid;
    return {
      result,
      agent: { pidBefore: agent.pid, pidAfter, alive: pidAlive(agent.pid), healthz: healthz.stdout.trim() },
      flow: { transmitted: flowResult.transmitted, received: flowResult.received, lost: flowResult.lost },
      transfer: { bytes: transfer.received.bytes, intact: transfer.received.sha256 === transfer.sent.sha256 },
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await lab?.close();
  }
}

/** Wait until n1's FDB lists `peer` (the peers file was re-read). */
async function waitFdb(lab: TestLab, peer: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const doc = (await statusJson(lab.node(1), STATUS_PORT, '/debug/fdb')) as { peers: Array<{ name: string }> };
    if (doc.peers.some((p) => p.name === peer)) return;
    if (Date.now() > deadline) throw new Error(`n1's FDB never listed ${peer}: ${JSON.stringify(doc)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
