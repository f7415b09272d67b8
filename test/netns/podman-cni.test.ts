/**
 * A real runtime on userlay: podman (CNI network backend) starts containers on a 2-node lab
 * whose userlay agents run from the built image, one per node namespace
 * (`podman run --network ns:/run/netns/<node> --privileged`). Each node has its own conflist
 * (userlay, then portmap) pointing the shim at that node's agent. Everything podman makes
 * lives in a private storage and config under a per-run directory and is removed at the end.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentArgs, type AgentCni } from '../../src/cli/lab/agent-process.js';
import { execPlugin, installShim, labConflist, SYSTEM_CNI_DIR } from '../../src/cli/lab/cni-runtime.js';
import { run } from '../../src/cli/lab/exec.js';
import { peerEntries } from '../../src/cli/lab/overlay.js';
import { createTopology, type LabNode, type Topology } from '../../src/cli/lab/topology.js';
import { cidrContains } from '../../src/dataplane/net.js';
import { decodeRequest } from '../../src/cni/protocol.js';
import { eventually } from '../support/cni-node.js';
import { NEEDS_ROOT, TEST_PREFIX_ROOT } from '../support/lab.js';
import { havePodman, privatePodman, type Podman } from '../support/podman.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const POD_TOOL = '/opt/userlay/dist/src/cli/lab/pod-tool.js';
const podmanMissing = !NEEDS_ROOT && !process.env['CI'] && !(await havePodman())
  ? 'podman is not installed (scripts/setup.sh installs it)' : false;

describe('podman runs containers on userlay (agents from the image)', { skip: NEEDS_ROOT || podmanMissing, timeout: 20 * 60_000 }, () => {
  const prefix = `${TEST_PREFIX_ROOT}${process.pid}-pm.`;
  const dir = path.join('/var/tmp', `${TEST_PREFIX_ROOT}${process.pid}-podman`);
  const image = `localhost/userlay-test:${process.pid}`;
  let topo: Topology;
  let pm: Podman;
  let cniPath: string[];
  const cniOf = (n: LabNode): AgentCni => ({ socket: path.join(topo.workDir, `cni-${n.name}`, 'cni.sock'), stateDir: path.join(topo.workDir, `cni-${n.name}`, 'state') });
  const net = (n: LabNode): string => `${prefix}${n.name}`;
  const agentName = (n: LabNode): string => `${prefix}agent-${n.name}`;
  const records = async (n: LabNode): Promise<string[]> => readdir(path.join(cniOf(n).stateDir, 'attachments')).catch(() => []);
  const allocated = async (n: LabNode): Promise<string[]> =>
    (await readdir(path.join(cniOf(n).stateDir, 'networks', net(n))).catch(() => [] as string[])).filter((f) => /^[0-9.]+$/.test(f));

  const startAgent = async (n: LabNode): Promise<void> => {
    const cni = cniOf(n);
    const args = agentArgs(n, { backend: 'vxlan', engine: 'native' }, path.join(topo.workDir, `peers-${n.name}.json`), cni);
    await pm.run(['rm', '-f', agentName(n)], { allowFail: true });
    await pm.run(['run', '-d', '--name', agentName(n), '--network', `ns:/run/netns/${n.ns}`, '--privileged',
      '-v', `${topo.workDir}:${topo.workDir}`, '-v', `${cniPath[0]}:${cniPath[0]}:ro`, '-v', `${SYSTEM_CNI_DIR}:${SYSTEM_CNI_DIR}:ro`,
      '-v', '/run/netns:/run/netns:rslave', image, 'userlay', ...args]);
    const ready = await eventually(async () => /"msg":"agent ready"/.test((await pm.run(['logs', agentName(n)], { allowFail: true })).stderr), 60_000);
    assert.ok(ready, `agent on ${n.name} ready: ${(await pm.run(['logs', agentName(n)], { allowFail: true })).stderr.slice(-2000)}`);
  };
  const ipOf = async (ctr: string, n: LabNode): Promise<string> =>
    (await pm.run(['inspect', '--format', `{{(index .NetworkSettings.Networks "${net(n)}").IPAddress}}`, ctr])).stdout.trim();
  const pidOf = async (ctr: string): Promise<string> => (await pm.run(['inspect', '--format', '{{.State.Pid}}', ctr])).stdout.trim();

  before(async () => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    cniPath = await installShim(path.join(dir, 'cni-bin'));
    pm = await privatePodman(dir, cniPath);
    const built = await run('bash', [path.join(root, 'scripts/image.sh'), '--local-base', '--root', path.join(dir, 'root'),
      '--runroot', path.join(dir, 'runroot'), '--tag', image], { timeoutMs: 15 * 60_000 });
    assert.equal(built.stdout.trim(), image);
    topo = await createTopology({ prefix, nodes: 2, pods: 'cni' });
    for (const n of topo.nodes) {
      await writeFile(path.join(topo.workDir, `peers-${n.name}.json`), JSON.stringify(peerEntries(topo.nodes.filter((o) => o !== n), 'vxlan')));
      const cni = cniOf(n);
      await writeFile(path.join(pm.netDir, `${net(n)}.conflist`), JSON.stringify({ ...labConflist(cni.socket, cni.stateDir), name: net(n) }, null, 2));
      await startAgent(n);
    }
  });

  after(async () => {
    if (pm) {
      await pm.run(['rm', '-af', '-t', '2'], { allowFail: true });
      await pm.run(['system', 'reset', '--force'], { allowFail: true });
    }
    await topo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('containers get addresses in their node\'s subnet and reach each other across nodes (ping, hashed TCP)', async () => {
    const [n1, n2] = topo.nodes as [LabNode, LabNode];
    await pm.run(['run', '-d', '--name', `${prefix}c1`, '--network', net(n1), image, 'node', POD_TOOL, 'tcp-recv', '5001']);
    await pm.run(['run', '-d', '--name', `${prefix}c2`, '--network', net(n2), image, 'sleep', 'infinity']);
    const ip1 = await ipOf(`${prefix}c1`, n1);
    const ip2 = await ipOf(`${prefix}c2`, n2);
    assert.ok(cidrContains(n1.subnet, ip1), `${ip1} in ${n1.subnet}`);
    assert.ok(cidrContains(n2.subnet, ip2), `${ip2} in ${n2.subnet}`);
    assert.equal((await records(n1)).length, 1);
    const ping = await run('nsenter', ['-t', await pidOf(`${prefix}c2`), '-n', 'ping', '-c', '3', '-W', '2', ip1], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout);
    assert.ok(await eventually(async () => /listening/.test((await pm.run(['logs', `${prefix}c1`])).stdout)), 'receiver listening');
    const sent = JSON.parse((await pm.run(['exec', `${prefix}c2`, 'node', POD_TOOL, 'tcp-send', ip1, '5001', String(4 << 20), '77'])).stdout) as { bytes: number; sha256: string };
    let got: { bytes?: number; sha256?: string } = {};
    assert.ok(await eventually(async () => {
      const line = (await pm.run(['logs', `${prefix}c1`])).stdout.split('\n').find((l) => l.includes('sha256'));
      if (line) got = JSON.parse(line);
      return line !== undefined;
    }), 'receiver reported');
    assert.equal(sent.bytes, 4 << 20);
    assert.deepEqual(got, sent, 'the bytes arrived intact');
    // stop + rm releases the address (DEL)
    await pm.run(['stop', '-t', '2', `${prefix}c1`]);
    await pm.run(['rm', `${prefix}c1`]);
    assert.deepEqual(await records(n1), []);
    assert.deepEqual(await allocated(n1), []);
  });

  test('agent down: ADD and STATUS fail with 50, DEL is queued and done after the restart; older attachments still released', async () => {
    const n2 = topo.nodes[1]!;
    await pm.run(['run', '-d', '--name', `${prefix}c3`, '--network', net(n2), image, 'sleep', 'infinity']);
    assert.equal((await records(n2)).length, 2, 'c2 and c3');
    await pm.run(['stop', '-t', '5', agentName(n2)]);
    const add = await pm.run(['run', '-d', '--name', `${prefix}c4`, '--network', net(n2), image, 'sleep', 'infinity'], { allowFail: true });
    assert.notEqual(add.code, 0);
    assert.match(add.stderr, /userlay agent is not running/);
    await pm.run(['rm', '-f', `${prefix}c4`], { allowFail: true });
    const cni = cniOf(n2);
    const status = await execPlugin(n2.ns, cniPath, 'userlay', { CNI_COMMAND: 'STATUS' }, { ...labConflist(cni.socket, cni.stateDir).plugins[0], name: net(n2), cniVersion: '1.1.0' });
    assert.equal((status.json as { code: number }).code, 50, status.stdout);
    const c3 = (await pm.run(['inspect', '--format', '{{.Id}}', `${prefix}c3`])).stdout.trim();
    await pm.run(['rm', '-f', '-t', '2', `${prefix}c3`]);
    // podman also DELs the failed c4; what counts is that c3's DEL is there
    const queueDir = path.join(cni.stateDir, 'queue');
    const queued = await Promise.all((await readdir(queueDir)).filter((f) => f.endsWith('.req'))
      .map(async (f) => decodeRequest(await readFile(path.join(queueDir, f)))));
    assert.ok(queued.some((r) => r.env['CNI_COMMAND'] === 'DEL' && r.env['CNI_CONTAINERID'] === c3), 'c3\'s DEL is queued');
    assert.equal((await allocated(n2)).length, 2, 'nothing released while the agent is down');
    await pm.run(['start', agentName(n2)]);
    assert.ok(await eventually(async () => (await records(n2)).length === 1 && (await allocated(n2)).length === 1
      && (await readdir(queueDir)).filter((f) => f.endsWith('.req')).length === 0, 60_000), 'queued DELs done');
    // c2 was attached before the restart
    await pm.run(['rm', '-f', '-t', '2', `${prefix}c2`]);
    assert.deepEqual(await records(n2), []);
    assert.deepEqual(await allocated(n2), []);
    assert.equal(existsSync(cni.socket), true, 'the restarted agent serves its socket');
  });
});
