/*
 * test-icmp.c — destination-unreachable and too-big messages (IPv4
 * fragmentation needed, ICMPv6 packet too big) for IPv4 and IPv6: header
 * fields, addresses, MTU field, checksums (also against a checksum written
 * here, independent of csum.c), quote limits, and the packets that must not
 * be answered.
 */
#include <errno.h>
#include <stdio.h>

#include "check.h"
#include "snap.h"

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t load32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

/* An IP packet of `len` bytes from src to dst carrying `proto` whose first
 * payload byte is `first`. */
static void mk(uint8_t *p, size_t len, const char *src, const char *dst,
               uint8_t proto, uint8_t first) {
  struct ul_addr s = addr(src), d = addr(dst);
  memset(p, 0, len);
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i * 13);
  if (s.family == 4) {
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)len);
    p[8] = 64;
    p[9] = proto;
    memcpy(p + 12, s.bytes, 4);
    memcpy(p + 16, d.bytes, 4);
    put16(p + 10, ul_csum_fold(ul_csum_partial(p, 20, 0)));
    p[20] = first;
  } else {
    memset(p, 0, 40);
    p[0] = 0x60;
    put16(p + 4, (uint16_t)(len - 40));
    p[6] = proto;
    p[7] = 64;
    memcpy(p + 8, s.bytes, 16);
    memcpy(p + 24, d.bytes, 16);
    p[40] = first;
  }
}

/* Does an ICMP(v6) message verify? v6 includes the pseudo-header. */
static int icmp_verifies(const uint8_t *out, size_t len) {
  if (out[0] >> 4 == 4) {
    if (ul_csum_fold(ul_csum_partial(out, 20, 0)) != 0) return 0;
    return ul_csum_fold(ul_csum_partial(out + 20, len - 20, 0)) == 0;
  }
  uint32_t sum = ul_csum_partial(out + 8, 32, 0) + (uint32_t)(len - 40) + 58;
  return ul_csum_fold(ul_csum_partial(out + 40, len - 40, sum)) == 0;
}

/* RFC 1071 one's-complement sum of 16-bit words, written out here without
 * csum.c: the 16-bit sum over data (odd tail padded with zero) and `init`. */
