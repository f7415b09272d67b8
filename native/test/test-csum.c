/*
 * test-csum.c — RFC 1071 sums, detection of a partial (pseudo-header only)
 * TCP/UDP checksum on receive, and completion of a NEEDS_CSUM packet on
 * transmit. A naive 16-bit reference sum checks the optimised one.
 */
#include <stdio.h>

#include "check.h"
#include "snap.h"

/* Reference: one's-complement sum of big-endian 16-bit words, folded. */
static uint16_t ref_fold(const uint8_t *p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void test_rfc1071(void) {
  /* RFC 1071 section 3 example: sum 0x2ddf0, folded 0xddf2. */
  static const uint8_t d[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK_EQ(ul_csum_fold(ul_csum_partial(d, 8, 0)), (uint16_t)~0xddf2);
  CHECK_EQ(ul_csum_fold(ul_csum_partial(d + 4, 4, ul_csum_partial(d, 4, 0))),
           (uint16_t)~0xddf2);
  CHECK_EQ(ul_csum_fold(ul_csum_partial(d, 2, ul_csum_partial(d + 2, 6, 0))),
           (uint16_t)~0xddf2); /* order does not matter at even offsets */
  static const uint8_t odd[3] = {0x12, 0x34, 0x56};
  CHECK_EQ(ul_csum_fold(ul_csum_partial(odd, 3, 0)), (uint16_t)~(0x1234 + 0x5600));
  CHECK_EQ(ul_csum_fold(0), 0xffff);
  /* A large buffer against the reference, carries included. */
  static uint8_t big[65535];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(0xff - i * 7);
  CHECK_EQ(ul_csum_fold(ul_csum_partial(big, sizeof big, 0xfffffff0u)),
           (uint16_t)~ref_fold(big, sizeof big, 0xfff0)); /* == 0xfffffff0 mod 0xffff */
  CHECK_EQ((uint16_t)~ul_csum_fold(ul_csum_partial(big, sizeof big, 0)),
           ref_fold(big, sizeof big, 0));
}

/* The bulk path (32-byte rounds in host order) against the reference: every
 * length 0..300 at every start offset 0..7 (unaligned loads), buffers of
 * all-0xff bytes (the largest carries), all zeros, and a 64 KiB buffer split
 * into two chained pieces at every even offset in the first 100 bytes. */
static void test_bulk_against_reference(void) {
  static uint8_t buf[65536 + 8];
  uint32_t x = 2463534242u; /* xorshift32: reproducible bytes */
  for (size_t i = 0; i < sizeof buf; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (uint8_t)x;
  }
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len <= 300; len++)
      CHECK_EQ((uint16_t)~ul_csum_fold(ul_csum_partial(buf + off, len, 0x1234)),
               ref_fold(buf + off, len, 0x1234));
  static uint8_t ones[4096], zeros[4096];
  memset(ones, 0xff, sizeof ones);
  CHECK_EQ((uint16_t)~ul_csum_fold(ul_csum_partial(ones, sizeof ones, 0)), ref_fold(ones, sizeof ones, 0));
  CHECK_EQ(ul_csum_partial(zeros, sizeof zeros, 0), 0u); /* zeros sum to 0, never 0xffff */
  CHECK_EQ(ul_csum_partial(ones, 64, 0) != 0, 1);
  uint16_t whole = ref_fold(buf + 1, 65536, 0);
  for (size_t cut = 0; cut < 100; cut += 2)
    CHECK_EQ((uint16_t)~ul_csum_fold(ul_csum_partial(buf + 1 + cut, 65536 - cut, ul_csum_partial(buf + 1, cut, 0))),
             whole);
}

/* Build an IPv4/TCP or IPv6/UDP packet with payload; returns its length and
 * the offset of the L4 header in *l4. Checksum field left zero. */
static size_t build(uint8_t *p, int v6, size_t payload, size_t *l4) {
  memset(p, 0, 2048);
  size_t ip_hdr = v6 ? 40 : 20, l4_hdr = v6 ? 8 : 20;
  size_t l4_len = l4_hdr + payload, tot = ip_hdr + l4_len;
  if (v6) {
    p[0] = 0x60;
    put16(p + 4, (uint16_t)l4_len);
    p[6] = 17;
    p[7] = 64;
    struct ul_addr s = addr("2001:2:0:101::2"), d = addr("2001:2:0:102::2");
    memcpy(p + 8, s.bytes, 16);
    memcpy(p + 24, d.bytes, 16);
    put16(p + 40, 40000);
    put16(p + 42, 5201);
    put16(p + 44, (uint16_t)l4_len);
  } else {
    p[0] = 0x45;
    put16(p + 2, (uint16_t)tot);
    p[8] = 64;
    p[9] = 6;
    struct ul_addr s = addr("198.19.1.2"), d = addr("198.19.2.2");
    memcpy(p + 12, s.bytes, 4);
    memcpy(p + 16, d.bytes, 4);
    put16(p + 10, (uint16_t)~ref_fold(p, 20, 0));
    put16(p + 20, 40000);
    put16(p + 22, 5201);
    p[32] = 0x50; /* data offset 5 */
    p[33] = 0x18; /* PSH ACK */
    put16(p + 34, 512);
  }
  for (size_t i = 0; i < payload; i++) p[ip_hdr + l4_hdr + i] = (uint8_t)('a' + i % 26);
  *l4 = ip_hdr;
  return tot;
}

/* The reference pseudo-header sum (folded, not complemented). */
static uint16_t ref_pseudo(const uint8_t *p, int v6, size_t l4_len) {
  uint32_t sum = v6 ? ref_fold(p + 8, 32, 0) : ref_fold(p + 12, 8, 0);
  sum += (uint32_t)(v6 ? 17 : 6) + (uint32_t)l4_len;
  return ref_fold(NULL, 0, sum);
}

static void test_rx_tx(int v6, size_t payload) {
  uint8_t p[2048], q[2048];
  size_t l4;
  size_t len = build(p, v6, payload, &l4);
  size_t csum_at = l4 + (v6 ? 6 : 16), l4_len = len - l4;
  uint16_t pseudo = ref_pseudo(p, v6, l4_len);
  put16(p + csum_at, 0);
  uint16_t good = (uint16_t)~ref_fold(p + l4, l4_len, pseudo);
  struct ul_vnet_hdr vh;

  /* Correct checksum: nothing to do. */
  put16(p + csum_at, good);
  CHECK_EQ(ref_fold(p + l4, l4_len, pseudo), 0xffff); /* the test's own packet verifies */
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  CHECK_EQ(vh.flags, 0);

  /* Partial checksum (what a CHECKSUM_PARTIAL sender leaves): complete it. */
  put16(p + csum_at, pseudo);
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 1);
  CHECK_EQ(vh.flags, UL_VNET_F_NEEDS_CSUM);
  CHECK_EQ(vh.gso_type, 0);
  CHECK_EQ(vh.csum_start, l4);
  CHECK_EQ(vh.csum_offset, v6 ? 6 : 16);
  /* ... which is exactly what the kernel does with it, and apply_tx too. */
  memcpy(q, p, len);
  CHECK_EQ(ul_vnet_apply_tx(q, len, &vh), UL_OK);
  CHECK_EQ(ref_fold(q + l4, l4_len, pseudo), 0xffff);
  CHECK_EQ(get16(q + csum_at), v6 && good == 0 ? 0xffff : good); /* UDP (v6) sends 0 as 0xffff */
  CHECK(memcmp(q, p, csum_at) == 0 && memcmp(q + csum_at + 2, p + csum_at + 2, len - csum_at - 2) == 0);
  /* Trailing bytes after the IP packet (padding) are not part of it. */
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len + 7, &vh), 1);

  /* Garbage checksum: leave it to the kernel, which drops it. */
  put16(p + csum_at, (uint16_t)(good ^ 0x5a5a));
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  CHECK_EQ(vh.flags, 0);

  /* Truncated packet: no offload. */
  put16(p + csum_at, pseudo);
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len - 1, &vh), 0);
}

