/*
 * gro.c — receive coalescing of TCP segments and UDP datagrams (userspace
 * GRO).
 *
 * The rx thread receives one UDP datagram per inner TCP segment (~1450
 * bytes). Written to the TUN one by one, every segment crosses the
 * forwarding path, the veth and the pod's TCP stack on its own, and every
 * second one makes the pod send an ACK back across the whole overlay. The
 * kernel's GRO would merge them on a NIC; the TUN cannot, because it never
 * sees them together. So the engine merges them: the segments of one flow
 * that follow each other in a batch become one super-packet, written with a
 * virtio-net GSO header. The stack carries it whole up to the pod's socket
 * (veth keeps GSO packets), or cuts it back into the original segments where
 * a device needs that.
 *
 * UDP is the same story one datagram at a time (QUIC, DNS, media, iperf3
 * -u): every datagram written alone crosses the whole path to the pod's
 * socket. A run of one UDP flow's equal-sized datagrams becomes one
 * super-packet with a UDP GSO header (VIRTIO_NET_HDR_GSO_UDP_L4, taken by
 * TUN writes since Linux 6.2), which the stack carries whole to the pod and
 * cuts back into the original datagrams at its socket (or at a device that
 * needs that), as it does for the kernel's own UDP GRO forwarding.
 *
 * Pipeline (ul_gro_batch, one received batch):
 *   1. Classify each packet: not TCP or UDP / unparseable (stands alone, no
 *      flow); TCP or UDP that must stand alone but orders its flow (see
 *      "Who may coalesce"); TCP or UDP that may coalesce.
 *   2. Find the flow's newest group (scan back over the groups of this batch)
 *      and append the packet when it continues that group exactly; otherwise
 *      start a new group. A flow's older groups are never appended to again,
 *      so writing groups in the order of their first packet keeps every
 *      flow's order (flows may overtake each other: TCP does not care).
 *   3. For each group of two or more: rewrite the first packet's headers for
 *      the whole length and fill the GSO header (ul_tun_tcp_gso or
 *      ul_tun_udp_gso in tun.c).
 *
 * Design notes
 *   Who may coalesce (what the kernel's tcp_gro_receive() also demands, so
 *   the pod sees what a NIC with GRO would give it):
 *   - IPv4 without options, not a fragment, with the reserved flag clear
 *     and a valid header checksum, or IPv6 whose next header is TCP (no
 *     extension headers); the IP length equals the packet length;
 *     len <= TUN MTU (longer ones are super-frames, see tun.c).
 *   - TCP flags: ACK set; SYN, FIN, RST, URG, CWR clear; ECE must match the
 *     group. PSH may be set on any segment: it ends its group, and the
 *     super-packet carries PSH (the kernel clears it on all but the last
 *     segment if it ever segments it).
 *   - At least one payload byte (a pure ACK stands alone: merging ACKs
 *     would hide duplicate ACKs from fast retransmit).
 *   Who joins a group (compared with its first packet): same addresses,
 *   ports and IP version; IPv4 TOS, TTL and DF equal; IPv6 first word
 *   (traffic class, flow label) and hop limit equal; TCP ack number, data
 *   offset byte, flags byte except PSH, window, and all option bytes equal.
 *   So timestamps must be equal too (TSval and TSecr): a segment with a new
 *   TSval starts a new group, exactly as in the kernel, which keeps RTT
 *   samples and PAWS meaningful. seq must be the previous member's seq plus
 *   its payload length; all members but the last carry the first member's
 *   payload size (the gso_size), the last may be shorter (and then ends the
 *   group); the super-packet stays <= 65535 bytes.
 *   UDP (what the kernel's udp_gro_receive() and inet_gro_receive() ask of a
 *   run they forward): IPv4 without options, not a fragment, reserved flag
 *   clear, valid header checksum, or IPv6 with UDP as next header; the UDP
 *   length equals what the IP header leaves; at least one payload byte; a
 *   checksum that proves itself as below (an IPv4 datagram without one, a
 *   zero field, stands alone: nothing in it was ever checked). Followers
 *   match the first datagram's addresses, ports, IPv4 TOS, TTL and DF or
 *   IPv6 first word and hop limit; all but the last carry the first one's
 *   payload size and the last may be shorter (and ends the group); at most
 *   UL_GRO_UDP_SEGS (64) datagrams, within the kernel's own limit for a
 *   UDP GSO packet on every version (UDP_MAX_SEGMENTS, 64 or 128), and
 *   <= 65535 bytes. Without DF the IPv4 ID must go up by one
 *   from datagram to datagram, so that segmenting, which numbers them ID,
 *   ID+1, ..., gives each datagram back its own ID (a datagram without DF
 *   may still be fragmented on its way, and reassembly goes by the ID).
 *   Order inside a flow is kept as for TCP.
 *   IPv4 IDs of the TCP followers are not checked and are lost: the
 *   super-packet keeps the first ID, and segmenting it yields ID, ID+1, ...
 *   — what the sender produced anyway for a run of segments, and with DF
 *   set (Linux TCP with path MTU discovery) the ID carries no meaning (RFC
 *   6864).
 *   Checksums (TCP and UDP alike): the super-packet is written with
 *   NEEDS_CSUM, which the receiving stack trusts (CHECKSUM_PARTIAL).
 *   Coalescing must not turn a corrupt segment into one that is trusted, so
 *   every segment proves itself first: either its full checksum verifies (we
 *   pay one sum over ~1450 bytes, which the pod's kernel then does not pay),
 *   or its checksum field holds exactly the pseudo-header sum of its own
 *   length — a partial checksum left by a sending kernel across veth (see
 *   csum.c), which a kernel receiving that skb trusts as CHECKSUM_PARTIAL as
 *   well, and which ul_vnet_hdr_for_rx() would hand on with NEEDS_CSUM
 *   anyway (such a field says nothing about the data, so nobody downstream
 *   could verify it either; coalescing adds no trust). A segment that is
 *   neither stands alone and is written unchanged, so the kernel verifies
 *   and drops it as before.
 *   Payloads are not copied: the engine writes the first packet whole and
 *   then each follower's payload as its own iovec (TUN writes take writev).
 */
