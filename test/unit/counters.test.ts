/** The TS mirror of enum ul_drop / enum ul_counter, and reading a counters block. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COUNTER, DROP, DROP_COUNT, SLOT_WIDTH, allocCounters, clearSlot, counterIndex, dropName, readStats } from '../../src/dataplane/counters.js';
import { addon } from '../support/addon.js';


test('drop reasons and slot layout equal the addon\'s (userlay.h)', { skip: addon ? false : 'native addon not built (npm run build:native)' }, () => {
  assert.deepEqual({ ...addon!.constants.drops }, { ...DROP });
  assert.equal(addon!.constants.DROP_COUNT, DROP_COUNT);
  assert.equal(addon!.constants.SLOT_WIDTH, SLOT_WIDTH);
});

test('the layout is the one userlay.h documents', () => {
  assert.equal(SLOT_WIDTH, 20);
  assert.deepEqual(COUNTER, { txPackets: 0, txBytes: 1, rxPackets: 2, rxBytes: 3, drops: 4 });
  assert.ok(Math.max(...Object.values(DROP)) < DROP_COUNT);
  assert.equal(dropName(9), 'no_route');
  assert.equal(dropName(15), 'reason_15');
});

test('readStats: totals from slot 0, peers by slot, zero drops omitted', () => {
  const c = allocCounters(4);
  assert.equal(c.length, 5 * SLOT_WIDTH);
  c[counterIndex(0, COUNTER.txPackets)] = 10n;
  c[counterIndex(0, COUNTER.txBytes)] = 1000n;
  c[counterIndex(0, COUNTER.drops + DROP.no_route)] = 3n;
  c[counterIndex(2, COUNTER.rxPackets)] = 7n;
  c[counterIndex(2, COUNTER.rxBytes)] = 700n;
  c[counterIndex(2, COUNTER.drops + DROP.spoofed)] = 2n;
  c[counterIndex(4, COUNTER.txPackets)] = 1n;
  const s = readStats(c, new Map([[2, 'n2'], [4, 'n4']]), 2, 3);
  assert.deepEqual(s.total, { txPackets: 10n, txBytes: 1000n, rxPackets: 0n, rxBytes: 0n, drops: { no_route: 3n } });
  assert.deepEqual(s.peers.n2, { txPackets: 0n, txBytes: 0n, rxPackets: 7n, rxBytes: 700n, drops: { spoofed: 2n } });
  assert.equal(s.peers.n4!.txPackets, 1n);
  assert.equal(s.fdbPeers, 2);
  assert.equal(s.fdbRoutes, 3);
  clearSlot(c, 2);
  assert.deepEqual(readStats(c, new Map([[2, 'n2']]), 1, 1).peers.n2!.drops, {});
  assert.equal(c[counterIndex(0, COUNTER.txPackets)], 10n, 'clearing a slot leaves the totals');
});
