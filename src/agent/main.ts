/**
 * `userlay agent`: picks the mode. Kube mode when --kubeconfig is given or
 * when running in a pod (KUBERNETES_SERVICE_HOST is set); static mode (a
 * peers file) otherwise.
 */
import { runStaticAgent } from './static-mode.js';

/** True when argv or the environment asks for kube mode. */
export function isKubeMode(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  return argv.some((a) => a === '--kubeconfig' || a.startsWith('--kubeconfig=')) || !!env.KUBERNETES_SERVICE_HOST;
}

/** Run the agent until it is told to stop. Rejects with a UserlayError on bad input or setup failure. */
export async function runAgent(argv: readonly string[]): Promise<void> {
  if (isKubeMode(argv)) {
    const { runKubeAgent } = await import('./kube-mode.js');
    await runKubeAgent([...argv]);
    return;
  }
  await runStaticAgent(argv);
}
