/*
 * codec.c — encapsulation (TUN -> UDP) and validated decapsulation
 * (UDP -> TUN) for both wire formats.
 *
 * UL_MODE_VXLAN, the UDP payload (RFC 7348 section 5; what the Linux vxlan
 * device sends, flannel's vxlan backend):
 *
 *   offset  size  field
 *        0     1  flags: exactly 0x08 (the I flag)
 *        1     3  reserved, zero
 *        4     3  VNI, big-endian
 *        7     1  reserved, zero
 *        8     6  inner Ethernet destination = the receiver's VTEP MAC
 *       14     6  inner Ethernet source = the sender's VTEP MAC
 *       20     2  ethertype: 0x0800 (IPv4) or 0x86DD (IPv6), big-endian
 *       22     -  the IP packet; anything after its own length is Ethernet
 *                 padding and is ignored
 *
 * UL_MODE_UDP (flannel's udp backend): the UDP payload is the IP packet.
 *
 * Receive checks, in this order, each with its own drop reason:
 *   SHORT         payload shorter than the encapsulation header plus the
 *                 smallest IP header (20 bytes)
 *   BAD_FLAGS     flags byte != 0x08, or any reserved byte nonzero. The
 *                 kernel vxlan driver drops such frames too ("unparsed" flags
 *                 or reserved VNI bits -> VXLAN_INVALID_HDR), and sends
 *                 exactly 0x08 with zero reserved bytes, as does flannel, so
 *                 being strict costs no interop. GBP/GPE extension bits are
 *                 not supported and land here.
 *   BAD_VNI       VNI != ours
 *   BAD_MAC       inner destination MAC != our VTEP MAC
 *   MALFORMED     ethertype not IPv4/IPv6, IP version not matching it (udp
 *                 mode: version not 4/6), IPv4 IHL < 5 or header longer than
 *                 the total length, total length beyond the payload, IPv6
 *                 header or payload length beyond the payload
 *   UNKNOWN_PEER  outer source address is no peer's underlay address
 *   SPOOFED       inner source address does not route to that same peer
 *                 (to an entry of its counter slot: a dual-stack peer has
 *                 one entry per underlay family, and a v6 pod packet over
 *                 its v4 underlay is still its own)
 *
 * Transmit: the packet read from the TUN must be a complete IPv4/IPv6
 * packet whose header length equals what was read (TX_MALFORMED), and its
 * destination must be in the FDB (NO_ROUTE).
 *
 * Outer source port (ul_flow_hash): the kernel vxlan device picks the outer
 * UDP source port from a hash of the inner flow (udp_flow_src_port), so that
 * ECMP and RSS on the underlay spread flows while each flow keeps one path.
 * The hash here covers the addresses, the protocol and, for TCP, UDP and
 * SCTP, the ports; not the ports of fragments (a later fragment has none,
 * and all fragments of a datagram must take one path), and not past IPv6
 * extension headers. The engine scales it into its set of source sockets
 * the way the kernel scales it into a port range (ul_flow_pick).
 */
#include <string.h>

#include "userlay.h"
#include "be.h"

#include <stdbool.h>

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define IPV4_MIN_HDR 20
#define IPV6_HDR 40

/*
 * Length of the IP packet at p[0..avail) according to its own header, with
 * `version` (4 or 6) already known; 0 when the header is inconsistent or
 * claims more than avail.
 */
static size_t ip_len(const uint8_t *p, size_t avail, unsigned version) {
  if (version == 4) {
    if (avail < IPV4_MIN_HDR) return 0;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    size_t tot = load_be16(p + 2);
    if (ihl < IPV4_MIN_HDR || tot < ihl || tot > avail) return 0;
    return tot;
  }
  if (avail < IPV6_HDR) return 0;
  size_t tot = IPV6_HDR + (size_t)load_be16(p + 4);
  return tot > avail ? 0 : tot;
}

