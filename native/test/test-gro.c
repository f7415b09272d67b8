/*
 * test-gro.c — receive coalescing rules (gro.c), no privileges needed.
 *
 * Segments are built with valid checksums (gro-pkt.h), grouped by
 * ul_gro_batch(), and each super-packet is then cut apart as the kernel's
 * TCP GSO would: the pieces must equal the original segments byte for byte,
 * checksums included. Writing the groups to the TUN is test-gro-write.c.
 */
#include "../src/gro.c"
#include "../src/tun.c" /* ul_tun_tcp_gso, which gro.c calls */

#include "check.h"
#include "gro-pkt.h"

static void test_run(unsigned v)
{
  struct spec sp = full;

  sp.version = v;
  reset();
  build_run(0, 4, sp, TCP_ACK | TCP_PSH);
  ul_gro_batch(items, 4, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 4);
  CHECK_EQ(items[1].count, 0);
  CHECK_EQ(items[0].next, 1);
  CHECK_EQ(items[2].next, 3);
  CHECK_EQ(items[3].next, UL_GRO_END);
  CHECK_EQ(items[0].total, orig_len[0] + 3 * MSS);
  CHECK_EQ(items[0].vh.gso_size, MSS);
  CHECK_EQ(items[0].vh.hdr_len, (v == 4 ? 20 : 40) + 20 + TS_LEN);
  CHECK_EQ(items[0].vh.csum_start, v == 4 ? 20 : 40);
  CHECK(items[0].pkt[items[0].vh.csum_start + 13] & TCP_PSH); /* carried */
  CHECK_EQ(segment_and_compare(0), 4);
}

