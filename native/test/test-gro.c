/*
 * test-gro.c — receive coalescing (gro.c), no privileges needed.
 *
 * Segments are built with valid checksums, grouped by ul_gro_batch(), and
 * each super-packet is then cut apart the way the kernel's TCP GSO does
 * (per-segment seq, IP length/ID/checksum, PSH on the last only, TCP
 * checksum completed from the partial field): the pieces must equal the
 * original segments byte for byte, checksums included. ul_tun_write_batch
 * (tun.c) writes into a SOCK_SEQPACKET pair, where each writev() is one
 * record to compare with what the TUN must be given.
 */
#include "../src/gro.c"
#include "../src/tun.c"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "check.h"

#define NBUF 64
#define HEADROOM 16
#define MSS 1400
#define TS_LEN 12 /* NOP NOP TIMESTAMP */

static uint8_t bufs[NBUF][HEADROOM + 2048];
static uint8_t orig[NBUF][2048];
static size_t orig_len[NBUF];
static struct ul_gro_item items[NBUF];

/* What one test segment looks like; zero fields take the defaults. */
struct spec {
  unsigned version;    /* 4 (default) or 6 */
  uint32_t seq;
  size_t payload;
  uint8_t flags;       /* default ACK */
  uint16_t sport;      /* default 40000 */
  uint16_t ip_id;
  uint32_t tsval;
  uint8_t ttl;         /* default 64 */
  uint8_t tos;
  uint32_t ack;
  uint16_t window;     /* default 500 */
  int no_df;
  int bad_csum;        /* flip a payload byte after the checksum */
  int partial;         /* checksum field = pseudo-header sum only */
  int ip_options;      /* IPv4: 4 bytes of options (NOP x4) */
  int udp;             /* not TCP at all */
};

static void put16(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
  put16(p, v >> 16);
  put16(p + 2, v);
}

static uint32_t pseudo_of(const uint8_t *p, unsigned version, size_t l4len)
{
  return version == 4 ? ul_csum_partial(p + 12, 8, 6 + (uint32_t)l4len)
                      : ul_csum_partial(p + 8, 32, 6 + (uint32_t)l4len);
}

/* Build segment i of a test into bufs[i] (and a copy in orig[i]). */
static void build(int i, struct spec sp)
{
  uint8_t *p = bufs[i] + HEADROOM;
  unsigned v = sp.version ? sp.version : 4;
  size_t l3 = v == 4 ? (sp.ip_options ? 24 : 20) : 40, thl = 20 + TS_LEN;
  size_t len = l3 + thl + sp.payload, k;
  uint8_t *th = p + l3;
  uint16_t c;

  memset(p, 0, len);
  if (v == 4) {
    p[0] = (uint8_t)(0x40 | l3 / 4);
    p[1] = sp.tos;
    put16(p + 2, (uint32_t)len);
    put16(p + 4, sp.ip_id);
    p[6] = sp.no_df ? 0 : 0x40;
    p[8] = sp.ttl ? sp.ttl : 64;
    p[9] = sp.udp ? 17 : 6;
    put32(p + 12, 0xc6130205);  /* 198.19.2.5 */
    put32(p + 16, 0xc6130102);  /* 198.19.1.2 */
    for (k = 20; k < l3; k++)
      p[k] = 1;
    put16(p + 10, ul_csum_fold(ul_csum_partial(p, l3, 0)));
  } else {
    p[0] = 0x60;
    put16(p + 4, (uint32_t)(len - 40));
    p[6] = sp.udp ? 17 : 6;
    p[7] = sp.ttl ? sp.ttl : 64;
    p[8] = 0xfd;
    p[23] = 5;
    p[24] = 0xfd;
    p[39] = 2;
  }
  put16(th, sp.sport ? sp.sport : 40000);
  put16(th + 2, 5201);
  put32(th + 4, sp.seq);
  put32(th + 8, sp.ack);
  th[12] = (uint8_t)((thl / 4) << 4);
  th[13] = sp.flags ? sp.flags : TCP_ACK;
  put16(th + 14, sp.window ? sp.window : 500);
  th[20] = 1;
  th[21] = 1;
  th[22] = 8;
  th[23] = 10;
  put32(th + 24, sp.tsval);
  put32(th + 28, 77);
  for (k = 0; k < sp.payload; k++)
    th[thl + k] = (uint8_t)((sp.seq + k) * 7);
  c = ul_csum_fold(ul_csum_partial(th, len - l3, pseudo_of(p, v, len - l3)));
  put16(th + 16, c);
  memcpy(orig[i], p, len);
  orig_len[i] = len;
  if (sp.partial)
    put16(th + 16, (uint16_t)~ul_csum_fold(pseudo_of(p, v, len - l3)));
  if (sp.bad_csum)
    th[thl] ^= 0x40;
  items[i].pkt = p;
  items[i].len = len;
}

