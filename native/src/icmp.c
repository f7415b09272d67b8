/*
 * icmp.c — the ICMP errors the engines write back into the TUN: destination
 * unreachable for a packet the FDB has no route for (the sender fails
 * fast), and "fragmentation needed" / "packet too big" for one larger than
 * the path to its peer carries (path MTU discovery, instead of a black hole).
 * One code path for both messages and both families; `struct family` and
 * `struct kind` hold what differs.
 *
 * Output, IPv4 (RFC 792, at most 576 bytes as RFC 1812 4.3.2.3 advises):
 *   IPv4 header, 20 bytes: 0x45, TOS 0xc0 (internetwork control), total
 *     length, id 0, no fragmentation flags, TTL 64, protocol 1, header
 *     checksum, src = `src`, dst = the offending packet's source
 *   ICMP, 8 bytes: type 3 (destination unreachable), code 0 (net
 *     unreachable) or 4 (fragmentation needed and DF set), checksum over
 *     the ICMP message, 2 unused bytes (zero), then 2 bytes: zero, or the
 *     next-hop MTU for code 4 (RFC 1191 4)
 *   the offending packet from its first byte, as much as fits
 * Output, IPv6 (RFC 4443, at most 1280 bytes, the IPv6 minimum MTU):
 *   IPv6 header, 40 bytes: version 6, class/flow 0, payload length, next
 *     header 58, hop limit 64, src, dst as above
 *   ICMPv6, 8 bytes: type 1 code 0 (no route) or type 2 code 0 (packet too
 *     big), checksum over the pseudo-header (src, dst, length, 58) and the
 *     message, 4 bytes: zero, or the MTU for type 2 (RFC 4443 3.2)
 *   the offending packet, as much as fits
 *
 * No error is generated (return 0) for: a malformed packet, an ICMP error
 * (v4 types 3, 4, 5, 11, 12; ICMPv6 types < 128), a non-first fragment, a
 * source that is unspecified, multicast or (v4) limited broadcast, or a
 * multicast / broadcast destination (RFC 1122 3.2.2, RFC 4443 2.4 (e)) —
 * except that packet too big answers a multicast destination too (RFC 4443
 * 2.4 (e.2): multicast path MTU discovery needs it). Whether an IPv4
 * packet has DF set is the caller's question (without DF the engines send
 * it on and the kernel fragments the outer datagram).
 * `out` may be the buffer holding `orig`. -EINVAL: NULL pointers, `src` of
 * the other family, an unknown kind, or a too-big MTU of 0 or one that does
 * not fit the field (v4: > 65535); -ENOSPC: cap too small for headers plus
 * 8 bytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "userlay.h"
#include "be.h"

#define PROTO_ICMP 1
#define PROTO_FRAG6 44
#define PROTO_ICMP6 58

/* What a message is in one family. */
struct kind {
  uint8_t type, code;
};

/* What the two families differ in; one code path uses it. */
struct family {
  size_t hdr;     /* IP header length of the error we write */
  size_t limit;   /* largest error packet */
  size_t addr_off, addr_len; /* source address offset; dst follows it */
  uint8_t proto;  /* ICMP protocol number */
  struct kind kinds[2]; /* by enum ul_icmp_kind */
  size_t mtu_off, mtu_len; /* the MTU field inside the ICMP header */
};

static const struct family V4 = {20, 576, 12, 4, PROTO_ICMP,
                                 {{3, 0}, {3, 4}}, 6, 2};
static const struct family V6 = {40, 1280, 8, 16, PROTO_ICMP6,
                                 {{1, 0}, {2, 0}}, 4, 4};

/* May this address be the source of a packet we answer? Destination? */
static int addr_is_special(const uint8_t *a, unsigned version) {
  if (version == 4) {
    uint32_t v = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) |
                 ((uint32_t)a[2] << 8) | a[3];
    return v == 0 || v == 0xffffffffu || (a[0] & 0xf0) == 0xe0;
  }
  static const uint8_t zero[16];
  return a[0] == 0xff || memcmp(a, zero, 16) == 0;
}