/* A checksum that computes to 0: TCP sends 0x0000, UDP 0xffff (0 is "none"). */
static void test_finish_zero(int v6) {
  uint8_t p[2048];
  size_t l4;
  size_t len = build(p, v6, 40, &l4);
  size_t csum_at = l4 + (v6 ? 6 : 16), l4_len = len - l4;
  uint16_t pseudo = ref_pseudo(p, v6, l4_len);
  uint32_t w;

  /* mend a payload word so that the data and the pseudo header sum to 0xffff */
  put16(p + csum_at, 0);
  w = get16(p + len - 2) + (uint32_t)(uint16_t)~ref_fold(p + l4, l4_len, pseudo);
  put16(p + len - 2, (uint16_t)((w & 0xffff) + (w >> 16)));
  CHECK_EQ(ref_fold(p + l4, l4_len, pseudo), 0xffff);
  put16(p + csum_at, pseudo);
  CHECK_EQ(ul_csum_finish(p, len, l4, v6 ? 6 : 16), UL_OK);
  CHECK_EQ(get16(p + csum_at), v6 ? 0xffff : 0x0000);
  CHECK_EQ(ref_fold(p + l4, l4_len, pseudo), 0xffff); /* both verify */
}

static void test_rx_no_offload(void) {
  uint8_t p[2048];
  size_t l4;
  struct ul_vnet_hdr vh;
  /* IPv4 fragment (MF) with a partial-looking field */
  size_t len = build(p, 0, 30, &l4);
  put16(p + l4 + 16, ref_pseudo(p, 0, len - l4));
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 1); /* control */
  p[6] = 0x20;
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  p[6] = 0x00;
  p[7] = 0x01; /* fragment offset 8 */
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  p[7] = 0;
  p[9] = 1; /* ICMP */
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  /* UDP over IPv4 with checksum 0 = no checksum */
  p[9] = 17;
  put16(p + l4 + 6, 0);
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  /* IPv6 with an extension header first (hop-by-hop) */
  len = build(p, 1, 30, &l4);
  put16(p + l4 + 6, ref_pseudo(p, 1, len - l4));
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 1); /* control */
  p[6] = 0;
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  p[6] = 17;
  p[0] = 0x50; /* version 5 */
  CHECK_EQ(ul_vnet_hdr_for_rx(p, len, &vh), 0);
  CHECK_EQ(ul_vnet_hdr_for_rx(p, 0, &vh), 0);
}