/* A run of n full segments (flags on the last), starting at index `at`. */
static void build_run(int at, int n, struct spec sp, uint8_t last_flags)
{
  int i;

  for (i = 0; i < n; i++) {
    struct spec s = sp;
    s.seq = sp.seq + (uint32_t)(i * (int)sp.payload);
    s.ip_id = (uint16_t)(sp.ip_id + i);
    if (i == n - 1 && last_flags)
      s.flags = last_flags;
    build(at + i, s);
  }
}

/* What writev() of the engine puts on the TUN, as one buffer. */
static size_t gather(int lead, uint8_t *out)
{
  const struct ul_gro_item *it = &items[lead];
  size_t n = it->len;
  uint32_t i;

  memcpy(out, it->pkt, it->len);
  for (i = it->next; i != UL_GRO_END; i = items[i].next) {
    memcpy(out + n, items[i].pkt + it->vh.hdr_len,
           items[i].len - it->vh.hdr_len);
    n += items[i].len - it->vh.hdr_len;
  }
  return n;
}

/*
 * Cut the super-packet led by `lead` as the kernel's TCP GSO would and
 * compare every piece with the original of the member it came from (members
 * in `next` order). Returns the number of pieces that matched.
 */
static int segment_and_compare(uint32_t lead)
{
  static uint8_t sup[70000];
  const struct ul_vnet_hdr *vh = &items[lead].vh;
  size_t total = gather(lead, sup), hl = vh->hdr_len, l3 = vh->csum_start;
  unsigned v = sup[0] >> 4;
  uint32_t seq0 = ((uint32_t)sup[l3 + 4] << 24) | ((uint32_t)sup[l3 + 5] << 16) |
                  ((uint32_t)sup[l3 + 6] << 8) | sup[l3 + 7];
  uint16_t id0 = (uint16_t)((sup[4] << 8) | sup[5]);
  uint16_t field = (uint16_t)((sup[l3 + 16] << 8) | sup[l3 + 17]);
  size_t off = hl;
  uint32_t member = lead;
  int k = 0, ok = 0;

  CHECK_EQ(total, items[lead].total);
  CHECK_EQ(vh->flags, UL_VNET_F_NEEDS_CSUM);
  CHECK_EQ(vh->gso_type, v == 4 ? 1 : 4);
  CHECK_EQ(vh->csum_offset, 16);
  if (v == 4) {
    CHECK_EQ(((sup[2] << 8) | sup[3]), total);
    CHECK_EQ(ul_csum_fold(ul_csum_partial(sup, 20, 0)), 0);
  } else {
    CHECK_EQ(((sup[4] << 8) | sup[5]), total - 40);
  }
  /* the field is the pseudo-header sum over the whole TCP length */
  CHECK_EQ(field, (uint16_t)~ul_csum_fold(pseudo_of(sup, v, total - l3)));

  while (off < total) {
    uint8_t seg[2048];
    size_t pay = total - off < vh->gso_size ? total - off : vh->gso_size;
    size_t len = hl + pay;
    bool last = off + pay == total;
    uint32_t sum;

    memcpy(seg, sup, hl);
    memcpy(seg + hl, sup + off, pay);
    if (v == 4) {
      put16(seg + 2, (uint32_t)len);
      put16(seg + 4, (uint16_t)(id0 + k));
      put16(seg + 10, 0);
      put16(seg + 10, ul_csum_fold(ul_csum_partial(seg, l3, 0)));
    } else {
      put16(seg + 4, (uint32_t)(len - 40));
    }
    put32(seg + l3 + 4, seq0 + (uint32_t)(off - hl));
    if (!last)
      seg[l3 + 13] &= (uint8_t)~(TCP_PSH | TCP_FIN);
    /* the kernel moves the partial field from the total length to the
     * segment's length, then the device (or software) completes it */
    sum = (uint32_t)field + (uint16_t)~(uint16_t)(total - l3) + (uint32_t)(len - l3);
    put16(seg + l3 + 16, (uint16_t)~ul_csum_fold(sum));
    put16(seg + l3 + 16, ul_csum_fold(ul_csum_partial(seg + l3, len - l3, 0)));
    CHECK_EQ(ul_csum_fold(ul_csum_partial(seg + l3, len - l3,
                                          pseudo_of(seg, v, len - l3))), 0);
    if (member != UL_GRO_END && len == orig_len[member] &&
        memcmp(seg, orig[member], len) == 0)
      ok++;
    else
      fprintf(stderr, "segment %d of the super-packet at %u differs\n", k, lead);
    member = member == UL_GRO_END ? member : items[member].next;
    off += pay;
    k++;
  }
  return ok;
}

