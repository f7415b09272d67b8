/*
 * csum.c — Internet checksums (RFC 1071) and the virtio-net header for TUN
 * packets in both directions.
 *
 * Conventions
 *   - ul_csum_partial() returns a 32-bit ones'-complement partial sum of the
 *     data read as big-endian 16-bit words (the numeric value, independent of
 *     host byte order). Sums may be chained; only the last piece may have an
 *     odd length (its last byte is the high byte of a zero-padded word).
 *   - ul_csum_fold() folds to 16 bits and complements: the value to store, in
 *     big-endian order, in a checksum field. Data whose checksum is correct
 *     folds to 0.
 *
 * The partial checksum left by CHECKSUM_PARTIAL
 *   When the kernel leaves a TCP/UDP checksum to the device it stores in the
 *   checksum field the folded pseudo-header sum, NOT complemented:
 *   __tcp_v4_send_check() does `th->check = ~tcp_v4_check(skb->len, saddr,
 *   daddr, 0)` where tcp_v4_check() is csum_tcpudp_magic(), the complemented
 *   fold; so the field is ~~fold = fold(pseudo header). The same holds for
 *   __tcp_v6_send_check() (th->check = ~tcp_v6_check(skb->len, ...)) and for
 *   UDP: udp4_hwcsum() sets uh->check = ~csum_tcpudp_magic(src, dst, len,
 *   IPPROTO_UDP, 0) and udp6_set_csum() ~udp_v6_check(len, saddr, daddr, 0).
 *   The pseudo header covers source, destination, protocol and L4 length.
 *   The folded value of a nonzero sum lies in 1..0xffff in both the kernel's
 *   arithmetic and ours, so the comparison below is exact.
 *   The device (or skb_checksum_help) then sums from csum_start to the end,
 *   that field included, and stores the complemented fold at
 *   csum_start + csum_offset. Over veth nobody does, so a frame the kernel
 *   vxlan device encapsulated can reach us with the field still partial.
 *
 * Partial checksums between userlay nodes
 *   The kernel's vxlan device never sums the inner TCP payload on veth: the
 *   packet stays CHECKSUM_PARTIAL from the sending socket to the receiving
 *   one, and the outer UDP checksum (done by the device, or verified by the
 *   receiving NIC) covers the whole datagram, the inner packet included.
 *   userlay does the same towards a peer whose FDB entry has
 *   UL_FDB_F_PARTIAL_CSUM (a userlay node that says it takes them: lease
 *   annotation userlay.io/partial-csum, peers-file partialCsum): the native
 *   tx thread leaves NEEDS_CSUM packets and TSO/USO segments with the
 *   pseudo-header sum in the field, and the receiver recognises it
 *   (ul_vnet_hdr_for_rx, and csum_acceptable in gro.c) and writes the packet
 *   to its TUN with NEEDS_CSUM, for its kernel to finish if the packet leaves
 *   the node again. Our UDP sockets always send the outer checksum (IPv4 too:
 *   no UDP_NO_CHECK6_TX / SO_NO_CHECK), so nothing travels unprotected. To
 *   any other peer (kernel vxlan, flannel) every checksum leaves complete
 *   (ul_csum_finish), and so does any packet the receiver would not take for
 *   partial (ul_csum_partial_travels: IPv6 extension headers, say).
 */
#include <string.h>

#include "userlay.h"
#include "be.h"

#define PROTO_TCP 6
#define PROTO_UDP 17

/* The ones'-complement sum is independent of byte order (RFC 1071 2(B)):
 * summing the data as host-order words and swapping the folded result gives
 * the big-endian sum. So the bulk is read as host-order 64-bit words (memcpy:
 * alignment-safe, one load each), each split into its two 32-bit halves and
 * added into four independent 64-bit accumulators (no carry to track: each
 * add is < 2^33, so 2^31 rounds of 32 bytes cannot overflow). The 0-31 byte
 * tail starts at a multiple of 4 from `data`, on the 16-bit grid, and is
 * summed big-endian like the pieces before it. */
static uint64_t add_halves(uint64_t acc, const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return acc + (w & 0xffffffffu) + (w >> 32);
}

static uint16_t fold16(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

uint32_t ul_csum_partial(const void *data, size_t len, uint32_t sum) {
  const uint8_t *p = data;
  uint64_t acc = sum;
  if (len >= 32) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (; len >= 32; len -= 32, p += 32) {
      a0 = add_halves(a0, p);
      a1 = add_halves(a1, p + 8);
      a2 = add_halves(a2, p + 16);
      a3 = add_halves(a3, p + 24);
    }
    uint64_t bulk = fold16(a0) + (uint64_t)fold16(a1) + fold16(a2) + fold16(a3);
    uint16_t h = fold16(bulk);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    h = (uint16_t)((h << 8) | (h >> 8));
#endif
    acc += h;
  }
  for (; len >= 4; len -= 4, p += 4) acc += load_be32(p);
  if (len >= 2) {
    acc += load_be16(p);
    p += 2;
    len -= 2;
  }
  if (len == 1) acc += (uint32_t)p[0] << 8;
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  return (uint32_t)acc;
}

