/**
 * Kubeconfigs pointing @kubernetes/client-node at the in-process API server
 * (test support): server http://127.0.0.1:PORT, no credentials.
 *
 * client-node 1.4.0 refuses an http: server unless insecure-skip-tls-verify is
 * true (KubeConfig.createAgent throws "HTTP protocol is not allowed when
 * skipTLSVerify is not set or false"), so both shapes set it.
 */
import type { JsonObject } from './fake-apiserver-patch.js';

/** The kubeconfig file format (write it as JSON: valid YAML for loadFromFile). */
export function kubeconfigFor(url: string): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'fake', user: {} }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
    'current-context': 'fake',
  };
}

/** client-node's in-memory shape, for `KubeConfig.loadFromOptions()` (camelCase objects, not the file format). */
export interface KubeconfigOptions {
  clusters: Array<{ name: string; server: string; skipTLSVerify: boolean }>;
  users: Array<{ name: string }>;
  contexts: Array<{ name: string; cluster: string; user: string }>;
  currentContext: string;
}

/** The same cluster as kubeconfigFor(url), in KubeConfig.loadFromOptions() shape. */
export function kubeconfigOptionsFor(url: string): KubeconfigOptions {
  return {
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  };
}