/* Source (want_src) or destination address of a checked IP packet. */
static void ip_addr(const uint8_t *p, unsigned version, int want_src,
                    struct ul_addr *a) {
  memset(a, 0, sizeof *a);
  a->family = (uint8_t)version;
  if (version == 4)
    memcpy(a->bytes, p + (want_src ? 12 : 16), 4);
  else
    memcpy(a->bytes, p + (want_src ? 8 : 24), 16);
}

/* Is the packet larger than the path MTU `mtu` (0: no limit) and may not be
 * fragmented on the way: IPv6 (only the source fragments), or IPv4 with DF?
 * IPv4 without DF is sent on; the kernel fragments the outer datagram
 * (see "Path MTU" in engine.c's design notes). */
static bool too_big(const uint8_t *pkt, size_t len, unsigned version,
                    uint32_t mtu) {
  if (mtu == 0 || len <= mtu) return false;
  return version == 6 || (pkt[6] & 0x40) != 0;
}

int ul_encap(const struct ul_codec_cfg *cfg, const struct ul_fdb *fdb,
             uint8_t *buf, size_t pkt_off, size_t pkt_len,
             struct ul_encap_result *res) {
  const uint8_t *pkt = buf + pkt_off;
  if (pkt_len == 0 || pkt_len > UL_MAX_PACKET) return UL_DROP_TX_MALFORMED;
  unsigned version = pkt[0] >> 4;
  if (version != 4 && version != 6) return UL_DROP_TX_MALFORMED;
  if (ip_len(pkt, pkt_len, version) != pkt_len) return UL_DROP_TX_MALFORMED;

  struct ul_addr dst;
  ip_addr(pkt, version, 0, &dst);
  const struct ul_fdb_peer *peer = ul_fdb_lookup(fdb, &dst);
  if (peer == NULL) return UL_DROP_NO_ROUTE;

  res->peer = peer;
  if (too_big(pkt, pkt_len, version, peer->mtu)) return UL_DROP_TOO_BIG;
  if (cfg->mode != UL_MODE_VXLAN) {
    res->frame_off = pkt_off;
    res->frame_len = pkt_len;
    return UL_OK;
  }
  if (pkt_off < UL_VXLAN_ENCAP_LEN) return UL_DROP_TX_MALFORMED;
  uint8_t *h = buf + pkt_off - UL_VXLAN_ENCAP_LEN;
  uint16_t ethertype = version == 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6;
  h[0] = UL_VXLAN_FLAG_I;
  h[1] = h[2] = h[3] = 0;
  h[4] = (uint8_t)(peer->vni >> 16);
  h[5] = (uint8_t)(peer->vni >> 8);
  h[6] = (uint8_t)peer->vni;
  h[7] = 0;
  memcpy(h + 8, peer->mac, 6);
  memcpy(h + 14, cfg->mac, 6);
  h[20] = (uint8_t)(ethertype >> 8);
  h[21] = (uint8_t)ethertype;
  res->frame_off = pkt_off - UL_VXLAN_ENCAP_LEN;
  res->frame_len = pkt_len + UL_VXLAN_ENCAP_LEN;
  return UL_OK;
}

/* The VXLAN header and inner Ethernet checks; the IP version the ethertype
 * announces in *version. */
static int vxlan_check(const struct ul_codec_cfg *cfg, const uint8_t *buf,
                       unsigned *version) {
  if (buf[0] != UL_VXLAN_FLAG_I || (buf[1] | buf[2] | buf[3] | buf[7]) != 0)
    return UL_DROP_BAD_FLAGS;
  uint32_t vni = ((uint32_t)buf[4] << 16) | ((uint32_t)buf[5] << 8) | buf[6];
  if (vni != cfg->vni) return UL_DROP_BAD_VNI;
  if (memcmp(buf + 8, cfg->mac, 6) != 0) return UL_DROP_BAD_MAC;
  uint16_t ethertype = load_be16(buf + 20);
  *version = ethertype == ETHERTYPE_IPV4 ? 4 : ethertype == ETHERTYPE_IPV6 ? 6 : 0;
  return *version == 0 ? UL_DROP_MALFORMED : UL_OK;
}