uint16_t ul_csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

uint32_t ul_csum_pseudo(const uint8_t *ip, unsigned proto, size_t l4_len) {
  return (ip[0] >> 4) == 4
             ? ul_csum_partial(ip + 12, 8, proto + (uint32_t)l4_len)
             : ul_csum_partial(ip + 8, 32, proto + (uint32_t)l4_len);
}

/* Where the transport header of an IP packet is and what it holds. */
struct l4 {
  unsigned version; /* 4 or 6 */
  unsigned proto;   /* PROTO_TCP or PROTO_UDP */
  size_t off;       /* offset of the L4 header in the packet */
  size_t len;       /* L4 header + payload, from the IP header */
  size_t csum_off;  /* checksum field offset within the L4 header */
};

/* Locate a TCP or UDP header whose checksum could be offloaded: no
 * fragments, no IPv6 extension headers. Returns 0 when found. */
static int find_l4(const uint8_t *pkt, size_t len, struct l4 *l) {
  if (len < 20) return -1;
  l->version = pkt[0] >> 4;
  size_t tot;
  if (l->version == 4) {
    l->off = (size_t)(pkt[0] & 0x0f) * 4;
    tot = load_be16(pkt + 2);
    if (l->off < 20 || tot < l->off || tot > len) return -1;
    if ((load_be16(pkt + 6) & 0x3fff) != 0) return -1; /* MF or offset */
    l->proto = pkt[9];
  } else if (l->version == 6) {
    l->off = 40;
    if (len < l->off) return -1;
    tot = l->off + load_be16(pkt + 4);
    if (tot > len) return -1;
    l->proto = pkt[6]; /* an extension header here means "no offload" */
  } else {
    return -1;
  }
  l->len = tot - l->off;
  if (l->proto == PROTO_TCP && l->len >= 20)
    l->csum_off = 16;
  else if (l->proto == PROTO_UDP && l->len >= 8)
    l->csum_off = 6;
  else
    return -1;
  return 0;
}


/* The receiver's rule for a checksum left partial, one for
 * ul_vnet_hdr_for_rx and ul_csum_partial_travels: a TCP/UDP header find_l4
 * locates, whose field holds exactly the pseudo-header sum (*pseudo). The
 * folded sum is never 0, so an IPv4 UDP "no checksum" never matches. */
static int field_is_partial(const uint8_t *pkt, size_t len, struct l4 *l,
                            uint32_t *pseudo) {
  if (pkt == NULL || find_l4(pkt, len, l) != 0) return 0;
  *pseudo = ul_csum_pseudo(pkt, l->proto, l->len);
  uint16_t partial = (uint16_t)~ul_csum_fold(*pseudo); /* folded, not inverted */
  return load_be16(pkt + l->off + l->csum_off) == partial;
}

int ul_vnet_hdr_for_rx(const uint8_t *pkt, size_t len, struct ul_vnet_hdr *vh) {
  memset(vh, 0, sizeof *vh);
  struct l4 l;
  uint32_t pseudo;
  if (!field_is_partial(pkt, len, &l, &pseudo)) return 0;
  if (ul_csum_fold(ul_csum_partial(pkt + l.off, l.len, pseudo)) == 0) return 0;
  vh->flags = UL_VNET_F_NEEDS_CSUM;
  vh->csum_start = (uint16_t)l.off;
  vh->csum_offset = (uint16_t)l.csum_off;
  return 1;
}

int ul_csum_finish(uint8_t *pkt, size_t len, size_t start, size_t offset) {
  size_t at = start + offset;
  if (start > len || offset > len || at + 2 > len) return UL_DROP_TX_MALFORMED;
  /* The field holds the pseudo-header sum: summing over it completes it. */
  uint16_t c = ul_csum_fold(ul_csum_partial(pkt + start, len - start, 0));
  /* A sum of 0 is sent as 0xffff by UDP only (its 0 means "none"); TCP and
   * ICMP send 0: 0xffff is the same value in ones' complement, but RFC 1624
   * says a computed checksum is never 0xffff, and checkers that compare
   * the field (tshark) call it wrong. */
  if (c == 0 && offset == 6) c = 0xffff;
  pkt[at] = (uint8_t)(c >> 8);
  pkt[at + 1] = (uint8_t)c;
  return UL_OK;
}

int ul_vnet_apply_tx(uint8_t *pkt, size_t len, const struct ul_vnet_hdr *vh) {
  if (vh->gso_type != 0) return UL_DROP_TX_MALFORMED;
  if ((vh->flags & UL_VNET_F_NEEDS_CSUM) == 0) return UL_OK;
  return ul_csum_finish(pkt, len, vh->csum_start, vh->csum_offset);
}

int ul_csum_partial_travels(const uint8_t *pkt, size_t len, size_t start,
                            size_t offset) {
  struct l4 l;
  uint32_t pseudo;
  return field_is_partial(pkt, len, &l, &pseudo) && l.off == start &&
         l.csum_off == offset && l.off + l.len == len;
}