static uint16_t sum16(const uint8_t *data, size_t len, uint64_t init) {
  uint64_t acc = init;
  for (size_t i = 0; i + 1 < len; i += 2) acc += (uint64_t)data[i] << 8 | data[i + 1];
  if (len & 1) acc += (uint64_t)data[len - 1] << 8;
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

/* Does the ICMP(v6) message's checksum verify by sum16 (v6 with the
 * RFC 8200 8.1 pseudo-header: addresses, upper-layer length, next header)? */
static int icmp_verifies_independently(const uint8_t *out, size_t len) {
  if (out[0] >> 4 == 4)
    return sum16(out, 20, 0) == 0xffff && sum16(out + 20, len - 20, 0) == 0xffff;
  uint64_t pseudo = sum16(out + 8, 32, 0) + (uint64_t)(len - 40) + 58;
  return sum16(out + 40, len - 40, pseudo) == 0xffff;
}

/* One expected header field: `len` (1, 2 or 4) bytes at `off`, big-endian. */
struct field {
  size_t off, len;
  uint32_t want;
};

/* Check an error message field by field (table), then that it comes from
 * `me` to `client` (addresses at addr_off, addr_len bytes each), quotes
 * orig[0..quote) after its `head` bytes of headers, and that its checksums
 * verify independently (and by csum.c) and stop verifying when `flip` is
 * changed. */
static void check_message(uint8_t *out, int n, const struct field *fields, size_t nf,
                          size_t addr_off, size_t addr_len, const struct ul_addr *me,
                          const struct ul_addr *client, const uint8_t *orig,
                          size_t head, size_t quote, size_t flip) {
  if (n <= 0) return;
  for (size_t i = 0; i < nf; i++) {
    const struct field *f = &fields[i];
    uint32_t got = f->len == 1 ? out[f->off] : f->len == 2 ? get16(out + f->off) : load32(out + f->off);
    if (got != f->want) fprintf(stderr, "field at %zu: %u, want %u\n", f->off, got, f->want);
    CHECK_EQ(got, f->want);
  }
  CHECK(memcmp(out + addr_off, me->bytes, addr_len) == 0);
  CHECK(memcmp(out + addr_off + addr_len, client->bytes, addr_len) == 0);
  CHECK(memcmp(out + head, orig, quote) == 0);
  CHECK(icmp_verifies_independently(out, (size_t)n));
  CHECK(icmp_verifies(out, (size_t)n));
  out[flip] ^= 1; /* the independent check can fail */
  CHECK(!icmp_verifies_independently(out, (size_t)n));
  out[flip] ^= 1;
}

/* Too big, IPv4: type 3 code 4, unused 16 bits, next-hop MTU (RFC 1191 4),
 * the packet quoted; the header exactly as for no route. */
static void test_too_big_v4(void) {
  uint8_t orig[1500], out[2048];
  struct ul_addr me = addr("198.19.1.0"), client = addr("198.19.1.2");
  static const struct field v4[] = {
      {0, 1, 0x45}, {1, 1, 0xc0}, {2, 2, 576}, {6, 2, 0} /* no fragmentation flags */,
      {8, 1, 64}, {9, 1, 1}, {20, 1, 3}, {21, 1, 4}, {24, 2, 0}, {26, 2, 1450},
  };
  mk(orig, 1400, "198.19.1.2", "198.19.9.9", 6, 0);
  orig[6] = 0x40; /* DF */
  int n = ul_icmp_error(orig, 1400, &me, UL_ICMP_TOO_BIG, 1450, out, sizeof out);
  CHECK_EQ(n, 576);
  check_message(out, n, v4, sizeof v4 / sizeof v4[0], 12, 4, &me, &client, orig, 28, 576 - 28, 27);

  /* The MTU field holds 16 bits: larger (and 0) is refused. */
  CHECK_EQ(ul_icmp_error(orig, 1400, &me, UL_ICMP_TOO_BIG, 65536, out, sizeof out), -EINVAL);
  CHECK_EQ(ul_icmp_error(orig, 1400, &me, UL_ICMP_TOO_BIG, 0, out, sizeof out), -EINVAL);
  CHECK_EQ(ul_icmp_error(orig, 1400, &me, (enum ul_icmp_kind)2, 1450, out, sizeof out), -EINVAL);
  /* Still not for a multicast destination in IPv4 (RFC 1122 3.2.2). */
  mk(orig, 1400, "198.19.1.2", "239.1.2.3", 17, 0);
  CHECK_EQ(ul_icmp_error(orig, 1400, &me, UL_ICMP_TOO_BIG, 1450, out, sizeof out), 0);
  /* Nor for an ICMP error. */
  mk(orig, 1400, "198.19.1.2", "198.19.9.9", 1, 3);
  CHECK_EQ(ul_icmp_error(orig, 1400, &me, UL_ICMP_TOO_BIG, 1450, out, sizeof out), 0);
}

/* Too big, IPv6: type 2 code 0, 32-bit MTU (RFC 4443 3.2), quoted up to
 * 1280 bytes; answered for a multicast destination too (2.4 (e.2)). */
static void test_too_big_v6(void) {
  uint8_t orig[1500], out[2048];
  struct ul_addr me = addr("2001:2:0:101::"), client = addr("2001:2:0:101::2");
  static const struct field v6[] = {
      {0, 4, 0x60000000u} /* version, class, flow */, {4, 2, 1280 - 40}, {6, 1, 58}, {7, 1, 64},
      {40, 1, 2}, {41, 1, 0}, {44, 4, 1430},
  };
  mk(orig, 1500, "2001:2:0:101::2", "2001:2:0:102::2", 6, 0);
  int n = ul_icmp_error(orig, 1500, &me, UL_ICMP_TOO_BIG, 1430, out, sizeof out);
  CHECK_EQ(n, 1280);
  check_message(out, n, v6, sizeof v6 / sizeof v6[0], 8, 16, &me, &client, orig, 48, 1280 - 48, 46);

  /* A 32-bit field: values above 65535 are carried whole. */
  n = ul_icmp_error(orig, 1500, &me, UL_ICMP_TOO_BIG, 70000, out, sizeof out);
  CHECK_EQ(n, 1280);
  CHECK_EQ(get16(out + 44), 70000 >> 16);
  CHECK_EQ(get16(out + 46), 70000 & 0xffff);
  /* Multicast destination: answered (unlike no route). */
  mk(orig, 1500, "2001:2:0:101::2", "ff0e::1", 17, 0);
  CHECK(ul_icmp_error(orig, 1500, &me, UL_ICMP_TOO_BIG, 1430, out, sizeof out) > 0);
  CHECK_EQ(ul_icmp_error(orig, 1500, &me, UL_ICMP_NO_ROUTE, 0, out, sizeof out), 0);
  /* Not for a multicast source, nor for an ICMPv6 error. */
  mk(orig, 1500, "ff0e::1", "2001:2:0:102::2", 17, 0);
  CHECK_EQ(ul_icmp_error(orig, 1500, &me, UL_ICMP_TOO_BIG, 1430, out, sizeof out), 0);
  mk(orig, 1500, "2001:2:0:101::2", "2001:2:0:102::2", 58, 2);
  CHECK_EQ(ul_icmp_error(orig, 1500, &me, UL_ICMP_TOO_BIG, 1430, out, sizeof out), 0);

  /* No route through the same path: type 1, zero where the MTU would be. */
  mk(orig, 100, "2001:2:0:101::2", "2001:2:0:102::2", 17, 0);
  n = ul_icmp_error(orig, 100, &me, UL_ICMP_NO_ROUTE, 0, out, sizeof out);
  CHECK_EQ(n, 148);
  CHECK_EQ(out[40], 1);
  CHECK_EQ(load32(out + 44), 0);
  CHECK(n > 0 && icmp_verifies_independently(out, (size_t)n));
}

static void test_v4(void) {
  uint8_t orig[1500], out[2048];
  struct ul_addr me = addr("198.19.1.0"), client = addr("198.19.1.2"),
                 far = addr("198.19.9.9");
  mk(orig, 60, "198.19.1.2", "198.19.9.9", 6, 0);
  int n = ul_icmp_unreach(orig, 60, &me, out, sizeof out);
  CHECK_EQ(n, 20 + 8 + 60);
  if (n <= 0) return;
  CHECK_EQ(out[0], 0x45);
  CHECK_EQ(get16(out + 2), n);
  CHECK_EQ(out[9], 1);
  CHECK(out[8] > 0);
  CHECK(memcmp(out + 12, me.bytes, 4) == 0);
  CHECK(memcmp(out + 16, client.bytes, 4) == 0);
  CHECK_EQ(out[20], 3);
  CHECK_EQ(out[21], 0);
  CHECK(icmp_verifies(out, (size_t)n));
  CHECK(icmp_verifies_independently(out, (size_t)n));
  CHECK_EQ(load32(out + 24), 0); /* unused */
  CHECK(memcmp(out + 28, orig, 60) == 0);
  CHECK(memcmp(out + 28 + 16, far.bytes, 4) == 0); /* quoted dst */

  /* Quote limit: 576 bytes in all. */
  mk(orig, 1400, "198.19.1.2", "198.19.9.9", 17, 0);
  n = ul_icmp_unreach(orig, 1400, &me, out, sizeof out);
  CHECK_EQ(n, 576);
  CHECK(n > 0 && icmp_verifies(out, (size_t)n));
  CHECK(memcmp(out + 28, orig, 576 - 28) == 0);
  /* Padding after the packet's own length is not quoted. */
  mk(orig, 40, "198.19.1.2", "198.19.9.9", 17, 0);
  n = ul_icmp_unreach(orig, 46, &me, out, sizeof out);
  CHECK_EQ(n, 28 + 40);
  /* A smaller buffer truncates the quote; too small fails. */
  mk(orig, 1400, "198.19.1.2", "198.19.9.9", 17, 0);
  n = ul_icmp_unreach(orig, 1400, &me, out, 100);
  CHECK_EQ(n, 100);
  CHECK(n > 0 && icmp_verifies(out, (size_t)n));
  CHECK_EQ(ul_icmp_unreach(orig, 1400, &me, out, 55), -ENOSPC);
  struct ul_addr me6 = addr("2001:2:0:101::");
  CHECK_EQ(ul_icmp_unreach(orig, 1400, &me6, out, sizeof out), -EINVAL);
  CHECK_EQ(ul_icmp_unreach(NULL, 1400, &me, out, sizeof out), -EINVAL);

  /* In place: the answer overwrites the packet it answers. */
  uint8_t buf[2048];
  mk(buf, 100, "198.19.1.2", "198.19.9.9", 6, 0);
  memcpy(orig, buf, 100);
  n = ul_icmp_unreach(buf, 100, &me, buf, sizeof buf);
  CHECK_EQ(n, 128);
  CHECK(memcmp(buf + 16, client.bytes, 4) == 0);
  CHECK(memcmp(buf + 28, orig, 100) == 0);
  CHECK(n > 0 && icmp_verifies(buf, (size_t)n));
}

static void test_v6(void) {
  uint8_t orig[1500], out[2048];
  struct ul_addr me = addr("2001:2:0:101::"), client = addr("2001:2:0:101::2");
  mk(orig, 100, "2001:2:0:101::2", "2001:2:0:109::9", 17, 0);
  int n = ul_icmp_unreach(orig, 100, &me, out, sizeof out);
  CHECK_EQ(n, 40 + 8 + 100);
  if (n <= 0) return;
  CHECK_EQ(out[0] >> 4, 6);
  CHECK_EQ(get16(out + 4), n - 40);
  CHECK_EQ(out[6], 58);
  CHECK(out[7] > 0);
  CHECK(memcmp(out + 8, me.bytes, 16) == 0);
  CHECK(memcmp(out + 24, client.bytes, 16) == 0);
  CHECK_EQ(out[40], 1);
  CHECK_EQ(out[41], 0);
  CHECK(icmp_verifies(out, (size_t)n));
  CHECK(memcmp(out + 48, orig, 100) == 0);
  out[50] ^= 1; /* the check above can fail */
  CHECK(!icmp_verifies(out, (size_t)n));

  mk(orig, 1500, "2001:2:0:101::2", "2001:2:0:109::9", 6, 0);
  n = ul_icmp_unreach(orig, 1500, &me, out, sizeof out);
  CHECK_EQ(n, 1280);
  CHECK(n > 0 && icmp_verifies(out, (size_t)n));
  CHECK(memcmp(out + 48, orig, 1280 - 48) == 0);
  struct ul_addr me4 = addr("198.19.1.0");
  CHECK_EQ(ul_icmp_unreach(orig, 1500, &me4, out, sizeof out), -EINVAL);
}

/* Packets that must not be answered, each next to one that must. */
static void test_no_error(void) {
  uint8_t p[200], out[2048];
  struct ul_addr me4 = addr("198.19.1.0"), me6 = addr("2001:2:0:101::");
  static const struct {
    const char *src, *dst;
    uint8_t proto, first;
    int answer;
  } cases[] = {
      {"198.19.1.2", "198.19.9.9", 1, 8, 1},   /* echo request: answer */
      {"198.19.1.2", "198.19.9.9", 1, 0, 1},   /* echo reply */
      {"198.19.1.2", "198.19.9.9", 1, 3, 0},   /* dest unreachable */
      {"198.19.1.2", "198.19.9.9", 1, 4, 0},   /* source quench */
      {"198.19.1.2", "198.19.9.9", 1, 5, 0},   /* redirect */
      {"198.19.1.2", "198.19.9.9", 1, 11, 0},  /* time exceeded */
      {"198.19.1.2", "198.19.9.9", 1, 12, 0},  /* parameter problem */
      {"224.0.0.5", "198.19.9.9", 17, 0, 0},   /* multicast source */
      {"0.0.0.0", "198.19.9.9", 17, 0, 0},     /* unspecified source */
      {"255.255.255.255", "198.19.9.9", 17, 0, 0},
      {"198.19.1.2", "239.1.2.3", 17, 0, 0},   /* multicast destination */
      {"198.19.1.2", "255.255.255.255", 17, 0, 0},
      {"2001:2:0:101::2", "2001:2:0:109::9", 58, 128, 1}, /* echo request */
      {"2001:2:0:101::2", "2001:2:0:109::9", 58, 1, 0},   /* dest unreachable */
      {"2001:2:0:101::2", "2001:2:0:109::9", 58, 2, 0},   /* packet too big */
      {"2001:2:0:101::2", "2001:2:0:109::9", 58, 127, 0},
      {"ff02::1", "2001:2:0:109::9", 17, 0, 0},
      {"::", "2001:2:0:109::9", 17, 0, 0},
      {"2001:2:0:101::2", "ff02::1", 17, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mk(p, sizeof p, cases[i].src, cases[i].dst, cases[i].proto, cases[i].first);
    const struct ul_addr *me = p[0] >> 4 == 4 ? &me4 : &me6;
    int n = ul_icmp_unreach(p, sizeof p, me, out, sizeof out);
    if ((n > 0) != cases[i].answer)
      fprintf(stderr, "case %zu: %s -> %s got %d\n", i, cases[i].src, cases[i].dst, n);
    CHECK_EQ(n > 0, cases[i].answer);
    CHECK(n >= 0);
  }

  /* v4 fragments: the first one is answered, later ones are not. */
  mk(p, sizeof p, "198.19.1.2", "198.19.9.9", 17, 0);
  p[6] = 0x20; /* MF, offset 0 */
  CHECK(ul_icmp_unreach(p, sizeof p, &me4, out, sizeof out) > 0);
  p[7] = 0x10; /* offset 128 */
  CHECK_EQ(ul_icmp_unreach(p, sizeof p, &me4, out, sizeof out), 0);
  /* v6 fragment header */
  mk(p, sizeof p, "2001:2:0:101::2", "2001:2:0:109::9", 44, 17);
  put16(p + 42, 0x0001); /* offset 0, M */
  CHECK(ul_icmp_unreach(p, sizeof p, &me6, out, sizeof out) > 0);
  put16(p + 42, 0x0101); /* offset 32 */
  CHECK_EQ(ul_icmp_unreach(p, sizeof p, &me6, out, sizeof out), 0);
  mk(p, sizeof p, "2001:2:0:101::2", "2001:2:0:109::9", 44, 58);
  p[48] = 1; /* first fragment of an ICMPv6 error */
  CHECK_EQ(ul_icmp_unreach(p, sizeof p, &me6, out, sizeof out), 0);

  /* Malformed: truncated, bad IHL, bad version, empty. */
  mk(p, sizeof p, "198.19.1.2", "198.19.9.9", 17, 0);
  CHECK_EQ(ul_icmp_unreach(p, sizeof p - 1, &me4, out, sizeof out), 0);
  CHECK_EQ(ul_icmp_unreach(p, 19, &me4, out, sizeof out), 0);
  p[0] = 0x44;
  CHECK_EQ(ul_icmp_unreach(p, sizeof p, &me4, out, sizeof out), 0);
  p[0] = 0x75;
  CHECK_EQ(ul_icmp_unreach(p, sizeof p, &me4, out, sizeof out), 0);
  CHECK_EQ(ul_icmp_unreach(p, 0, &me4, out, sizeof out), 0);
  mk(p, sizeof p, "2001:2:0:101::2", "2001:2:0:109::9", 17, 0);
  CHECK_EQ(ul_icmp_unreach(p, 39, &me6, out, sizeof out), 0);
  CHECK_EQ(ul_icmp_unreach(p, sizeof p - 1, &me6, out, sizeof out), 0);
}

int main(void) {
  test_v4();
  test_v6();
  test_no_error();
  test_too_big_v4();
  test_too_big_v6();
  return CHECK_DONE();
}
