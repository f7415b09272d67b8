/**
 * A steady ping flow between two pods that must not lose a packet while
 * something else happens (an attack, a fuzz run). Stopping it with SIGINT
 * races the last echo: ping prints its statistics at once, so a request
 * whose reply is still on the wire counts as lost. The flow therefore reads
 * ping's per-reply lines and reports the sequence numbers that got no reply,
 * leaving out only the last one sent (the one SIGINT may have cut off).
 */
import type { ChildProcess } from 'node:child_process';
import { nsSpawn, waitExit } from '../../src/cli/lab/exec.js';

export interface FlowResult {
  readonly transmitted: number;
  readonly received: number;
  /** Requests before the last one that got no reply, in order. */
  readonly lost: readonly number[];
  /** ping's whole output, for assertion messages. */
  readonly output: string;
}

export interface PingFlow {
  /** SIGINT the ping, wait for it to exit, and parse what it printed. */
  stop(): Promise<FlowResult>;
}

/** Start `ping -i intervalS` from namespace `ns` to `dst`. */
export function startPingFlow(ns: string, dst: string, intervalS = 0.05): PingFlow {
  const child: ChildProcess = nsSpawn(ns, 'ping', ['-n', '-i', String(intervalS), dst]);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  return {
    async stop(): Promise<FlowResult> {
      child.kill('SIGINT');
      await waitExit(child);
      return parsePing(output);
    },
  };
}

/** Parse iputils ping output: the summary line and every icmp_seq that was answered. */
export function parsePing(output: string): FlowResult {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output);
  if (!summary) throw new Error(`ping printed no statistics: ${output}`);
  const transmitted = Number(summary[1]);
  const answered = new Set<number>();
  for (const m of output.matchAll(/bytes from .*icmp_seq=(\d+)/g)) answered.add(Number(m[1]));
  const lost: number[] = [];
  for (let seq = 1; seq < transmitted; seq++) if (!answered.has(seq)) lost.push(seq);
  return { transmitted, received: Number(summary[2]), lost, output };
}