#include "userlay.h"

#include <stdbool.h>
#include <string.h>
#include "be.h"

#define GRO_BATCH_MAX 256
#define TCP_PROTO 6
#define UDP_PROTO 17
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_CWR 0x80
#define TCP_ALONE (TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_CWR)

enum seg_kind {
  SEG_OTHER = 0, /* not TCP or UDP we can parse: no flow, stands alone */
  SEG_ALONE,     /* TCP or UDP of a known flow that must stand alone */
  SEG_MERGE,     /* TCP or UDP that may coalesce */
};

struct seg {
  uint8_t *pkt;
  size_t len;
  size_t l3, thl, payload; /* thl: the TCP header's length, or 8 for UDP */
  uint32_t seq;            /* TCP */
  unsigned version, proto;
  enum seg_kind kind;
};

struct group {
  uint32_t lead, tail; /* item indices */
  size_t total;
  bool open;
};

/* Offset and length of the addresses in the IP header of `version`. */
static inline size_t addr_off(unsigned version)
{
  return version == 4 ? 12 : 8;
}

static inline size_t addr_len(unsigned version)
{
  return version == 4 ? 8 : 32; /* source and destination */
}

/* The field holds the partial pseudo-header sum, or the full checksum
 * verifies. The cheap test first: from a userlay peer that takes partial
 * checksums (csum.c) and from a kernel vxlan neighbour on veth most segments
 * arrive partial, and need no sum over their payload at all. */
static bool csum_acceptable(const struct seg *s)
{
  const uint8_t *th = s->pkt + s->l3;
  uint32_t pseudo = ul_csum_pseudo(s->pkt, s->proto, s->len - s->l3);
  uint16_t partial = (uint16_t)~ul_csum_fold(pseudo); /* folded, not inverted */

  if (load_be16(th + (s->proto == TCP_PROTO ? 16 : 6)) == partial)
    return true;
  return ul_csum_fold(ul_csum_partial(th, s->len - s->l3, pseudo)) == 0;
}

/* Does the 20-byte IPv4 header at p verify? Ten words summed inline: the
 * general ul_csum_partial costs more than the sum itself at this size. */
