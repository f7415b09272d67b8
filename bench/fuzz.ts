/**
 * Long fuzz run (root): what test/netns/fuzz.test.ts does, with more traffic.
 *
 *   node dist/bench/fuzz.js [--datagrams 1000000] [--tun 100000] [--engine native|js|both]
 *                           [--seed N] [--json bench/out/fuzz.json]
 *
 * For each engine: a 2-node lab, malformed datagrams and odd TUN packets into
 * node n1 (see test/support/fuzz-gen.ts), every one accounted for by the
 * agent's counters, the agent's RSS sampled after a warm-up. Prints a table
 * and writes the numbers as JSON. The seed is printed; the same seed repeats
 * the same traffic. Exit code 1 when a run failed (the tool's error is
 * printed with the seed).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EngineKind } from '../src/dataplane/types.js';
import { runFuzz, type FuzzRun } from '../test/support/fuzz-lab.js';

interface Args { datagrams: number; tun: number; engines: EngineKind[]; seed: number; json: string }

function parseArgs(argv: string[]): Args {
  const out: Args = { datagrams: 1_000_000, tun: 100_000, engines: ['native', 'js'], seed: (Math.random() * 2 ** 32) >>> 0, json: 'bench/out/fuzz.json' };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) usage(`${argv[i]} needs a non-negative integer`);
      i++;
      return n;
    };
    switch (argv[i]) {
      case '--datagrams': out.datagrams = num(); break;
      case '--tun': out.tun = num(); break;
      case '--seed': out.seed = num() >>> 0; break;
      case '--engine':
        if (v !== 'native' && v !== 'js' && v !== 'both') usage('--engine is native, js or both');
        out.engines = v === 'both' ? ['native', 'js'] : [v as EngineKind];
        i++;
        break;
      case '--json': if (v === undefined) usage('--json needs a path'); out.json = v!; i++; break;
      default: usage(`unknown argument ${argv[i]}`);
    }
  }
  return out;
}

function usage(why: string): never {
  process.stderr.write(`bench/fuzz: ${why}\nusage: node dist/bench/fuzz.js [--datagrams 1000000] [--tun 100000] [--engine native|js|both] [--seed N] [--json FILE]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) usage('needs root (network namespaces, TUN devices)');
  const a = parseArgs(process.argv.slice(2));
  console.log(`fuzz: seed ${a.seed}, ${a.datagrams} datagrams and ${a.tun} TUN packets per engine`);
  const runs: Array<{ engine: EngineKind; run?: FuzzRun; error?: string }> = [];
  for (const engine of a.engines) {
    try {
      const run = await runFuzz({
        engine, seed: a.seed, datagrams: a.datagrams, tunPackets: a.tun,
        onProgress: (l) => process.stdout.write(`  ${engine}: ${JSON.stringify(l['progress'])}\n`),
      });
      runs.push({ engine, run });
    } catch (err) {
      runs.push({ engine, error: (err as Error).message });
      console.error(`fuzz ${engine}: ${(err as Error).message}`);
    }
  }
  console.log('\n| engine | datagrams | delivered | dropped | kernel drops | TUN packets | TUN delivered | TUN dropped | datagrams/s | RSS warm → max MB | agent |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { engine, run, error } of runs) {
    if (!run) {
      console.log(`| ${engine} | failed: ${error} |`);
      continue;
    }
    const r = run.result;
    const dropped = Object.values(r.datagrams.drops).reduce((x, y) => x + y, 0);
    const tunDropped = Object.values(r.tun.drops).reduce((x, y) => x + y, 0);
    console.log(`| ${engine} | ${r.datagrams.sent} | ${r.datagrams.delivered} | ${dropped} | ${r.datagrams.kernelDrops} | ${r.tun.sent} | ${r.tun.delivered} | ${tunDropped} | `
      + `${Math.round(r.datagrams.sent / r.seconds)} | ${r.rss.warmMB.toFixed(1)} → ${r.rss.maxMB.toFixed(1)} | ${run.agent.alive && run.agent.pidAfter === run.agent.pidBefore ? 'alive' : 'DIED'} |`);
  }
  await mkdir(path.dirname(a.json), { recursive: true });
  await writeFile(a.json, JSON.stringify({ seed: a.seed, datagrams: a.datagrams, tun: a.tun, runs }, null, 2) + '\n');
  console.log(`\nwrote ${a.json}`);
  if (runs.some((r) => !r.run)) process.exit(1);
}

void main();
