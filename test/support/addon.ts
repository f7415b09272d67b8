/**
 * The native addon for unit tests. Tests that need it skip with a reason
 * when it is not built — except under CI (CI=true), where a missing addon is a
 * failure: a skip there would hide a broken build.
 */
import { type NativeAddon, loadAddon } from '../../src/dataplane/addon.js';

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