size_t ul_frame_len(const struct ul_codec_cfg *cfg, const uint8_t *buf, size_t len) {
  size_t off = cfg->mode == UL_MODE_VXLAN ? UL_VXLAN_ENCAP_LEN : 0;
  if (len < off + IPV4_MIN_HDR) return 0;
  unsigned version = buf[off] >> 4;
  if (version != 4 && version != 6) return 0;
  size_t n = ip_len(buf + off, len - off, version);
  return n == 0 ? 0 : off + n;
}

int ul_decap(const struct ul_codec_cfg *cfg, const struct ul_fdb *fdb,
             const uint8_t *buf, size_t len, const struct ul_addr *src,
             struct ul_decap_result *res) {
  res->peer = NULL;
  res->pkt_off = 0;
  res->pkt_len = 0;
  res->frame_len = 0;
  size_t off = cfg->mode == UL_MODE_VXLAN ? UL_VXLAN_ENCAP_LEN : 0;
  if (len < off + IPV4_MIN_HDR) return UL_DROP_SHORT;

  unsigned version = buf[off] >> 4;
  res->frame_len = ul_frame_len(cfg, buf, len);
  if (off != 0) {
    unsigned announced;
    int reason = vxlan_check(cfg, buf, &announced);
    if (reason != UL_OK) return reason;
    if (version != announced) return UL_DROP_MALFORMED;
  } else if (version != 4 && version != 6) {
    return UL_DROP_MALFORMED;
  }
  const uint8_t *pkt = buf + off;
  size_t pkt_len = res->frame_len == 0 ? 0 : res->frame_len - off; /* read above */
  if (pkt_len == 0) return UL_DROP_MALFORMED;

  const struct ul_fdb_peer *peer = ul_fdb_peer_by_underlay(fdb, src);
  if (peer == NULL) return UL_DROP_UNKNOWN_PEER;
  res->peer = peer;
  struct ul_addr inner_src;
  ip_addr(pkt, version, 1, &inner_src);
  /* the same peer: its entry for either underlay family (one slot) */
  const struct ul_fdb_peer *owner = ul_fdb_lookup(fdb, &inner_src);
  if (owner == NULL || owner->slot != peer->slot) return UL_DROP_SPOOFED;

  res->pkt_off = off;
  res->pkt_len = pkt_len;
  return UL_OK;
}

/* murmur3's 32-bit finaliser: every input bit moves every output bit. */
static uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

static uint32_t load_be32c(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint32_t ul_flow_hash(const uint8_t *pkt, size_t len) {
  size_t l3, naddr, i;
  unsigned proto;
  int ports;
  uint32_t h = 0x9e3779b9u;

  if (len < 20) return 0;
  if ((pkt[0] >> 4) == 4) {
    l3 = (size_t)(pkt[0] & 0x0f) * 4;
    proto = pkt[9];
    naddr = 12; /* addresses at 12..20 */
    ports = (load_be16(pkt + 6) & 0x3fff) == 0; /* not a fragment */
  } else if ((pkt[0] >> 4) == 6 && len >= 40) {
    l3 = 40;
    proto = pkt[6];
    naddr = 8; /* addresses at 8..40 */
    ports = 1;
  } else {
    return 0;
  }
  for (i = naddr; i < (naddr == 12 ? 20u : 40u); i += 4)
    h = mix32(h ^ load_be32c(pkt + i));
  h = mix32(h ^ proto);
  if (ports && (proto == 6 || proto == 17 || proto == 132) && l3 >= 20 && l3 + 4 <= len)
    h = mix32(h ^ load_be32c(pkt + l3));
  return h;
}
