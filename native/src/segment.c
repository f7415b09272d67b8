/*
 * segment.c — segmentation offloads done in software: splitting a TSO/USO
 * super-packet read from the TUN into wire-sized segments, and cutting a
 * UDP GRO receive buffer back into its datagrams. Pure functions, no system
 * calls (the TUN read loop around them is tun-read.c).
 *
 * TSO/USO split (ul_tso_parse, ul_tso_segment)
 *   With TUNSETOFFLOAD TUN_F_TSO4|TSO6 (and USO4|USO6) the kernel hands one
 *   read() of up to 64 KiB: [virtio_net_hdr | IP | TCP or UDP | payload],
 *   gso_type saying what it is and gso_size the payload bytes per segment.
 *   The L4 checksum field holds only the pseudo-header sum (NEEDS_CSUM).
 *   Segment i is the header template followed by payload bytes
 *   [i * gso_size, min((i + 1) * gso_size, payload)), with:
 *     IPv4   total length of the segment, id + i, header checksum redone
 *     IPv6   payload length of the segment
 *     TCP    seq + i * gso_size; FIN and PSH only on the last segment, CWR
 *            only on the first (what the kernel's tcp_gso_segment does)
 *     UDP    length of the datagram
 *     L4     checksum complete (pseudo header + L4 header + payload), so
 *            every segment leaves finished whatever the TUN said; or, with
 *            t->leave_partial, the pseudo-header sum of the segment's own
 *            length (for ul_csum_finish later, or for a peer that takes
 *            partial checksums: csum.c)
 *   ul_tso_segment_headers() writes a segment's headers only and points at
 *   its payload inside the super-packet, for a sender that gathers the two
 *   with iovecs (possible only while the checksum stays partial).
 *   IPv6 extension headers must chain up to csum_start. The pseudo header
 *   is summed from the IP header, but behind a routing header with segments
 *   left (the final destination is another) it is the sum the kernel left
 *   in the checksum field, less the length.
 *   hdr_len from the virtio header is not trusted: on a forwarded packet it
 *   may cover the whole first segment. It is recomputed from csum_start (the
 *   L3 header length) plus the TCP data offset, or 8 for UDP.
 *
 * UDP GRO split (ul_udp_gro_split)
 *   A socket with UDP_GRO gets a run of datagrams from one sender as one
 *   buffer and the segment size in a cmsg: every datagram is seg bytes but
 *   the last, which may be shorter. A zero size, or a buffer that claims more
 *   than the segment limit, is refused; a size larger than the buffer is one
 *   datagram.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "userlay.h"
#include "be.h"

#define PROTO_TCP 6
#define PROTO_UDP 17
#define GSO_TCPV4 1
#define GSO_UDP 3 /* UFO: IP fragmentation, never asked for */
#define GSO_TCPV6 4
#define GSO_UDP_L4 5
#define GSO_ECN 0x80
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

/* The next header that the IPv6 extension header chain of pkt names at
 * offset l3 (pkt holds at least l3 bytes), or -1 when the chain does not
 * end exactly there or holds a header that cannot precede a segmented
 * TCP/UDP header (a fragment, ESP, anything unknown). *routed: the chain
 * holds a routing header with segments left, so the final destination is
 * not the IPv6 header's. */
static int ipv6_l4_at(const uint8_t *pkt, size_t l3, bool *routed)
{
  unsigned next = pkt[6];
  size_t at = 40;

  *routed = false;
  while (at < l3) {
    size_t hlen;
    if (at + 4 > l3)
      return -1;
    if (next == 0 || next == 43 || next == 60) /* hop-by-hop, routing, dest opts */
      hlen = ((size_t)pkt[at + 1] + 1) * 8;
    else if (next == 51) /* AH */
      hlen = ((size_t)pkt[at + 1] + 2) * 4;
    else
      return -1;
    *routed |= next == 43 && pkt[at + 3] != 0;
    next = pkt[at];
    at += hlen;
  }
  return at == l3 ? (int)next : -1;
}

