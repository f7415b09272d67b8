/*
 * gro-pkt.h — test helper for the GRO tests (test-gro*.c): builds TCP/IP
 * segments and UDP datagrams with valid checksums into a shared table of
 * ul_gro_items, and cuts a coalesced super-packet apart the way the
 * kernel's TCP or UDP GSO does (per-segment seq, IP length/ID/checksum, PSH
 * on the last only, UDP length, L4 checksum completed from the partial
 * field) to compare the pieces with the originals byte for byte.
 *
 * Include after ../src/gro.c (ul_gro_item, TCP_* flags) and check.h.
 */
#ifndef USERLAY_GRO_PKT_H
#define USERLAY_GRO_PKT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NBUF 80
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
  int udp;             /* not TCP at all (a TCP layout with protocol 17) */
  int zero_csum;       /* build_udp: no checksum (IPv4's zero field) */
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

/* The pseudo-header sum of the IP packet at p for l4len bytes of proto. */
static inline uint32_t pseudo_proto(const uint8_t *p, unsigned proto, size_t l4len)
{
  return (p[0] >> 4) == 4 ? ul_csum_partial(p + 12, 8, proto + (uint32_t)l4len)
                          : ul_csum_partial(p + 8, 32, proto + (uint32_t)l4len);
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
  c = ul_csum_fold(ul_csum_partial(th, len - l3, pseudo_proto(p, 6, len - l3)));
  put16(th + 16, c);
  memcpy(orig[i], p, len);
  orig_len[i] = len;
  if (sp.partial)
    put16(th + 16, (uint16_t)~ul_csum_fold(pseudo_proto(p, 6, len - l3)));
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

/* A UDP datagram i of sp.payload bytes (dport 5201, sport sp.sport) into
 * bufs[i] and orig[i]; sp.seq seeds the payload bytes. */
static inline void build_udp(int i, struct spec sp)
{
  uint8_t *p = bufs[i] + HEADROOM, *uh;
  unsigned v = sp.version ? sp.version : 4;
  size_t l3 = v == 4 ? (sp.ip_options ? 24 : 20) : 40, len = l3 + 8 + sp.payload, k;
  uint16_t c;

  sp.udp = 1;
  sp.payload = 0;
  build(i, sp); /* the IP header; its L4 part is overwritten below */
  uh = p + l3;
  memset(uh, 0, 8 + (len - l3 - 8));
  if (v == 4) {
    put16(p + 2, (uint32_t)len);
    put16(p + 10, 0);
    put16(p + 10, ul_csum_fold(ul_csum_partial(p, l3, 0)));
  } else {
    put16(p + 4, (uint32_t)(len - 40));
  }
  put16(uh, sp.sport ? sp.sport : 40000);
  put16(uh + 2, 5201);
  put16(uh + 4, (uint32_t)(len - l3));
  for (k = 0; k < len - l3 - 8; k++)
    uh[8 + k] = (uint8_t)((sp.seq + k) * 13 + 1);
  c = ul_csum_fold(ul_csum_partial(uh, len - l3, pseudo_proto(p, 17, len - l3)));
  put16(uh + 6, sp.zero_csum ? 0 : (c != 0 ? c : 0xffff));
  memcpy(orig[i], p, len);
  orig_len[i] = len;
  if (sp.partial)
    put16(uh + 6, (uint16_t)~ul_csum_fold(pseudo_proto(p, 17, len - l3)));
  if (sp.bad_csum)
    uh[8] ^= 0x40;
  items[i].pkt = p;
  items[i].len = len;
}

/* A run of n datagrams of sp.payload bytes (IPv4 IDs counting up), at `at`. */
static inline void build_udp_run(int at, int n, struct spec sp)
{
  int i;

  for (i = 0; i < n; i++) {
    struct spec s = sp;
    s.seq = sp.seq + (uint32_t)i;
    s.ip_id = (uint16_t)(sp.ip_id + i);
    build_udp(at + i, s);
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

/* The L4 protocol of an IP packet without extension headers. */
static inline unsigned proto_of(const uint8_t *p)
{
  return (p[0] >> 4) == 4 ? p[9] : p[6];
}

/*
 * Piece k of the super-packet sup[0..total) (GSO header *vh), cut from
 * payload offset off as the kernel's GSO cuts it: per-piece IP length (and
 * IPv4 ID and header checksum); TCP: seq, PSH and FIN on the last piece
 * only; UDP: the length; the partial L4 field moved to the piece's length
 * and completed (a UDP sum of 0 goes as 0xffff). Writes it to seg (room for
 * hdr_len + gso_size) and returns its length.
 */
static inline size_t cut_piece(const uint8_t *sup, size_t total,
                               const struct ul_vnet_hdr *vh, size_t off, int k,
                               uint8_t *seg)
{
  size_t hl = vh->hdr_len, l3 = vh->csum_start, co = vh->csum_offset;
  size_t pay = total - off < vh->gso_size ? total - off : vh->gso_size;
  size_t len = hl + pay;
  bool udp = proto_of(sup) == 17;
  uint32_t seq0 = ((uint32_t)sup[l3 + 4] << 24) | ((uint32_t)sup[l3 + 5] << 16) |
                  ((uint32_t)sup[l3 + 6] << 8) | sup[l3 + 7];
  uint16_t id0 = (uint16_t)((sup[4] << 8) | sup[5]);
  uint16_t field = (uint16_t)((sup[l3 + co] << 8) | sup[l3 + co + 1]);
  uint16_t c;
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
  if (udp) {
    put16(seg + l3 + 4, (uint32_t)(len - l3));
  } else {
    put32(seg + l3 + 4, seq0 + (uint32_t)(off - hl));
    if (off + pay < total)
      seg[l3 + 13] &= (uint8_t)~(TCP_PSH | TCP_FIN);
  }
  /* the kernel moves the partial field from the total length to the
   * segment's length, then the device (or software) completes it */
  sum = (uint32_t)field + (uint16_t)~(uint16_t)(total - l3) + (uint32_t)(len - l3);
  put16(seg + l3 + co, (uint16_t)~ul_csum_fold(sum));
  c = ul_csum_fold(ul_csum_partial(seg + l3, len - l3, 0));
  put16(seg + l3 + co, udp && c == 0 ? 0xffff : c);
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
  unsigned v = sup[0] >> 4, proto = proto_of(sup);
  size_t co = proto == 17 ? 6 : 16;
  uint16_t field = (uint16_t)((sup[l3 + co] << 8) | sup[l3 + co + 1]);
  size_t off = hl;
  uint32_t member = lead;
  int k = 0, ok = 0;

  CHECK_EQ(total, items[lead].total);
  CHECK_EQ(vh->flags, UL_VNET_F_NEEDS_CSUM);
  CHECK_EQ(vh->gso_type, proto == 17 ? 5 : v == 4 ? 1 : 4);
  CHECK_EQ(vh->csum_offset, co);
  if (proto == 17) {
    CHECK_EQ(vh->hdr_len, l3 + 8);
    CHECK_EQ(((sup[l3 + 4] << 8) | sup[l3 + 5]), total - l3); /* UDP length */
  }
  if (v == 4) {
    CHECK_EQ(((sup[2] << 8) | sup[3]), total);
    CHECK_EQ(ul_csum_fold(ul_csum_partial(sup, 20, 0)), 0);
  } else {
    CHECK_EQ(((sup[4] << 8) | sup[5]), total - 40);
  }
  if (vh->gso_size == 0)
    return 0; /* nothing to cut by */
  /* the field is the pseudo-header sum over the whole L4 length */
  CHECK_EQ(field, (uint16_t)~ul_csum_fold(pseudo_proto(sup, proto, total - l3)));

  while (off < total) {
    uint8_t seg[2048];
    size_t len = cut_piece(sup, total, vh, off, k, seg);

    CHECK_EQ(ul_csum_fold(ul_csum_partial(seg + l3, len - l3,
                                          pseudo_proto(seg, proto, len - l3))), 0);
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