static void reset(void)
{
  memset(items, 0, sizeof(items));
}

static const struct spec full = { .seq = 1000, .payload = MSS, .ip_id = 10 };

static void test_run(unsigned v)
{
  struct spec sp = full;

  sp.version = v;
  reset();
  build_run(0, 4, sp, TCP_ACK | TCP_PSH);
  ul_gro_batch(items, 4, 1500);
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
  ul_gro_batch(items, 5, 1500);
  CHECK_EQ(items[0].count, 4);
  CHECK_EQ(items[4].count, 1); /* the shorter one ended the group */
  CHECK_EQ(segment_and_compare(0), 4);

  /* larger after smaller: the gso_size is the first one's */
  reset();
  build(0, (struct spec){ .seq = 1, .payload = 700 });
  build(1, (struct spec){ .seq = 701, .payload = MSS });
  ul_gro_batch(items, 2, 1500);
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
  ul_gro_batch(items, 5, 1500);
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
    ul_gro_batch(items, 4, 1500);
    CHECK_EQ(items[0].count, 1);
    CHECK_EQ(items[1].count, 1);
    CHECK_EQ(items[2].count, 2);
    CHECK(memcmp(items[1].pkt, orig[1], orig_len[1]) == 0); /* untouched */
  }

  /* PSH in the middle ends the group after it */
  reset();
  build_run(0, 2, full, TCP_ACK | TCP_PSH);
  build_run(2, 2, (struct spec){ .seq = 1000 + 2 * MSS, .payload = MSS, .ip_id = 12 }, 0);
  ul_gro_batch(items, 4, 1500);
  CHECK_EQ(items[0].count, 2);
  CHECK_EQ(items[2].count, 2);
  CHECK_EQ(segment_and_compare(0), 2);
  CHECK_EQ(segment_and_compare(2), 2);

  /* ECE: equal on all merges, a change breaks */
  reset();
  build_run(0, 2, (struct spec){ .seq = 1, .payload = MSS, .flags = TCP_ACK | 0x40 }, 0);
  build(2, (struct spec){ .seq = 1 + 2 * MSS, .payload = MSS });
  ul_gro_batch(items, 3, 1500);
  CHECK_EQ(items[0].count, 2);
  CHECK_EQ(items[2].count, 1);

  /* a pure ACK stands alone */
  reset();
  build(0, (struct spec){ .seq = 1, .payload = 0 });
  build(1, (struct spec){ .seq = 1, .payload = 0 });
  ul_gro_batch(items, 2, 1500);
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
    ul_gro_batch(items, 2, 1500);
    CHECK_EQ(items[0].count, 1);
    CHECK_EQ(items[1].count, 1);
  }
  /* IPv6 flow label */
  reset();
  build(0, (struct spec){ .version = 6, .seq = 1, .payload = MSS });
  build(1, (struct spec){ .version = 6, .seq = 1 + MSS, .payload = MSS });
  bufs[1][HEADROOM + 3] = 9;
  ul_gro_batch(items, 2, 1500);
  CHECK_EQ(items[0].count, 1);

  /* IPv4 options: stands alone */
  reset();
  build_run(0, 2, (struct spec){ .seq = 1, .payload = MSS, .ip_options = 1 }, 0);
  ul_gro_batch(items, 2, 1500);
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
  ul_gro_batch(items, 7, 1500);
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
  ul_gro_batch(items, 50, 1500);
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
  ul_gro_batch(items, 4, 1500);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
  CHECK_EQ(items[2].count, 2);
  CHECK_EQ(ul_csum_fold(ul_csum_partial(items[1].pkt + 20, items[1].len - 20,
                                        pseudo_of(items[1].pkt, 4, items[1].len - 20))) != 0, 1);

  /* partial checksums (a kernel sender across veth) are trusted */
  for (i = 4; i <= 6; i += 2) {
    int j;
    reset();
    for (j = 0; j < 3; j++)
      build(j, (struct spec){ .version = (unsigned)i, .seq = 5 + (uint32_t)j * MSS,
                              .payload = MSS, .ip_id = (uint16_t)j,
                              .partial = 1 });
    ul_gro_batch(items, 3, 1500);
    CHECK_EQ(items[0].count, 3);
    CHECK_EQ(segment_and_compare(0), 3); /* completed = originals */
  }
}