static inline bool ipv4_header_ok(const uint8_t *p)
{
  uint32_t sum = 0;
  int i;

  for (i = 0; i < 20; i += 2)
    sum += load_be16(p + i);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

/* Do the L4 headers parse? Fills thl, payload (and seq) and makes s a
 * packet of a flow (SEG_ALONE); false leaves it SEG_OTHER. */
static bool parse_l4(struct seg *s)
{
  const uint8_t *l4 = s->pkt + s->l3;

  if (s->proto == UDP_PROTO) {
    if (s->len < s->l3 + 8)
      return false;
    s->thl = 8;
  } else {
    if (s->len < s->l3 + 20)
      return false;
    s->thl = (size_t)(l4[12] >> 4) * 4;
    if (s->thl < 20 || s->l3 + s->thl > s->len)
      return false;
    s->seq = load_be32(l4 + 4);
  }
  s->payload = s->len - s->l3 - s->thl;
  s->kind = SEG_ALONE;
  return true;
}

/* May this TCP segment or UDP datagram join a run (the L4 rules of "Who may
 * coalesce"; UDP: the length field says what the IP header leaves, and a
 * zero IPv4 checksum field means there is no checksum)? */
static bool l4_may_merge(const struct seg *s)
{
  const uint8_t *l4 = s->pkt + s->l3;

  if (s->payload == 0)
    return false; /* a pure ACK, an empty datagram */
  if (s->proto == UDP_PROTO)
    return load_be16(l4 + 4) == s->len - s->l3 && load_be16(l4 + 6) != 0;
  return (l4[13] & TCP_ALONE) == 0 && (l4[13] & TCP_ACK) != 0;
}

/* Step 1: what is this packet? Fills *s. protos: UL_GRO_TCP, UL_GRO_UDP. */
static void classify(uint8_t *pkt, size_t len, int mtu, unsigned protos, struct seg *s)
{
  memset(s, 0, sizeof(*s));
  s->pkt = pkt;
  s->len = len;
  if (pkt == NULL || len < 28)
    return;
  s->version = pkt[0] >> 4;
  if (s->version == 4) {
    s->l3 = (size_t)(pkt[0] & 0x0f) * 4;
    s->proto = pkt[9];
    if (s->l3 < 20 || load_be16(pkt + 2) != len ||
        (load_be16(pkt + 6) & 0x3fff) != 0) /* MF or offset: fragment */
      return;
  } else if (s->version == 6) {
    s->l3 = 40;
    s->proto = pkt[6];
    if (40 + (size_t)load_be16(pkt + 4) != len)
      return;
  } else {
    return;
  }
  if (!(s->proto == TCP_PROTO && (protos & UL_GRO_TCP) != 0) &&
      !(s->proto == UDP_PROTO && (protos & UL_GRO_UDP) != 0))
    return;
  if (!parse_l4(s))
    return;
  /* IPv4 options stand alone, and so does the reserved flag bit (a
   * follower's would be lost), as in the kernel's inet_gro_receive; so does
   * a header whose checksum fails: the leader's header is rewritten with a
   * fresh checksum and the followers' are dropped, which would pass a
   * corrupt header that the pod's kernel must drop */
  if (s->version == 4 && (s->l3 != 20 || (pkt[6] & 0x80) != 0 ||
                          !ipv4_header_ok(pkt)))
    return;
  if (!l4_may_merge(s))
    return;
  if (mtu <= 0 || len > (size_t)mtu || !csum_acceptable(s))
    return;
  s->kind = SEG_MERGE;
}

static bool same_flow(const struct seg *a, const struct seg *b)
{
  return a->version == b->version && a->proto == b->proto &&
         memcmp(a->pkt + addr_off(a->version), b->pkt + addr_off(b->version),
                addr_len(a->version)) == 0 &&
         memcmp(a->pkt + a->l3, b->pkt + b->l3, 4) == 0; /* ports */
}

/* Do the IP and TCP headers of s match those of the group's first packet? */
static bool same_headers(const struct seg *lead, const struct seg *s)
{
  const uint8_t *a = lead->pkt, *b = s->pkt;
  const uint8_t *ta = a + lead->l3, *tb = b + s->l3;

  if (lead->version == 4) {
    if (a[1] != b[1] || a[8] != b[8] || ((a[6] ^ b[6]) & 0x40) != 0)
      return false; /* TOS, TTL, DF */
  } else if (memcmp(a, b, 4) != 0 || a[7] != b[7]) {
    return false; /* traffic class + flow label, hop limit */
  }
  if (lead->proto == UDP_PROTO)
    return true;
  return lead->thl == s->thl &&
         memcmp(ta + 8, tb + 8, 5) == 0 &&       /* ack, data offset */
         ((ta[13] ^ tb[13]) & ~TCP_PSH) == 0 &&  /* flags but PSH */
         memcmp(ta + 14, tb + 14, 2) == 0 &&     /* window */
         memcmp(ta + 20, tb + 20, lead->thl - 20) == 0; /* options */
}

/* Step 2: may s continue group g, which has `members` packets? */
static bool continues(const struct seg *segs, const struct group *g,
                      uint32_t members, const struct seg *s)
{
  const struct seg *lead = &segs[g->lead], *tail = &segs[g->tail];

  if (!g->open || s->kind != SEG_MERGE)
    return false;
  if (lead->proto == UDP_PROTO) {
    if (members >= UL_GRO_UDP_SEGS)
      return false;
    if (lead->version == 4 && (lead->pkt[6] & 0x40) == 0 && /* no DF */
        load_be16(s->pkt + 4) != (uint16_t)(load_be16(tail->pkt + 4) + 1))
      return false;
  } else if (s->seq != (uint32_t)(tail->seq + (uint32_t)tail->payload)) {
    return false;
  }
  return s->payload <= lead->payload &&
         g->total + s->payload <= UL_MAX_PACKET && same_headers(lead, s);
}

/* Does s end its group (a shorter last segment, or PSH)? */
static bool ends_group(const struct seg *lead, const struct seg *s)
{
  return s->payload < lead->payload ||
         (s->proto == TCP_PROTO && (s->pkt[s->l3 + 13] & TCP_PSH) != 0);
}

/* Step 3: rewrite the first packet's headers for the super-packet. */
static void finish(struct ul_gro_item *items, const struct seg *segs,
                   const struct group *g)
{
  const struct seg *lead = &segs[g->lead], *tail = &segs[g->tail];
  struct ul_gro_item *it = &items[g->lead];
  uint8_t *p = lead->pkt;

  it->total = g->total;
  if (lead->version == 4) {
    store_be16(p + 2, g->total);
    p[10] = p[11] = 0;
    store_be16(p + 10, ul_csum_fold(ul_csum_partial(p, 20, 0)));
  } else {
    store_be16(p + 4, g->total - 40);
  }
  if (lead->proto == UDP_PROTO) {
    store_be16(p + lead->l3 + 4, g->total - lead->l3);
    ul_tun_udp_gso(p, lead->l3, g->total, lead->payload, &it->vh);
    return;
  }
  p[lead->l3 + 13] |= tail->pkt[tail->l3 + 13] & TCP_PSH;
  ul_tun_tcp_gso(p, lead->l3, lead->thl, g->total, lead->payload, &it->vh);
}

void ul_gro_batch(struct ul_gro_item *items, uint32_t n, int mtu, unsigned protos)
{
  struct seg segs[GRO_BATCH_MAX];
  struct group groups[GRO_BATCH_MAX];
  uint32_t i, ng = 0;

  if (n > GRO_BATCH_MAX)
    n = GRO_BATCH_MAX; /* never with the engine's batch limit */
  for (i = 0; i < n; i++) {
    struct ul_gro_item *it = &items[i];
    struct seg *s = &segs[i];
    struct group *g = NULL;
    uint32_t k;

    it->count = 0;
    it->next = UL_GRO_END;
    it->total = it->len;
    memset(&it->vh, 0, sizeof(it->vh));
    classify(it->pkt, it->len, mtu, protos, s);
    if (it->pkt == NULL)
      continue;
    if (it->gso_size != 0 && s->kind == SEG_MERGE)
      s->kind = SEG_ALONE; /* several datagrams already (ul_tun_udp_gso_for_rx) */
    if (s->kind != SEG_OTHER)
      for (k = ng; k-- > 0;)
        if (segs[groups[k].lead].kind != SEG_OTHER &&
            same_flow(&segs[groups[k].lead], s)) {
          g = &groups[k];
          break;
        }
    if (g != NULL && continues(segs, g, items[g->lead].count, s)) {
      items[g->tail].next = i;
      items[g->lead].count++;
      g->tail = i;
      g->total += s->payload;
      if (ends_group(&segs[g->lead], s))
        g->open = false;
      continue;
    }
    g = &groups[ng++];
    g->lead = g->tail = i;
    g->total = s->len;
    g->open = s->kind == SEG_MERGE && !ends_group(s, s);
    it->count = 1;
  }
  for (i = 0; i < ng; i++)
    if (items[groups[i].lead].count >= 2)
      finish(items, segs, &groups[i]);
}