static void test_apply_tx_errors(void) {
  uint8_t p[2048], q[2048];
  size_t l4;
  size_t len = build(p, 0, 10, &l4);
  memcpy(q, p, len);
  struct ul_vnet_hdr none = {0, 0, 0, 0, 0, 0};
  CHECK_EQ(ul_vnet_apply_tx(q, len, &none), UL_OK);
  CHECK(memcmp(p, q, len) == 0); /* untouched */
  struct ul_vnet_hdr gso = {0, 1 /* TCPV4 */, 54, 1448, 0, 0};
  CHECK_EQ(ul_vnet_apply_tx(q, len, &gso), UL_DROP_TX_MALFORMED);
  struct ul_vnet_hdr beyond = {UL_VNET_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)(len - 17), 16};
  CHECK_EQ(ul_vnet_apply_tx(q, len, &beyond), UL_DROP_TX_MALFORMED);
  struct ul_vnet_hdr edge = {UL_VNET_F_NEEDS_CSUM, 0, 0, 0, (uint16_t)(len - 18), 16};
  CHECK_EQ(ul_vnet_apply_tx(q, len, &edge), UL_OK); /* field ends at len */
  struct ul_vnet_hdr huge = {UL_VNET_F_NEEDS_CSUM, 0, 0, 0, 0xffff, 0xffff};
  CHECK_EQ(ul_vnet_apply_tx(q, len, &huge), UL_DROP_TX_MALFORMED);
}

int main(void) {
  test_rfc1071();
  test_bulk_against_reference();
  test_rx_tx(0, 12);   /* TCP over IPv4 */
  test_rx_tx(1, 12);   /* UDP over IPv6 */
  test_rx_tx(0, 1401); /* odd lengths */
  test_rx_tx(1, 1);
  test_finish_zero(0); /* TCP over IPv4 */
  test_finish_zero(1); /* UDP over IPv6 */
  test_rx_no_offload();
  test_apply_tx_errors();
  return CHECK_DONE();
}
