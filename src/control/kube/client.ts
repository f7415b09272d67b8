/**
 * The Kubernetes API client: a KubeConfig from --kubeconfig or the in-cluster service
 * account, and the two Node calls the agent makes besides list + watch (get, merge-patch
 * status; the list and the watch stream through http.ts and reflector.ts).
 *
 * client-node 1.4.x sends patch bodies as application/json-patch+json unless told
 * otherwise; the lease is a JSON merge patch, so every patch call sets the Content-Type
 * to application/merge-patch+json through setHeaderOptions.
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { UserlayError, usageError } from '../../errors.js';

/** The Node operations the agent uses; tests substitute fakes. */
export interface NodeApi {
  /** GET /api/v1/nodes/{name}. */
  getNode(name: string): Promise<V1Node>;
  /** PATCH /api/v1/nodes/{name}/status as application/merge-patch+json. */
  patchNodeStatus(name: string, patch: object): Promise<V1Node>;
}

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

/** The HTTP status of a client-node error, when it has one. */
export function apiStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const o = err as { code?: unknown; statusCode?: unknown };
    if (typeof o.code === 'number') return o.code;
    if (typeof o.statusCode === 'number') return o.statusCode;
  }
  return undefined;
}

/** Wrap an API failure: "get node n1: HTTP 404 ..." or "get node n1: ECONNREFUSED ...". */
function apiError(what: string, err: unknown): UserlayError {
  const status = apiStatus(err);
  const detail = err instanceof Error ? err.message.split('\n')[0] : String(err);
  const code = status !== undefined ? `EHTTP${status}` : (err as { code?: string })?.code ?? 'EAPI';
  return new UserlayError(typeof code === 'string' ? code : 'EAPI', `${what}: ${detail}`, { cause: err });
}

/** NodeApi over a real CoreV1Api. */
export function createNodeApi(kc: KubeConfig): NodeApi {
  const api = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    async getNode(name) {
      try {
        return await api.readNode({ name });
      } catch (err) {
        throw apiError(`get node ${name}`, err);
      }
    },
    async patchNodeStatus(name, patch) {
      try {
        return await api.patchNodeStatus({ name, body: patch }, merge);
      } catch (err) {
        throw apiError(`patch node ${name} status`, err);
      }
    },
  };
}