static void test_mtu(void)
{
  reset();
  build_run(0, 3, full, 0);
  ul_gro_batch(items, 3, 1000); /* segments longer than the MTU */
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 1);
  CHECK(memcmp(items[0].pkt, orig[0], orig_len[0]) == 0);
  ul_gro_batch(items, 3, 0); /* MTU unknown: no coalescing */
  CHECK_EQ(items[0].count, 1);
}

/* Receive one record of a write into out; its length, or -errno. */
static ssize_t next_record(int fd, uint8_t *out, size_t cap)
{
  ssize_t r = recv(fd, out, cap, MSG_DONTWAIT);
  return r < 0 ? -errno : r;
}

static void test_write_batch(void)
{
  static uint8_t rec[70000], want[70000];
  const struct spec udp = { .udp = 1, .seq = 5, .payload = 100, .sport = 40001 };
  uint8_t failed[NBUF];
  struct ul_vnet_hdr vh;
  size_t len;
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  reset();
  build_run(0, 3, full, 0);
  build(3, udp);
  build(4, full);
  items[4].pkt = NULL; /* dropped by decap */
  ul_gro_batch(items, 5, 1500);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(ul_tun_write_batch(sv[0], items, 5, 1500, failed), 0);
  CHECK(memchr(failed, 1, 5) == NULL);

  /* the super-packet: [its GSO header | leader | followers' payloads] */
  memcpy(want, &items[0].vh, UL_VNET_HDR_LEN);
  len = UL_VNET_HDR_LEN + gather(0, want + UL_VNET_HDR_LEN);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), len);
  CHECK(memcmp(rec, want, len) == 0);
  CHECK_EQ(segment_and_compare(0), 3);
  /* the packet that stands alone: [ul_vnet_hdr_for_rx's header | packet] */
  memset(&vh, 0, sizeof(vh));
  ul_vnet_hdr_for_rx(items[3].pkt, items[3].len, &vh);
  memcpy(want, &vh, UL_VNET_HDR_LEN);
  memcpy(want + UL_VNET_HDR_LEN, orig[3], orig_len[3]);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), UL_VNET_HDR_LEN + orig_len[3]);
  CHECK(memcmp(rec, want, UL_VNET_HDR_LEN + orig_len[3]) == 0);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN); /* nothing else */

  /* a failed write fails every packet it carried, absent ones excluded */
  CHECK_EQ(ul_tun_write_batch(-1, items, 5, 1500, failed), 4);
  CHECK(failed[0] && failed[1] && failed[2] && failed[3] && !failed[4]);
  CHECK_EQ(ul_tun_write_batch(-1, items, 5, 1500, NULL), 4);

  /* a TCP packet longer than the MTU goes as GSO at mss = mtu - headers */
  reset();
  build(0, full);
  ul_gro_batch(items, 1, 500);
  CHECK_EQ(ul_tun_write_batch(sv[0], items, 1, 500, failed), 0);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), UL_VNET_HDR_LEN + orig_len[0]);
  memcpy(&vh, rec, sizeof(vh));
  CHECK_EQ(vh.gso_type, 1);
  CHECK_EQ(vh.gso_size, 500 - 20 - 20 - TS_LEN);
  CHECK_EQ(vh.flags, UL_VNET_F_NEEDS_CSUM);
  CHECK(memcmp(rec + UL_VNET_HDR_LEN + 20 + 20, orig[0] + 20 + 20,
               orig_len[0] - 40) == 0); /* payload and options as they were */
  close(sv[0]);
  close(sv[1]);
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
  test_write_batch();
  return CHECK_DONE();
}