int ul_tso_parse(const uint8_t *pkt, size_t len, const struct ul_vnet_hdr *vh,
                 struct ul_tso *t)
{
  unsigned type = vh->gso_type & (unsigned)~GSO_ECN;
  size_t l3 = vh->csum_start, l4hdr;
  bool routed = false;

  memset(t, 0, sizeof(*t));
  if (len < 20 || len > UL_MAX_PACKET || vh->gso_size == 0 ||
      (vh->flags & UL_VNET_F_NEEDS_CSUM) == 0)
    return UL_DROP_TX_MALFORMED;
  t->version = pkt[0] >> 4;
  if (type == GSO_TCPV4 || type == GSO_TCPV6)
    t->proto = PROTO_TCP;
  else if (type == GSO_UDP_L4)
    t->proto = PROTO_UDP;
  else
    return UL_DROP_TX_MALFORMED; /* UFO or unknown */
  if ((type == GSO_TCPV4 && t->version != 4) ||
      (type == GSO_TCPV6 && t->version != 6))
    return UL_DROP_TX_MALFORMED;
  if (t->version == 4) {
    /* one family-parameterised check: the L3 header is csum_start long */
    if ((size_t)(pkt[0] & 0x0f) * 4 != l3 || l3 < 20 || pkt[9] != t->proto ||
        (load_be16(pkt + 6) & 0x3fff) != 0) /* a fragment cannot be GSO */
      return UL_DROP_TX_MALFORMED;
  } else if (t->version == 6) {
    /* extension headers are allowed (they are copied as they are), if
     * their chain ends at csum_start with the L4 protocol */
    if (l3 < 40 || l3 > len || ipv6_l4_at(pkt, l3, &routed) != (int)t->proto)
      return UL_DROP_TX_MALFORMED;
  } else {
    return UL_DROP_TX_MALFORMED;
  }
  if (l3 + (t->proto == PROTO_TCP ? 20 : 8) > len)
    return UL_DROP_TX_MALFORMED;
  l4hdr = t->proto == PROTO_TCP ? (size_t)(pkt[l3 + 12] >> 4) * 4 : 8;
  if (l4hdr < (t->proto == PROTO_TCP ? 20u : 8u) || l3 + l4hdr > len)
    return UL_DROP_TX_MALFORMED;
  t->l3 = l3;
  t->hdr_len = l3 + l4hdr;
  t->gso_size = vh->gso_size;
  t->payload = len - t->hdr_len;
  t->nsegs = t->payload == 0 ? 1
                             : (uint32_t)((t->payload + t->gso_size - 1) / t->gso_size);
  /* what every segment shares, summed once: the segment adds its lengths
   * (and IPv4 id), which are the only words that differ */
  t->pseudo_sum = ul_csum_pseudo(pkt, t->proto, 0);
  if (routed) {
    /* the pseudo header holds the final destination (RFC 8200, 8.1), which
     * the kernel summed into the field for the super-packet's L4 length:
     * take that sum less the length, as the kernel's own segmentation does */
    size_t field = l3 + (t->proto == PROTO_TCP ? 16 : 6);
    t->pseudo_sum = load_be16(pkt + field) + (uint16_t)~(uint16_t)(len - l3);
  }
  if (t->version == 4)
    t->ip_sum = ul_csum_partial(pkt + 12, l3 - 12,
                                ul_csum_partial(pkt + 6, 4, (uint32_t)pkt[0] << 8 | pkt[1]));
  return UL_OK;
}

/* The L4 checksum field of a segment of t whose L4 header and payload are
 * l4[0..l4len): complete, or with partial only the
 * pseudo-header sum (folded, not inverted: what CHECKSUM_PARTIAL leaves). */