/* Is the ICMP message type `type` an error message? */
static int icmp_is_error(unsigned version, uint8_t type) {
  if (version == 6) return type < 128;
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/*
 * Checks the offending packet. Returns its length from its own header (the
 * part we may quote), or 0 when no error must be sent.
 */
static size_t check_orig(const uint8_t *p, size_t len, unsigned version,
                         enum ul_icmp_kind kind) {
  size_t tot, l4_off;
  uint8_t proto;
  if (version == 4) {
    if (len < 20) return 0;
    l4_off = (size_t)(p[0] & 0x0f) * 4;
    tot = load_be16(p + 2);
    if (l4_off < 20 || tot < l4_off || tot > len) return 0;
    if ((load_be16(p + 6) & 0x1fff) != 0) return 0; /* not the first fragment */
    proto = p[9];
  } else {
    if (len < 40) return 0;
    tot = 40 + (size_t)load_be16(p + 4);
    if (tot > len) return 0;
    l4_off = 40;
    proto = p[6];
    if (proto == PROTO_FRAG6) {
      if (tot < 48) return 0;
      if ((load_be16(p + 42) & 0xfff8) != 0) return 0; /* not the first */
      proto = p[40];
      l4_off = 48;
    }
  }
  const struct family *f = version == 4 ? &V4 : &V6;
  bool any_dst = version == 6 && kind == UL_ICMP_TOO_BIG; /* RFC 4443 2.4 (e.2) */
  if (addr_is_special(p + f->addr_off, version) ||
      (!any_dst && addr_is_special(p + f->addr_off + f->addr_len, version)))
    return 0;
  if (proto == f->proto) {
    if (l4_off >= tot) return 0; /* ICMP without a type: malformed */
    if (icmp_is_error(version, p[l4_off])) return 0;
  }
  return tot;
}

int ul_icmp_error(const uint8_t *orig, size_t orig_len,
                  const struct ul_addr *src, enum ul_icmp_kind kind,
                  uint32_t mtu, uint8_t *out, size_t cap) {
  if (orig == NULL || src == NULL || out == NULL) return -EINVAL;
  if (kind != UL_ICMP_NO_ROUTE && kind != UL_ICMP_TOO_BIG) return -EINVAL;
  if (orig_len == 0) return 0;
  unsigned version = orig[0] >> 4;
  if (version != 4 && version != 6) return 0;
  if (src->family != version) return -EINVAL;
  const struct family *f = version == 4 ? &V4 : &V6;
  if (kind == UL_ICMP_TOO_BIG &&
      (mtu == 0 || (f->mtu_len == 2 && mtu > 0xffff)))
    return -EINVAL;
  size_t tot = check_orig(orig, orig_len, version, kind);
  if (tot == 0) return 0;

  size_t head = f->hdr + 8;
  size_t quote = tot < f->limit - head ? tot : f->limit - head;
  size_t min_quote = tot < head ? tot : head; /* at least an IP header + 8 */
  if (cap < head + min_quote) return -ENOSPC;
  if (quote > cap - head) quote = cap - head;
  size_t total = head + quote;
  size_t icmp_len = 8 + quote;

  /* out may alias orig (in-place answer): save the address, then move the
   * quote before writing the headers over it. */
  uint8_t orig_src[16];
  memcpy(orig_src, orig + f->addr_off, f->addr_len);
  memmove(out + head, orig, quote);
  memset(out, 0, head);
  uint8_t *ip = out, *icmp = out + f->hdr;
  if (version == 4) {
    ip[0] = 0x45;
    ip[1] = 0xc0;
    store_be16(ip + 2, (uint16_t)total);
    ip[8] = 64;
    ip[9] = PROTO_ICMP;
  } else {
    ip[0] = 0x60;
    store_be16(ip + 4, (uint16_t)icmp_len);
    ip[6] = PROTO_ICMP6;
    ip[7] = 64;
  }
  memcpy(ip + f->addr_off, src->bytes, f->addr_len);
  memcpy(ip + f->addr_off + f->addr_len, orig_src, f->addr_len);
  if (version == 4) store_be16(ip + 10, ul_csum_fold(ul_csum_partial(ip, 20, 0)));

  icmp[0] = f->kinds[kind].type;
  icmp[1] = f->kinds[kind].code;
  if (kind == UL_ICMP_TOO_BIG) {
    if (f->mtu_len == 2)
      store_be16(icmp + f->mtu_off, (uint16_t)mtu);
    else
      store_be32(icmp + f->mtu_off, mtu);
  }
  uint32_t sum = 0;
  if (version == 6) /* pseudo-header: addresses, length, next header */
    sum = ul_csum_pseudo(ip, PROTO_ICMP6, icmp_len);
  store_be16(icmp + 2, ul_csum_fold(ul_csum_partial(icmp, icmp_len, sum)));
  return (int)total;
}

int ul_icmp_unreach(const uint8_t *orig, size_t orig_len,
                    const struct ul_addr *src, uint8_t *out, size_t cap) {
  return ul_icmp_error(orig, orig_len, src, UL_ICMP_NO_ROUTE, 0, out, cap);
}
