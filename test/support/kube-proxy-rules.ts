/**
 * The nat rules kube-proxy's iptables mode writes for one TCP Service (ClusterIP + NodePort),
 * in iptables-restore form, so a lab node can DNAT service traffic before routing exactly as
 * a Kubernetes node does:
 *
 *   PREROUTING/OUTPUT -> KUBE-SERVICES -> KUBE-SVC-<svc> -> KUBE-SEP-<ep> (DNAT)
 *                        KUBE-SERVICES (dst LOCAL) -> KUBE-NODEPORTS -> KUBE-EXT-<svc> -> KUBE-SVC-<svc>
 *   KUBE-SVC picks an endpoint with `statistic --mode random` (probability 1/n, 1/(n-1), ...)
 *   KUBE-MARK-MASQ marks what must be masqueraded: traffic from outside the cluster network
 *   to the ClusterIP, NodePort traffic, and a pod reaching itself (hairpin, in KUBE-SEP);
 *   KUBE-POSTROUTING masquerades the marked packets.
 */

/** One Service and its endpoints. */
export interface ServiceSpec {
  /** Short name used in the chain names (upper case, like kube-proxy's hash). */
  readonly id: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly nodePort: number;
  /** Pod IP + target port of every endpoint. */
  readonly endpoints: ReadonlyArray<{ readonly id: string; readonly ip: string; readonly port: number }>;
  /** The cluster (pod) network, kube-proxy's --cluster-cidr. */
  readonly clusterCidr: string;
}

/** iptables-restore input for the nat table (use with --noflush). */
export function kubeProxyNatRules(svc: ServiceSpec): string {
  const svcChain = `KUBE-SVC-${svc.id}`;
  const extChain = `KUBE-EXT-${svc.id}`;
  const sep = (id: string): string => `KUBE-SEP-${id}`;
  const n = svc.endpoints.length;
  const lines = [
    '*nat',
    ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]',
    `:${svcChain} - [0:0]`, `:${extChain} - [0:0]`, ...svc.endpoints.map((e) => `:${sep(e.id)} - [0:0]`),
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    `-A KUBE-SERVICES -d ${svc.clusterIP}/32 -p tcp -m tcp --dport ${svc.port} -j ${svcChain}`,
    '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    `-A KUBE-NODEPORTS -p tcp -m tcp --dport ${svc.nodePort} -j ${extChain}`,
    `-A ${extChain} -j KUBE-MARK-MASQ`,
    `-A ${extChain} -j ${svcChain}`,
    `-A ${svcChain} ! -s ${svc.clusterCidr} -d ${svc.clusterIP}/32 -p tcp -m tcp --dport ${svc.port} -j KUBE-MARK-MASQ`,
    ...svc.endpoints.map((e, i) => i < n - 1
      ? `-A ${svcChain} -m statistic --mode random --probability ${(1 / (n - i)).toFixed(10)} -j ${sep(e.id)}`
      : `-A ${svcChain} -j ${sep(e.id)}`),
    ...svc.endpoints.flatMap((e) => [
      `-A ${sep(e.id)} -s ${e.ip}/32 -j KUBE-MARK-MASQ`,
      `-A ${sep(e.id)} -p tcp -m tcp -j DNAT --to-destination ${e.ip}:${e.port}`,
    ]),
    'COMMIT',
  ];
  return lines.join('\n') + '\n';
}
