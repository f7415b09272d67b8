/**
 * Loading client-node's KubeConfig (from --kubeconfig or the in-cluster service account).
 *
 * This is the only module of the agent's code that imports @kubernetes/client-node at run time
 * (the others import its types only). Loading it costs ~42 MB of RSS that V8 never gives back
 * (the module map keeps the whole generated API: 21 MB of JavaScript), so the agent does not
 * import this module itself: credential-helper.ts runs it in a short-lived process and hands
 * the credentials over (credentials.ts). A kubeconfig with a proxy-url is used in process.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { usageError } from '../../errors.js';

/**
 * Load the KubeConfig: from `path` when given, else the in-cluster service account.
 * Throws usageError('--kubeconfig', ...) when the file cannot be loaded or has no cluster.
 */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path !== undefined) kc.loadFromFile(path);
    else kc.loadFromCluster();
  } catch (err) {
    throw usageError('--kubeconfig', `cannot load ${path ?? 'in-cluster config'}: ${(err as Error).message}`, err);
  }
  if (!kc.getCurrentCluster()) throw usageError('--kubeconfig', `${path ?? 'in-cluster config'} has no current cluster`);
  return kc;
}
