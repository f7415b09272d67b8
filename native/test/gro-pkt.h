/*
 * gro-pkt.h — test helper for the GRO tests (test-gro*.c): builds TCP/IP
 * segments with valid checksums into a shared table of ul_gro_items, and
 * cuts a coalesced super-packet apart the way the kernel's TCP GSO does
 * (per-segment seq, IP length/ID/checksum, PSH on the last only, TCP
 * checksum completed from the partial field) to compare the pieces with
 * the original segments byte for byte.
 *
 * Include after ../src/gro.c (ul_gro_item, TCP_* flags) and check.h.
 */
#ifndef USERLAY_GRO_PKT_H
#define USERLAY_GRO_PKT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

static inline void put16(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
  put16(p, v >> 16);
  put16(p + 2, v);
}

static inline uint32_t pseudo_of(const uint8_t *p, unsigned version, size_t l4len)
{
  return version == 4 ? ul_csum_partial(p + 12, 8, 6 + (uint32_t)l4len)
                      : ul_csum_partial(p + 8, 32, 6 + (uint32_t)l4len);
}

/* Build segment i of a test into bufs[i] (and a copy in orig[i]). */
static inline void build(int i, struct spec sp)
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
    /* 2001:2:0:102::5 -> 2001:2:0:101::2 */
    static const uint8_t net6[7] = {0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01};
    memcpy(p + 8, net6, sizeof net6);
    p[15] = 0x02;
    p[23] = 5;
    memcpy(p + 24, net6, sizeof net6);
    p[31] = 0x01;
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
static inline void build_run(int at, int n, struct spec sp, uint8_t last_flags)
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
static inline size_t gather(int lead, uint8_t *out)
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
 * Piece k of the super-packet sup[0..total) (GSO header *vh), cut from
 * payload offset off as the kernel's TCP GSO cuts it: per-piece IP length
 * (and IPv4 ID and header checksum), seq, PSH and FIN on the last piece
 * only, the partial TCP field moved to the piece's length and completed.
 * Writes it to seg (room for hdr_len + gso_size) and returns its length.
 */
static inline size_t cut_piece(const uint8_t *sup, size_t total,
                               const struct ul_vnet_hdr *vh, size_t off, int k,
                               uint8_t *seg)
{
  size_t hl = vh->hdr_len, l3 = vh->csum_start;
  size_t pay = total - off < vh->gso_size ? total - off : vh->gso_size;
  size_t len = hl + pay;
  uint32_t seq0 = ((uint32_t)sup[l3 + 4] << 24) | ((uint32_t)sup[l3 + 5] << 16) |
                  ((uint32_t)sup[l3 + 6] << 8) | sup[l3 + 7];
  uint16_t id0 = (uint16_t)((sup[4] << 8) | sup[5]);
  uint16_t field = (uint16_t)((sup[l3 + 16] << 8) | sup[l3 + 17]);
  uint32_t sum;

  memcpy(seg, sup, hl);
  memcpy(seg + hl, sup + off, pay);
  if ((sup[0] >> 4) == 4) {
    put16(seg + 2, (uint32_t)len);
    put16(seg + 4, (uint16_t)(id0 + k));
    put16(seg + 10, 0);
    put16(seg + 10, ul_csum_fold(ul_csum_partial(seg, l3, 0)));
  } else {
    put16(seg + 4, (uint32_t)(len - 40));
  }
  put32(seg + l3 + 4, seq0 + (uint32_t)(off - hl));
  if (off + pay < total)
    seg[l3 + 13] &= (uint8_t)~(TCP_PSH | TCP_FIN);
  /* the kernel moves the partial field from the total length to the
   * segment's length, then the device (or software) completes it */
  sum = (uint32_t)field + (uint16_t)~(uint16_t)(total - l3) + (uint32_t)(len - l3);
  put16(seg + l3 + 16, (uint16_t)~ul_csum_fold(sum));
  put16(seg + l3 + 16, ul_csum_fold(ul_csum_partial(seg + l3, len - l3, 0)));
  return len;
}

/*
 * Cut the super-packet led by `lead` as the kernel's TCP GSO would and
 * compare every piece with the original of the member it came from (members
 * in `next` order). Returns the number of pieces that matched.
 */
static inline int segment_and_compare(uint32_t lead)
{
  static uint8_t sup[70000];
  const struct ul_vnet_hdr *vh = &items[lead].vh;
  size_t total = gather((int)lead, sup), hl = vh->hdr_len, l3 = vh->csum_start;
  unsigned v = sup[0] >> 4;
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
    size_t len = cut_piece(sup, total, vh, off, k, seg);

    CHECK_EQ(ul_csum_fold(ul_csum_partial(seg + l3, len - l3,
                                          pseudo_of(seg, v, len - l3))), 0);
    if (member != UL_GRO_END && len == orig_len[member] &&
        memcmp(seg, orig[member], len) == 0)
      ok++;
    else
      fprintf(stderr, "segment %d of the super-packet at %u differs\n", k, lead);
    member = member == UL_GRO_END ? member : items[member].next;
    off += len - hl;
    k++;
  }
  return ok;
}

static inline void reset(void)
{
  memset(items, 0, sizeof(items));
}

static const struct spec full = { .seq = 1000, .payload = MSS, .ip_id = 10 };

#endif /* USERLAY_GRO_PKT_H */
