/**
 * The userlay CNI plugin driven as a container runtime drives it: the shim run from the node
 * namespace with CNI_* set and the config on stdin, against a real static agent, the real
 * bridge and host-local plugins (/usr/lib/cni) and fresh pod namespaces.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cniEnv } from '../../src/cli/lab/cni-runtime.js';
import { ip, nsRun } from '../../src/cli/lab/exec.js';
import { cidrContains } from '../../src/dataplane/net.js';
import { eventually, openCniNode, type CniNode } from '../support/cni-node.js';
import { NEEDS_ROOT } from '../support/lab.js';

const VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'];
let id = 0;
const nextId = (): string => `t${process.pid}-${++id}`;

describe('userlay CNI plugin (netns)', { skip: NEEDS_ROOT }, () => {
  let n: CniNode;
  before(async () => { n = await openCniNode(); });
  after(async () => { await n?.close(); });

  const clean = async (): Promise<void> => {
    assert.deepEqual(await n.allocated(), [], 'no address left allocated');
    assert.deepEqual(await n.veths(), [], 'no veth left on the node');
    assert.deepEqual(await n.records(), [], 'no attachment record left');
  };

  test('ADD answers in each cniVersion with an address in the node subnet, the routes and the MTU', async () => {
    for (const v of VERSIONS) {
      const pod = await n.newPod();
      const a = { containerID: nextId(), netns: pod.netns, ifname: 'eth0' };
      const r = await n.run('ADD', a, n.config(v));
      assert.equal(r.exitCode, 0, `${v}: ${r.stdout} ${r.stderr}`);
      const res = r.json as { cniVersion: string; ips: Array<{ address: string; gateway: string; version?: string; interface?: number }>; interfaces: Array<{ name: string; sandbox?: string }>; routes: Array<{ dst: string }> };
      assert.equal(res.cniVersion, v);
      assert.equal(res.ips.length, 1);
      const [addr] = res.ips[0]!.address.split('/');
      assert.ok(cidrContains(n.node.subnet, addr!), `${addr} in ${n.node.subnet}`);
      assert.equal(res.ips[0]!.gateway, n.node.gatewayIP);
      if (v === '0.3.1' || v === '0.4.0') assert.equal(res.ips[0]!.version, '4');
      else assert.equal(res.ips[0]!.version, undefined, `${v} results carry no ips[].version`);
      const sandbox = res.interfaces.find((i) => i.sandbox === pod.netns);
      assert.equal(sandbox?.name, 'eth0');
      assert.deepEqual(res.routes.map((x) => x.dst), ['198.19.0.0/16']);
      // inside the pod
      const route = await ip(pod.ns, ['-4', 'route', 'show', '198.19.0.0/16']);
      assert.match(route.stdout, new RegExp(`via ${n.node.gatewayIP.replace(/\./g, '\\.')} dev eth0`));
      const link = await ip(pod.ns, ['-o', 'link', 'show', 'eth0']);
      assert.match(link.stdout, new RegExp(`mtu ${n.agent!.ready.podMTU} `));
      assert.equal((await nsRun(pod.ns, 'ping', ['-c', '1', '-W', '2', n.node.gatewayIP], { allowFail: true })).code, 0, 'pod reaches its gateway');
      const del = await n.run('DEL', a, n.config(v));
      assert.equal(del.exitCode, 0, del.stdout);
      assert.equal(del.stdout, '');
    }
    await clean();
  });

  test('DEL twice, DEL of an unknown container and DEL with the netns gone all succeed and release', async () => {
    const pod = await n.newPod();
    const a = { containerID: nextId(), netns: pod.netns, ifname: 'eth0' };
    assert.equal((await n.run('ADD', a)).exitCode, 0);
    assert.equal((await n.run('DEL', a)).exitCode, 0);
    assert.equal((await n.run('DEL', a)).exitCode, 0, 'second DEL');
    assert.equal((await n.run('DEL', { ...a, containerID: 'never-seen' })).exitCode, 0, 'unknown container');
    const gone = await n.newPod();
    const b = { containerID: nextId(), netns: gone.netns, ifname: 'eth0' };
    assert.equal((await n.run('ADD', b)).exitCode, 0);
    assert.equal((await n.allocated()).length, 1);
    await ip(undefined, ['netns', 'del', gone.ns]);
    const del = await n.run('DEL', b);
    assert.equal(del.exitCode, 0, del.stdout);
    assert.equal((await n.run('DEL', { ...b, netns: '' })).exitCode, 0, 'DEL without CNI_NETNS');
    assert.ok(await eventually(async () => (await n.veths()).length === 0), 'the veth went with the netns');
    await clean();
  });

  test('CHECK passes on a healthy attachment and fails on a broken one', async () => {
    const pod = await n.newPod();
    const a = { containerID: nextId(), netns: pod.netns, ifname: 'eth0' };
    const add = await n.run('ADD', a);
    assert.equal(add.exitCode, 0);
    const conf = n.config('1.0.0', { prevResult: add.json });
    const ok = await n.run('CHECK', a, conf);
    assert.equal(ok.exitCode, 0, ok.stdout);
    await ip(pod.ns, ['addr', 'flush', 'dev', 'eth0']);
    const broken = await n.run('CHECK', a, conf);
    assert.notEqual(broken.exitCode, 0);
    assert.equal(typeof (broken.json as { code?: unknown }).code, 'number', broken.stdout);
    const unknown = await n.run('CHECK', { ...a, containerID: 'never-seen' }, conf);
    assert.equal((unknown.json as { code: number }).code, 3);
    assert.equal((await n.run('DEL', a)).exitCode, 0);
    await clean();
  });

  test('errors: malformed config 6, unknown cniVersion 1, missing CNI_NETNS 4 — error objects, no stack traces', async () => {
    const pod = await n.newPod();
    const a = { containerID: nextId(), netns: pod.netns, ifname: 'eth0' };
    const cases: Array<[string, number, Record<string, unknown> | undefined, Record<string, string>]> = [
      ['unknown cniVersion', 1, n.config('0.9.9'), {}],
      ['missing CNI_NETNS', 4, undefined, { CNI_NETNS: '' }],
      ['bad ifname', 4, undefined, { CNI_IFNAME: 'eth/0' }],
      ['name missing', 7, { ...n.config(), name: undefined }, {}],
    ];
    for (const [what, code, conf, env] of cases) {
      const r = await n.run('ADD', a, conf, env);
      assert.equal(r.exitCode, 1, what);
      assert.equal((r.json as { code: number }).code, code, `${what}: ${r.stdout}`);
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, `${what}: no stack trace`);
    }
    // a config that breaks after "socket" reaches the agent, which reports the decode error
    const raw = `{"cniVersion":"1.0.0","socket":${JSON.stringify(n.cni.socket)},"name":`;
    const r = await runRaw(n, cniEnv('ADD', a), raw);
    assert.equal(r.code, 6, r.stdout);
    await clean();
  });

  test('a failing ADD (the pod already has the interface) is rolled back: no address, veth or record', async () => {
    const pod = await n.newPod();
    await ip(pod.ns, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    const r = await n.run('ADD', { containerID: nextId(), netns: pod.netns, ifname: 'eth0' });
    assert.equal(r.exitCode, 1);
    assert.equal(typeof (r.json as { code?: unknown }).code, 'number', r.stdout);
    assert.match((r.json as { msg: string }).msg, /bridge ADD/);
    await clean();
  });

  test('GC removes exactly the attachments not in cni.dev/valid-attachments', async () => {
    const atts = [];
    for (let k = 0; k < 3; k++) {
      const pod = await n.newPod();
      const a = { containerID: nextId(), netns: pod.netns, ifname: 'eth0' };
      assert.equal((await n.run('ADD', a, n.config('1.1.0'))).exitCode, 0);
      atts.push(a);
    }
    const keep = atts[1]!;
    const gc = await n.run('GC', undefined, n.config('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: keep.containerID, ifname: 'eth0' }] }));
    assert.equal(gc.exitCode, 0, gc.stdout);
    assert.deepEqual(await n.records(), [`${keep.containerID}_eth0.json`]);
    assert.equal((await n.allocated()).length, 1);
    assert.deepEqual((await n.veths()).length, 1);
    assert.equal((await n.run('DEL', keep, n.config('1.1.0'))).exitCode, 0);
    await clean();
  });

  test('agent down: STATUS and ADD fail with 50, DEL is queued and done when the agent is back; DEL after a restart', async () => {
    const pods = [await n.newPod(), await n.newPod()];
    const a = { containerID: nextId(), netns: pods[0]!.netns, ifname: 'eth0' };
    const b = { containerID: nextId(), netns: pods[1]!.netns, ifname: 'eth0' };
    assert.equal((await n.run('ADD', a)).exitCode, 0);
    assert.equal((await n.run('ADD', b)).exitCode, 0);
    assert.equal((await n.run('STATUS', undefined)).exitCode, 0, 'STATUS with the agent up');
    await n.stopAgent();
    for (const cmd of ['STATUS', 'ADD']) {
      const r = await n.run(cmd, cmd === 'ADD' ? { ...a, containerID: nextId() } : undefined);
      assert.equal(r.exitCode, 1);
      assert.equal((r.json as { code: number }).code, 50, r.stdout);
      assert.match((r.json as { msg: string }).msg, /not running/);
    }
    const del = await n.run('DEL', a);
    assert.equal(del.exitCode, 0, del.stdout);
    assert.equal((await n.queued()).length, 1, 'the DEL is queued');
    assert.equal((await n.allocated()).length, 2, 'nothing released while the agent is down');
    await n.startAgent();
    assert.ok(await eventually(async () => (await n.queued()).length === 0 && (await n.records()).length === 1), 'the queued DEL was done');
    assert.equal((await n.allocated()).length, 1);
    assert.equal((await n.run('DEL', b)).exitCode, 0, 'an attachment made before the restart is released');
    await clean();
  });

  test('1,000 ADD/DEL cycles and 20 concurrent ADDs leave no addresses, veths or records', async () => {
    const workers = 4;
    const cycles = 1000;
    const podsOf = await Promise.all(Array.from({ length: workers }, () => n.newPod()));
    const failures: string[] = [];
    await Promise.all(podsOf.map(async (pod, w) => {
      for (let k = w; k < cycles; k += workers) {
        const a = { containerID: `${nextId()}-w${w}`, netns: pod.netns, ifname: 'eth0' };
        const add = await n.run('ADD', a);
        if (add.exitCode !== 0) failures.push(`ADD ${k}: ${add.stdout}`);
        const del = await n.run('DEL', a);
        if (del.exitCode !== 0) failures.push(`DEL ${k}: ${del.stdout}`);
        if (failures.length > 0) return;
      }
    }));
    assert.deepEqual(failures, []);
    await clean();
    const many = await Promise.all(Array.from({ length: 20 }, () => n.newPod()));
    const atts = many.map((p) => ({ containerID: nextId(), netns: p.netns, ifname: 'eth0' }));
    const adds = await Promise.all(atts.map((a) => n.run('ADD', a)));
    assert.deepEqual(adds.map((r) => r.exitCode), Array(20).fill(0), adds.map((r) => r.stdout).join(''));
    const addrs = adds.map((r) => (r.json as { ips: Array<{ address: string }> }).ips[0]!.address);
    assert.equal(new Set(addrs).size, 20, 'twenty different addresses');
    assert.equal((await n.allocated()).length, 20);
    const dels = await Promise.all(atts.map((a) => n.run('DEL', a)));
    assert.deepEqual(dels.map((r) => r.exitCode), Array(20).fill(0));
    await clean();
  });
});

/** Run the shim with a raw (possibly broken) config string. */
async function runRaw(n: CniNode, env: Record<string, string>, config: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', n.node.ns, `${n.cniPath[0]}/userlay`], { env: { ...env, CNI_PATH: n.cniPath.join(':') } });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.on('close', () => {
      try { resolve({ code: (JSON.parse(stdout) as { code: number }).code, stdout }); } catch { resolve({ code: -1, stdout }); }
    });
    child.stdin.end(config);
  });
}