static void test_last_shorter(void)
{
  reset();
  build_run(0, 3, full, 0);
  build(3, (struct spec){ .seq = 1000 + 3 * MSS, .payload = 500, .ip_id = 13 });
  build(4, (struct spec){ .seq = 1000 + 3 * MSS + 500, .payload = MSS, .ip_id = 14 });
  ul_gro_batch(items, 5, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 4);
  CHECK_EQ(items[4].count, 1); /* the shorter one ended the group */
  CHECK_EQ(segment_and_compare(0), 4);

  /* larger after smaller: the gso_size is the first one's */
  reset();
  build(0, (struct spec){ .seq = 1, .payload = 700 });
  build(1, (struct spec){ .seq = 701, .payload = MSS });
  ul_gro_batch(items, 2, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
}

static void test_gap(void)
{
  reset();
  build_run(0, 2, full, 0);
  build(2, (struct spec){ .seq = 1000 + 3 * MSS, .payload = MSS }); /* lost one */
  build(3, (struct spec){ .seq = 1000 + 4 * MSS, .payload = MSS });
  build(4, (struct spec){ .seq = 1000, .payload = MSS }); /* retransmit */
  ul_gro_batch(items, 5, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 2);
  CHECK_EQ(items[2].count, 2);
  CHECK_EQ(items[4].count, 1);
}

/* A, B(flags), C, D: B stands alone and C starts a new group. */
static void test_flags(void)
{
  static const uint8_t alone[] = { TCP_ACK | TCP_FIN, TCP_ACK | TCP_SYN,
                                   TCP_ACK | TCP_RST, TCP_ACK | TCP_URG,
                                   TCP_ACK | TCP_CWR, TCP_PSH /* no ACK */ };
  size_t k;

  for (k = 0; k < sizeof(alone); k++) {
    int i;
    reset();
    for (i = 0; i < 4; i++)
      build(i, (struct spec){ .seq = 1000 + (uint32_t)i * MSS, .payload = MSS,
                              .flags = i == 1 ? alone[k] : TCP_ACK });
    ul_gro_batch(items, 4, 1500, UL_GRO_TCP);
    CHECK_EQ(items[0].count, 1);
    CHECK_EQ(items[1].count, 1);
    CHECK_EQ(items[2].count, 2);
    CHECK(memcmp(items[1].pkt, orig[1], orig_len[1]) == 0);
    if (memcmp(items[1].pkt, orig[1], orig_len[1]) != 0) fprintf(stderr, "DBG i=%d\n", i); /* untouched */
  }

  /* PSH in the middle ends the group after it */
  reset();
  build_run(0, 2, full, TCP_ACK | TCP_PSH);
  build_run(2, 2, (struct spec){ .seq = 1000 + 2 * MSS, .payload = MSS, .ip_id = 12 }, 0);
  ul_gro_batch(items, 4, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 2);
  CHECK_EQ(items[2].count, 2);
  CHECK_EQ(segment_and_compare(0), 2);
  CHECK_EQ(segment_and_compare(2), 2);

  /* ECE: equal on all merges, a change breaks */
  reset();
  build_run(0, 2, (struct spec){ .seq = 1, .payload = MSS, .flags = TCP_ACK | 0x40 }, 0);
  build(2, (struct spec){ .seq = 1 + 2 * MSS, .payload = MSS });
  ul_gro_batch(items, 3, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 2);
  CHECK_EQ(items[2].count, 1);

  /* a pure ACK stands alone */
  reset();
  build(0, (struct spec){ .seq = 1, .payload = 0 });
  build(1, (struct spec){ .seq = 1, .payload = 0 });
  ul_gro_batch(items, 2, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
}

/* Header fields that must match the first segment. */
static void test_header_breaks(void)
{
  struct spec second[] = {
    { .tsval = 1 }, { .ack = 5 }, { .window = 501 }, { .ttl = 63 },
    { .tos = 4 }, { .no_df = 1 }, { .sport = 40001 },
  };
  size_t k;

  for (k = 0; k < sizeof(second) / sizeof(second[0]); k++) {
    struct spec s = second[k];
    reset();
    build(0, full);
    s.seq = full.seq + MSS;
    s.payload = MSS;
    build(1, s);
    ul_gro_batch(items, 2, 1500, UL_GRO_TCP);
    CHECK_EQ(items[0].count, 1);
    CHECK_EQ(items[1].count, 1);
  }
  /* IPv6 flow label */
  reset();
  build(0, (struct spec){ .version = 6, .seq = 1, .payload = MSS });
  build(1, (struct spec){ .version = 6, .seq = 1 + MSS, .payload = MSS });
  bufs[1][HEADROOM + 3] = 9;
  ul_gro_batch(items, 2, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);

  /* the reserved IPv4 flag (RFC 3514's evil bit): stands alone */
  reset();
  build_run(0, 3, (struct spec){ .seq = 1, .payload = MSS }, 0);
  bufs[1][HEADROOM + 6] |= 0x80;
  put16(bufs[1] + HEADROOM + 10, 0);
  put16(bufs[1] + HEADROOM + 10, ul_csum_fold(ul_csum_partial(bufs[1] + HEADROOM, 20, 0)));
  ul_gro_batch(items, 3, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
  CHECK_EQ(items[2].count, 1);

  /* IPv4 options: stands alone */
  reset();
  build_run(0, 2, (struct spec){ .seq = 1, .payload = MSS, .ip_options = 1 }, 0);
  ul_gro_batch(items, 2, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
}

/* Interleaved flows each coalesce; non-TCP and absent packets are skipped.
 * (IPv4 IDs run per flow so that the cut pieces equal the originals.) */
static void test_flows(void)
{
  reset();
  build(0, (struct spec){ .seq = 1, .payload = MSS, .sport = 1 });
  build(1, (struct spec){ .seq = 9, .payload = MSS, .sport = 2 });
  build(2, (struct spec){ .seq = 1, .payload = 100, .udp = 1 });
  build(3, (struct spec){ .seq = 1 + MSS, .payload = MSS, .sport = 1, .ip_id = 1 });
  build(4, (struct spec){ .seq = 9 + MSS, .payload = MSS, .sport = 2, .ip_id = 1 });
  items[5].pkt = NULL; /* a dropped slot */
  build(6, (struct spec){ .seq = 1 + 2 * MSS, .payload = MSS, .sport = 1, .ip_id = 2 });
  ul_gro_batch(items, 7, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(items[0].next, 3);
  CHECK_EQ(items[3].next, 6);
  CHECK_EQ(items[1].count, 2);
  CHECK_EQ(items[1].next, 4);
  CHECK_EQ(items[2].count, 1);
  CHECK_EQ(items[5].count, 0);
  CHECK_EQ(segment_and_compare(1), 2);
  CHECK_EQ(segment_and_compare(0), 3);
}

static void test_max_size(void)
{
  int i;

  reset();
  build_run(0, 50, full, 0);
  ul_gro_batch(items, 50, 1500, UL_GRO_TCP);
  /* 52 bytes of headers + 46 * 1400 = 64452; one more would not fit */
  CHECK_EQ(items[0].count, 46);
  CHECK_EQ(items[0].total, 52 + 46 * MSS);
  CHECK_EQ(items[46].count, 4);
  for (i = 1; i < 46; i++)
    CHECK_EQ(items[i].count, 0);
  CHECK_EQ(segment_and_compare(0), 46);
  CHECK_EQ(segment_and_compare(46), 4);
}

static void test_checksums(void)
{
  int i;

  /* a corrupt segment is not merged, stays corrupt, and ends the group */
  reset();
  for (i = 0; i < 4; i++)
    build(i, (struct spec){ .seq = 1000 + (uint32_t)i * MSS, .payload = MSS,
                            .ip_id = (uint16_t)(10 + i), .bad_csum = i == 1 });
  ul_gro_batch(items, 4, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
  CHECK_EQ(items[2].count, 2);
  CHECK_EQ(ul_csum_fold(ul_csum_partial(items[1].pkt + 20, items[1].len - 20,
                                        pseudo_proto(items[1].pkt, 6, items[1].len - 20))) != 0, 1);

  /* so is one whose IPv4 header checksum fails, even with its TCP checksum
   * partial (which says nothing about the header): merged, the header
   * would be rewritten with a valid checksum (here as a leader, or dropped
   * as a follower) and pass where the pod's kernel drops it */
  for (i = 0; i < 2; i++) {
    int j;
    reset();
    for (j = 0; j < 4; j++)
      build(j, (struct spec){ .seq = 1000 + (uint32_t)j * MSS, .payload = MSS,
                              .ip_id = (uint16_t)(10 + j), .partial = 1 });
    items[i].pkt[10] ^= 0x01; /* the header checksum of item 0, then of item 1 */
    ul_gro_batch(items, 4, 1500, UL_GRO_TCP);
    CHECK_EQ(items[i].count, 1);
    CHECK_EQ(items[i].pkt[10], orig[i][10] ^ 0x01); /* untouched: the kernel drops it */
    CHECK_EQ(items[i + 1].count, 3 - i);
    if (items[i + 1].count >= 2) /* a follower has no GSO header to cut by */
      CHECK_EQ(segment_and_compare((uint32_t)i + 1), 3 - i);
    if (i == 1)
      CHECK_EQ(items[0].count, 1);
  }

  /* partial checksums (a kernel sender across veth) are trusted */
  for (i = 4; i <= 6; i += 2) {
    int j;
    reset();
    for (j = 0; j < 3; j++)
      build(j, (struct spec){ .version = (unsigned)i, .seq = 5 + (uint32_t)j * MSS,
                              .payload = MSS, .ip_id = (uint16_t)j,
                              .partial = 1 });
    ul_gro_batch(items, 3, 1500, UL_GRO_TCP);
    CHECK_EQ(items[0].count, 3);
    CHECK_EQ(segment_and_compare(0), 3); /* completed = originals */
  }
}

static void test_mtu(void)
{
  reset();
  build_run(0, 3, full, 0);
  ul_gro_batch(items, 3, 1000, UL_GRO_TCP); /* segments longer than the MTU */
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
  CHECK(memcmp(items[0].pkt, orig[0], orig_len[0]) == 0);
  ul_gro_batch(items, 3, 0, UL_GRO_TCP); /* MTU unknown: no coalescing */
  CHECK_EQ(items[0].count, 1);
}

/* UDP: a run of one flow's equal-sized datagrams, v4 and v6, becomes one
 * UDP GSO super-packet that cuts back into the originals; only with
 * UL_GRO_UDP. */
static void test_udp_run(unsigned v)
{
  const struct spec d = { .version = v, .seq = 3, .payload = 1000, .ip_id = 7 };
  int i;

  reset();
  build_udp_run(0, 5, d);
  ul_gro_batch(items, 5, 1500, UL_GRO_TCP);
  for (i = 0; i < 5; i++)
    CHECK_EQ(items[i].count, 1); /* TCP only: every datagram alone */
  CHECK(memcmp(items[0].pkt, orig[0], orig_len[0]) == 0);

  ul_gro_batch(items, 5, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 5);
  CHECK_EQ(items[0].total, orig_len[0] + 4 * 1000);
  CHECK_EQ(items[0].vh.gso_type, 5);
  CHECK_EQ(items[0].vh.gso_size, 1000);
  CHECK_EQ(items[0].vh.csum_start, v == 4 ? 20 : 40);
  CHECK_EQ(segment_and_compare(0), 5);

  /* the last may be shorter and ends the run; a longer one never joins */
  reset();
  build_udp_run(0, 3, d);
  build_udp(3, (struct spec){ .version = v, .seq = 9, .payload = 10, .ip_id = 10 });
  build_udp(4, (struct spec){ .version = v, .seq = 4, .payload = 1000, .ip_id = 11 });
  build_udp(5, (struct spec){ .version = v, .seq = 5, .payload = 1001, .ip_id = 12 });
  ul_gro_batch(items, 6, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 4);
  CHECK_EQ(items[4].count, 1);
  CHECK_EQ(items[5].count, 1);
  CHECK_EQ(segment_and_compare(0), 4);
}

/* Which UDP datagrams stand alone, and which runs break. */
static void test_udp_alone(void)
{
  const struct spec d = { .seq = 3, .payload = 500, .ip_id = 7 };
  uint8_t before[2048];
  int i;

  /* no checksum (IPv4 zero field), a bad one, IPv4 options, an empty
   * datagram, a UDP length that disagrees with the IP length: alone, and
   * left as they were */
  for (i = 0; i < 5; i++) {
    struct spec bad = d;
    reset();
    build_udp_run(0, 4, d);
    bad.seq = 4;
    bad.ip_id = 8;
    bad.zero_csum = i == 0;
    bad.bad_csum = i == 1;
    bad.ip_options = i == 2;
    if (i == 3)
      bad.payload = 0;
    build_udp(1, bad);
    if (i == 0) { /* a payload whose sum makes the zero field verify: still no checksum */
      uint8_t *uh = items[1].pkt + 20;
      size_t l4 = items[1].len - 20;
      uint32_t f = ul_csum_fold(ul_csum_partial(uh, l4, pseudo_proto(items[1].pkt, 17, l4)));
      uint32_t w = (uint32_t)(uh[8] << 8 | uh[9]) + f;
      put16(uh + 8, (w & 0xffff) + (w >> 16));
      CHECK_EQ(ul_csum_fold(ul_csum_partial(uh, l4, pseudo_proto(items[1].pkt, 17, l4))), 0);
    }
    if (i == 4) {
      items[1].pkt[20 + 5] ^= 0x04; /* UDP length */
      memcpy(orig[1], items[1].pkt, items[1].len);
    }
    memcpy(before, items[1].pkt, items[1].len);
    ul_gro_batch(items, 4, 1500, UL_GRO_UDP);
    CHECK_EQ(items[0].count, 1);
    CHECK_EQ(items[1].count, 1);
    CHECK(memcmp(items[1].pkt, before, items[1].len) == 0);
    CHECK(memcmp(items[0].pkt, orig[0], orig_len[0]) == 0);
    CHECK_EQ(items[2].count, 2); /* the flow goes on after it */
    CHECK_EQ(segment_and_compare(2), 2);
  }

  /* partial checksums (a kernel sender across veth) are trusted */
  reset();
  for (i = 0; i < 3; i++)
    build_udp(i, (struct spec){ .seq = (uint32_t)i, .payload = 500,
                                .ip_id = (uint16_t)i, .partial = 1 });
  ul_gro_batch(items, 3, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(segment_and_compare(0), 3);

  /* without DF the IPv4 ID must count up by one; with DF it may jump */
  for (i = 0; i < 2; i++) {
    struct spec s = d;
    s.no_df = i == 0;
    reset();
    build_udp_run(0, 2, s);
    s.ip_id = 100;
    build_udp(2, s);
    ul_gro_batch(items, 3, 1500, UL_GRO_UDP);
    CHECK_EQ(items[0].count, i == 0 ? 2 : 3);
    if (i == 0)
      CHECK_EQ(segment_and_compare(0), 2);
  }

  /* TTL, TOS and DF must match the first datagram's */
  for (i = 0; i < 3; i++) {
    struct spec s = d;
    reset();
    build_udp_run(0, 3, d);
    s.seq = 5;
    s.ip_id = 9;
    s.ttl = i == 0 ? 9 : 0;
    s.tos = i == 1 ? 4 : 0;
    s.no_df = i == 2;
    build_udp(2, s);
    ul_gro_batch(items, 3, 1500, UL_GRO_UDP);
    CHECK_EQ(items[0].count, 2);
    CHECK_EQ(items[2].count, 1);
  }

  /* a TCP segment with the same addresses and ports is another flow */
  reset();
  build_udp_run(0, 2, d);
  build(2, (struct spec){ .seq = 1, .payload = 500, .sport = 40000 });
  build_udp(3, (struct spec){ .seq = 5, .payload = 500, .ip_id = 9 });
  ul_gro_batch(items, 4, 1500, UL_GRO_TCP | UL_GRO_UDP);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(items[2].count, 1);
  CHECK_EQ(segment_and_compare(0), 3);
}

/* Two interleaved UDP flows each coalesce; runs stop at UL_GRO_UDP_SEGS
 * datagrams and at 65535 bytes. */
static void test_udp_limits(void)
{
  int i;

  reset();
  for (i = 0; i < 6; i++)
    build_udp(i, (struct spec){ .seq = (uint32_t)i, .payload = 300,
                                .ip_id = (uint16_t)(i / 2),
                                .sport = (uint16_t)(40000 + i % 2) });
  ul_gro_batch(items, 6, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(items[1].count, 3);
  CHECK_EQ(segment_and_compare(0), 3);
  CHECK_EQ(segment_and_compare(1), 3);

  reset();
  build_udp_run(0, 70, (struct spec){ .payload = 100, .no_df = 1, .ip_id = 65530 });
  ul_gro_batch(items, 70, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, UL_GRO_UDP_SEGS); /* the IDs wrap on the way */
  CHECK_EQ(items[UL_GRO_UDP_SEGS].count, 70 - UL_GRO_UDP_SEGS);
  CHECK_EQ(segment_and_compare(0), UL_GRO_UDP_SEGS);
  CHECK_EQ(segment_and_compare(UL_GRO_UDP_SEGS), 70 - UL_GRO_UDP_SEGS);

  /* 28 bytes of headers + 46 * 1400 = 64428; one more would not fit */
  reset();
  build_udp_run(0, 50, (struct spec){ .payload = 1400 });
  ul_gro_batch(items, 50, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 46);
  CHECK_EQ(items[0].total, 28 + 46 * 1400);
  CHECK_EQ(items[46].count, 4);
  CHECK_EQ(segment_and_compare(0), 46);

  /* longer than the MTU, or the MTU unknown: nothing coalesces */
  reset();
  build_udp_run(0, 3, (struct spec){ .payload = 1400 });
  ul_gro_batch(items, 3, 1400, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 1);
  ul_gro_batch(items, 3, 0, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 1);
}

int main(void)
{
  test_run(4);
  test_run(6);
  test_last_shorter();
  test_gap();
  test_flags();
  test_header_breaks();
  test_flows();
  test_max_size();
  test_checksums();
  test_mtu();
  test_udp_run(4);
  test_udp_run(6);
  test_udp_alone();
  test_udp_limits();
  return CHECK_DONE();
}
