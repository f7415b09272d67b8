/**
 * The two Node calls the agent makes besides list + watch: get a Node, merge-patch its
 * status (the lease). Small JSON requests over http.ts with client-node's credentials
 * (credentials.ts); the generated CoreV1Api is not loaded (bench/RESULTS.md, issue 9: it is
 * most of client-node's 42 MB).
 */
import type { V1Node } from '@kubernetes/client-node';
import type { KubeAuth } from './credentials.js';
import { kubeJsonFor } from './http.js';

/** The Node operations the agent uses; tests substitute fakes. */
export interface NodeApi {
  /** GET /api/v1/nodes/{name}. */
  getNode(name: string): Promise<V1Node>;
  /** PATCH /api/v1/nodes/{name}/status as application/merge-patch+json. */
  patchNodeStatus(name: string, patch: object): Promise<V1Node>;
}

/**
 * The HTTP status of an API failure, when it has one: `statusCode` of http.ts's
 * UserlayError `EHTTP<status>` (or a numeric `code`, as client-node's ApiException has).
 */
export function apiStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const o = err as { code?: unknown; statusCode?: unknown };
    if (typeof o.code === 'number') return o.code;
    if (typeof o.statusCode === 'number') return o.statusCode;
  }
  return undefined;
}

/**
 * NodeApi against `auth`'s cluster. Failures are http.ts's UserlayErrors: "get node n1: HTTP
 * 404: ..." (code EHTTP404, statusCode 404) or "get node n1: connect ECONNREFUSED ..." (the
 * errno name). The Nodes come back as the server's JSON (timestamps are strings).
 */
export function createNodeApi(auth: KubeAuth): NodeApi {
  const json = kubeJsonFor(auth);
  const path = (name: string): string => `/api/v1/nodes/${encodeURIComponent(name)}`;
  return {
    async getNode(name) {
      return await json('GET', path(name), `get node ${name}`) as V1Node;
    },
    async patchNodeStatus(name, patch) {
      return await json('PATCH', `${path(name)}/status`, `patch node ${name} status`, { contentType: 'application/merge-patch+json', value: patch }) as V1Node;
    },
  };
}