static uint16_t l4_csum(const struct ul_tso *t, uint8_t *l4, size_t l4len,
                        unsigned proto, bool partial)
{
  uint32_t pseudo = t->pseudo_sum + (uint32_t)l4len;
  size_t at = proto == PROTO_TCP ? 16 : 6;
  uint16_t c;

  if (partial)
    return (uint16_t)~ul_csum_fold(pseudo);
  l4[at] = l4[at + 1] = 0;
  c = ul_csum_fold(ul_csum_partial(l4, l4len, pseudo));
  return proto == PROTO_UDP && c == 0 ? 0xffff : c; /* 0 means "none" for UDP */
}

/* The per-segment fields of segment i (seg_len bytes long) in the copy of
 * the header template at out; a complete L4 checksum sums out[l3, seg_len),
 * so the payload must be there unless t->leave_partial. */
static void segment_fields(const uint8_t *pkt, const struct ul_tso *t,
                           uint32_t i, uint8_t *out, size_t seg_len)
{
  size_t off = (size_t)i * t->gso_size, l4len = seg_len - t->l3;
  int last = i + 1 == t->nsegs;
  uint8_t *l4 = out + t->l3;

  if (t->version == 4) {
    store_be16(out + 2, seg_len);
    store_be16(out + 4, (uint16_t)(load_be16(pkt + 4) + i));
    store_be16(out + 10, ul_csum_fold(t->ip_sum + (uint32_t)seg_len + load_be16(out + 4)));
  } else {
    store_be16(out + 4, seg_len - 40);
  }
  if (t->proto == PROTO_TCP) {
    store_be32(l4 + 4, load_be32(pkt + t->l3 + 4) + (uint32_t)off);
    if (!last)
      l4[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (i > 0)
      l4[13] &= (uint8_t)~TCP_CWR;
    store_be16(l4 + 16, l4_csum(t, l4, l4len, PROTO_TCP, t->leave_partial));
  } else {
    store_be16(l4 + 4, l4len);
    store_be16(l4 + 6, l4_csum(t, l4, l4len, PROTO_UDP, t->leave_partial));
  }
}

/* Payload bytes of segment i. */
static size_t segment_chunk(const struct ul_tso *t, uint32_t i)
{
  size_t off = (size_t)i * t->gso_size;

  return t->payload - off < t->gso_size ? t->payload - off : t->gso_size;
}

size_t ul_tso_segment(const uint8_t *pkt, const struct ul_tso *t, uint32_t i,
                      uint8_t *out)
{
  size_t chunk;

  if (i >= t->nsegs)
    return 0;
  chunk = segment_chunk(t, i);
  /* out may be pkt itself for segment 0 (split in place): memmove */
  memmove(out, pkt, t->hdr_len);
  memmove(out + t->hdr_len, pkt + t->hdr_len + (size_t)i * t->gso_size, chunk);
  segment_fields(pkt, t, i, out, t->hdr_len + chunk);
  return t->hdr_len + chunk;
}

size_t ul_tso_segment_headers(const uint8_t *pkt, const struct ul_tso *t,
                              uint32_t i, uint8_t *out,
                              const uint8_t **payload, size_t *payload_len)
{
  size_t chunk;

  if (i >= t->nsegs || !t->leave_partial)
    return 0;
  chunk = segment_chunk(t, i);
  memmove(out, pkt, t->hdr_len);
  segment_fields(pkt, t, i, out, t->hdr_len + chunk);
  *payload = pkt + t->hdr_len + (size_t)i * t->gso_size;
  *payload_len = chunk;
  return t->hdr_len;
}

int ul_udp_gro_split(size_t len, size_t seg, size_t max_segs,
                     struct ul_span *out, size_t cap)
{
  size_t n, i;

  if (seg == 0 || len == 0)
    return -EINVAL;
  n = (len + seg - 1) / seg;
  if (n > max_segs || n > cap)
    return -E2BIG;
  for (i = 0; i < n; i++) {
    out[i].off = i * seg;
    out[i].len = len - i * seg < seg ? len - i * seg : seg;
  }
  return (int)n;
}
