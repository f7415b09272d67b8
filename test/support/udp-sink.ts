/**
 * A UDP sink the netns tests run inside a pod namespace:
 *
 *   node dist/test/support/udp-sink.js PORT
 *
 * Prints {"listening":PORT} once bound (0.0.0.0), then one JSON line per
 * datagram: {"from":"ADDR:PORT","bytes":N,"text":"<payload as latin1>"}.
 * Runs until killed.
 */
import dgram from 'node:dgram';

const port = Number(process.argv[2]);
const sock = dgram.createSocket('udp4');
sock.on('message', (msg, rinfo) => {
  process.stdout.write(JSON.stringify({ from: `${rinfo.address}:${rinfo.port}`, bytes: msg.length, text: msg.toString('latin1') }) + '\n');
});
sock.bind(port, '0.0.0.0', () => process.stdout.write(JSON.stringify({ listening: port }) + '\n'));
