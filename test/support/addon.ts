/**
 * The native addon for unit tests. Tests that need it skip with a reason
 * when it is not built — except under CI (CI=true), where a missing addon is a
 * failure: a skip there would hide a broken build.
 */
import { type CodecConfig, DECAP_OUT, ENCAP_OUT, type NativeAddon, type NativeFdb, loadAddon } from '../../src/dataplane/addon.js';
import { DROP } from '../../src/dataplane/counters.js';

function tryLoad(): NativeAddon | undefined {
  try {
    return loadAddon();
  } catch (err) {
    if (process.env.CI) throw err;
    return undefined;
  }
}

/** The loaded addon, or undefined when it is not built (never under CI). */
export const addon: NativeAddon | undefined = tryLoad();

/** `skip` option for node:test: false when the addon is loaded, else the reason. */
export const skipNoAddon: string | false = addon ? false : 'native addon not built (npm run build:native)';

/** encap's results as an object, for tests that compare them whole; a drop gives its reason. */
export function encapResult(codec: CodecConfig, fdb: NativeFdb, buf: Uint8Array, pktOff: number, pktLen: number):
  { peer: number; frameOff: number; frameLen: number; tooBig?: number } | number {
  const out = new Int32Array(ENCAP_OUT.length);
  const reason = addon!.encap(addon!.codecBuild(codec), fdb, buf, pktOff, pktLen, out);
  if (reason === DROP.too_big) return { peer: out[ENCAP_OUT.peer]!, frameOff: 0, frameLen: 0, tooBig: out[ENCAP_OUT.mtu]! };
  if (reason !== 0) return reason;
  return { peer: out[ENCAP_OUT.peer]!, frameOff: out[ENCAP_OUT.frameOff]!, frameLen: out[ENCAP_OUT.frameLen]! };
}

/** decap's reason and results as an object. */
export function decapResult(codec: CodecConfig, fdb: NativeFdb, buf: Uint8Array, len: number, srcAddress: string):
  { reason: number; peer: number; pktOff: number; pktLen: number } {
  const out = new Int32Array(DECAP_OUT.length);
  const reason = addon!.decap(addon!.codecBuild(codec), fdb, buf, 0, len, srcAddress, out);
  return { reason, peer: out[DECAP_OUT.peer]!, pktOff: out[DECAP_OUT.pktOff]!, pktLen: out[DECAP_OUT.pktLen]! };
}
