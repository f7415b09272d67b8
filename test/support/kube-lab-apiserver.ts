/**
 * The in-process fake API server as a small process, for netns tests: agents in node
 * namespaces cannot reach 127.0.0.1 of the test process, so the test runs this script inside
 * the lab's underlay namespace (`ip netns exec <ns> node kube-lab-apiserver.js IP PORT`).
 * It serves FakeApiServer on 127.0.0.1 and forwards IP:PORT to it (a plain TCP relay).
 *
 * Control protocol: JSON lines. stdin: {"id":n,"op":"upsert","node":{...}} | {"id":n,"op":"delete","name":"n3"}
 * | {"id":n,"op":"stop"} | {"id":n,"op":"start"} | {"id":n,"op":"get","name":"n1"}.
 * stdout: {"ready":true} once listening, then {"id":n,"ok":true,"result":...} or {"id":n,"ok":false,"error":"..."}.
 * "stop" is a crashed API server: the relay stops listening and every connection is cut.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { FakeApiServer, type KubeObject } from './fake-apiserver.js';

const [listenIP, portText] = process.argv.slice(2);
const listenPort = Number(portText);

const api = await FakeApiServer.create({ bookmarkIntervalMs: 1000 });
const conns = new Set<net.Socket>();
let relay: net.Server | undefined;

function relayConnection(client: net.Socket): void {
  const upstream = net.connect(api.port, '127.0.0.1');
  conns.add(client);
  conns.add(upstream);
  const cut = () => {
    client.destroy();
    upstream.destroy();
    conns.delete(client);
    conns.delete(upstream);
  };
  client.on('error', cut).on('close', cut);
  upstream.on('error', cut).on('close', cut);
  client.pipe(upstream);
  upstream.pipe(client);
}

async function startRelay(): Promise<void> {
  if (relay) return;
  const server = net.createServer(relayConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, listenIP, () => resolve());
  });
  relay = server;
}

async function stopRelay(): Promise<void> {
  const server = relay;
  relay = undefined;
  if (!server) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const c of conns) c.destroy();
  await closed;
}

function reply(msg: unknown): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

await startRelay();
reply({ ready: true, port: listenPort });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let id: unknown;
  try {
    const cmd = JSON.parse(line) as { id: number; op: string; node?: KubeObject; name?: string };
    id = cmd.id;
    let result: unknown = null;
    switch (cmd.op) {
      case 'upsert': result = api.upsertNode(cmd.node!); break;
      case 'delete': result = api.deleteNode(cmd.name!); break;
      case 'get': result = api.getNode(cmd.name!) ?? null; break;
      case 'stop': await stopRelay(); await api.stop(); break;
      case 'start': await api.start(); await startRelay(); break;
      default: throw new Error(`unknown op ${cmd.op}`);
    }
    reply({ id, ok: true, result });
  } catch (err) {
    reply({ id, ok: false, error: (err as Error).message });
  }
}
await stopRelay();
await api.stop();
