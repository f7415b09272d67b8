/*
 * test-segment.c — software segmentation (segment.c) and the TUN read path
 * (tun-read.c), no privileges needed.
 *
 *   1. TSO split golden tests: synthetic TSO packets of up to 64 KiB, IPv4
 *      and IPv6, TCP with options, FIN/PSH/CWR set, gso_size from 1 to the
 *      MTU and sizes with an odd last segment; every segment is checked
 *      field by field against the template, with a checksum routine written
 *      independently of csum.c, and the payloads must reassemble to the
 *      original. hdr_len in the virtio header is a lie (it covers the first
 *      segment) and must not matter.
 *   2. USO split: UDP v4/v6, length and checksum per datagram.
 *   3. Malformed GSO headers are refused.
 *   4. ul_tun_read_batch over a SOCK_SEQPACKET pair standing in for the TUN:
 *      a super-packet larger than the batch is continued across calls in
 *      order; runts and bad headers counted. Super-packets land in the
 *      reader's pool, a plain packet whole in the caller's buffer (one
 *      longer than the direct part of a read too), and the caller's buffers
 *      are written only at their start; more super-packets than the pool
 *      holds end a batch, and the next goes on.
 *   5. UDP GRO split: lying and zero segment sizes, truncated last datagram,
 *      64 and more segments.
 *   6. Checksums left partial (leave_partial): the split's segments and the
 *      reader's packets, ul_csum_partial_travels and ul_csum_finish.
 *   7. Payloads left in the super-packet (share_payload): headers-only
 *      segments whose payload pointers into the pool reassemble the
 *      original, a pool buffer kept while lent, ul_tun_reader_pending.
 */
#include "../src/tun-read.c"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "check.h"
#include "gso-pkt.h"

#define MAXPKT 65535

/* Split pkt with the core and check every segment against the template;
 * split again with leave_partial: each segment then holds the pseudo-header
 * sum of its own length, travels as partial, and once finished is the
 * complete segment byte for byte (but for 0xffff where the split wrote a TCP
 * checksum of 0: ones' complement has two zeros). */
static void check_split(const struct gso_spec *sp)
{
  static uint8_t pkt[MAXPKT], orig[MAXPKT], seg[MAXPKT], joined[MAXPKT], part[MAXPKT];
  struct ul_vnet_hdr vh;
  struct ul_tso t, tp;
  uint32_t bad_partial = 0, bad_shared = 0;
  size_t hl, len = build_gso(pkt, sp, &vh, &hl), l3 = sp->version == 4 ? 20 : 40;
  size_t joined_len = 0, want_segs = (sp->payload + sp->gso_size - 1) / sp->gso_size;
  uint32_t i, bad = 0;

  memcpy(orig, pkt, len);
  CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_OK);
  CHECK_EQ(t.hdr_len, hl);
  CHECK_EQ(t.nsegs, want_segs);
  for (i = 0; i < t.nsegs; i++) {
    size_t off = (size_t)i * sp->gso_size;
    size_t chunk = sp->payload - off < sp->gso_size ? sp->payload - off : sp->gso_size;
    size_t n = ul_tso_segment(pkt, &t, i, seg);
    const uint8_t *th = seg + l3, *oh = orig + l3;
    int last = i + 1 == t.nsegs, ok = 1;

    ok &= n == hl + chunk;
    if (sp->version == 4) {
      ok &= seg[0] == 0x45 && be16(seg + 2) == n;
      ok &= be16(seg + 4) == ((be16(orig + 4) + i) & 0xffff);
      ok &= seg[1] == orig[1] && memcmp(seg + 6, orig + 6, 4) == 0 &&
            memcmp(seg + 12, orig + 12, 8) == 0;
      ok &= ref_sum(seg, 20, 0) == 0xffff;
    } else {
      ok &= be16(seg + 4) == n - 40 && memcmp(seg, orig, 4) == 0 &&
            memcmp(seg + 6, orig + 6, 34) == 0;
    }
    ok &= memcmp(th, oh, 4) == 0; /* ports */
    if (sp->proto == 6) {
      uint8_t want = orig[l3 + 13];
      if (!last)
        want &= (uint8_t)~0x09; /* FIN, PSH */
      if (i > 0)
        want &= (uint8_t)~0x80; /* CWR */
      ok &= be32(th + 4) == (uint32_t)(be32(oh + 4) + off);
      ok &= memcmp(th + 8, oh + 8, 5) == 0 && th[13] == want &&
            memcmp(th + 14, oh + 14, 2) == 0 && memcmp(th + 18, oh + 18, hl - l3 - 18) == 0;
    } else {
      ok &= be16(th + 4) == n - l3 && be16(th + 6) != 0;
    }
    ok &= ref_l4_ok(seg, l3, sp->proto, n);
    if (!ok && bad++ < 3)
      fprintf(stderr, "segment %u of v%u proto %u gso %zu payload %zu wrong\n",
              i, sp->version, sp->proto, sp->gso_size, sp->payload);
    tp = t;
    tp.leave_partial = true;
    {
      size_t at = sp->proto == 6 ? 16 : 6;
      int pok = ul_tso_segment(pkt, &tp, i, part) == n &&
                ref_l4_partial(part, l3, sp->proto, n) &&
                ul_csum_partial_travels(part, n, l3, at) == 1 &&
                memcmp(part, seg, l3 + at) == 0 &&            /* all but the field */
                memcmp(part + l3 + at + 2, seg + l3 + at + 2, n - l3 - at - 2) == 0 &&
                ul_csum_finish(part, n, l3, at) == UL_OK && ref_l4_ok(part, l3, sp->proto, n) &&
                /* the same field, but 0xffff may stand for a TCP sum of 0 (both mean zero) */
                (memcmp(part, seg, n) == 0 ||
                 (sp->proto == 6 && be16(seg + l3 + at) == 0 && be16(part + l3 + at) == 0xffff));
      if (!pok && bad_partial++ < 3)
        fprintf(stderr, "partial segment %u of v%u proto %u gso %zu wrong\n",
                i, sp->version, sp->proto, sp->gso_size);
    }
    {
      /* headers only, the payload left in the super-packet: the same bytes */
      static uint8_t hdr[MAXPKT];
      const uint8_t *pl = NULL;
      size_t plen = 0, h = ul_tso_segment_headers(pkt, &tp, i, hdr, &pl, &plen);
      int sok = ul_tso_segment(pkt, &tp, i, part) == n && /* again: finished above */
                h == hl && plen == n - hl && pl == pkt + hl + (size_t)i * sp->gso_size &&
                memcmp(hdr, part, hl) == 0 && memcmp(pl, part + hl, plen) == 0 &&
                ul_tso_segment_headers(pkt, &t, i, hdr, &pl, &plen) == 0; /* complete: no */
      if (!sok && bad_shared++ < 3)
        fprintf(stderr, "headers-only segment %u of v%u proto %u gso %zu wrong\n",
                i, sp->version, sp->proto, sp->gso_size);
    }
    memcpy(joined + joined_len, seg + hl, n - hl);
    joined_len += n - hl;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(bad_partial, 0);
  CHECK_EQ(bad_shared, 0);
  CHECK_EQ(joined_len, sp->payload);
  CHECK(memcmp(joined, orig + hl, sp->payload) == 0);
  CHECK(memcmp(pkt, orig, len) == 0); /* the template is left alone */
}

static void test_tso_split(void)
{
  static const size_t sizes[] = { 1, 2, 7, 536, 1000, 1388, 1398, 1448, 1460 };
  unsigned v;
  size_t k;

  for (v = 4; v <= 6; v += 2) {
    size_t max = MAXPKT - (v == 4 ? 20 : 40) - 32;
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      struct gso_spec sp = { v, 6, max, sizes[k], 0x10 | 0x08 | 0x01 | 0x80, 12 };
      check_split(&sp);
    }
    /* odd last segment, no options, plain ACK */
    check_split(&(struct gso_spec){ v, 6, 10 * 1398 + 17, 1398, 0x10, 0 });
    /* one segment only (payload <= gso_size) */
    check_split(&(struct gso_spec){ v, 6, 100, 1398, 0x18, 12 });
    /* 40 bytes of options */
    check_split(&(struct gso_spec){ v, 6, 30000, 1200, 0x10, 40 });
  }
}

/* IPv6 behind a segment routing header (type 4) whose segment list ends
 * at a final destination other than the IPv6 header's: every segment's
 * checksum must verify against the final destination (RFC 8200, 8.1),
 * whose pseudo-header sum the kernel left in the field; against the
 * header's destination it must not. With no segments left the header's
 * destination is final. A csum_start that is not where the extension
 * header chain ends, or a fragment header in it, is malformed. TCP and
 * UDP. */
static void test_tso_routing_header(void)
{
  static uint8_t plain[MAXPKT], pkt[MAXPKT], seg[MAXPKT], check[MAXPKT];
  static const uint8_t final_dst[16] = { 0x20, 0x01, 0, 0x02, [15] = 9 };
  unsigned proto;

  for (proto = 6; proto <= 17; proto += 11) {
    struct gso_spec sp = { 6, proto, 20 * 1300 + 11, 1300, 0x18, 0 };
    struct ul_vnet_hdr vh;
    struct ul_tso t;
    size_t hl, plen = build_gso(plain, &sp, &vh, &hl);
    const size_t rh = 8 + 2 * 16, l3 = 40 + rh, len = plen + rh;
    uint32_t i, good = 0, wrong = 0;
    uint16_t f;

    /* IPv6 header, SRH [next, len 4, type 4, left 1, last 1, flags, tag]
     * with segment list [final, the header's destination], then L4 */
    memcpy(pkt, plain, 40);
    pkt[4] = (uint8_t)((len - 40) >> 8);
    pkt[5] = (uint8_t)(len - 40);
    pkt[6] = 43;
    memcpy(pkt + 40, (const uint8_t[]){ (uint8_t)proto, 4, 4, 1, 1, 0, 0, 0 }, 8);
    memcpy(pkt + 48, final_dst, 16);
    memcpy(pkt + 64, plain + 24, 16);
    memcpy(pkt + l3, plain + 40, plen - 40);
    /* the field as the kernel fills it: pseudo header with the final one */
    memcpy(check, pkt, 40);
    memcpy(check + 24, final_dst, 16);
    f = (uint16_t)ref_pseudo(check, l3, proto, len);
    pkt[l3 + (proto == 6 ? 16 : 6)] = (uint8_t)(f >> 8);
    pkt[l3 + (proto == 6 ? 16 : 6) + 1] = (uint8_t)f;
    vh.csum_start = (uint16_t)l3;
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_OK);
    for (i = 0; i < t.nsegs; i++) {
      size_t n = ul_tso_segment(pkt, &t, i, seg);
      wrong += ref_l4_ok(seg, l3, proto, n); /* the header's destination */
      memcpy(check, seg, n);
      memcpy(check + 24, final_dst, 16);
      good += ref_l4_ok(check, l3, proto, n);
    }
    CHECK_EQ(t.nsegs, 21);
    CHECK_EQ(good, t.nsegs);
    CHECK_EQ(wrong, 0);

    /* no segments left: the header's destination is the final one */
    pkt[40 + 3] = 0;
    f = (uint16_t)ref_pseudo(pkt, l3, proto, len);
    pkt[l3 + (proto == 6 ? 16 : 6)] = (uint8_t)(f >> 8);
    pkt[l3 + (proto == 6 ? 16 : 6) + 1] = (uint8_t)f;
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_OK);
    for (i = 0, good = 0; i < t.nsegs; i++)
      good += ref_l4_ok(seg, l3, proto, ul_tso_segment(pkt, &t, i, seg));
    CHECK_EQ(good, t.nsegs);

    /* csum_start must be where the chain ends */
    vh.csum_start = 40;
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_DROP_TX_MALFORMED);
    vh.csum_start = (uint16_t)(l3 + 8);
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_DROP_TX_MALFORMED);
    vh.csum_start = (uint16_t)l3;
    pkt[40] = 44; /* the chain names a fragment header */
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_DROP_TX_MALFORMED);
    pkt[40] = (uint8_t)proto;
    CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_OK);
    vh.csum_start = 48; /* no extension header at all */
    CHECK_EQ(ul_tso_parse(plain, plen, &vh, &t), UL_DROP_TX_MALFORMED);
  }
}

static void test_uso_split(void)
{
  unsigned v;

  for (v = 4; v <= 6; v += 2) {
    check_split(&(struct gso_spec){ v, 17, 60000, 1200, 0, 0 });
    check_split(&(struct gso_spec){ v, 17, 10 * 1400 + 1, 1400, 0, 0 });
    check_split(&(struct gso_spec){ v, 17, 5000, 1, 0, 0 });
  }
}

static void test_tso_malformed(void)
{
  static uint8_t pkt[MAXPKT];
  struct gso_spec sp = { 4, 6, 5000, 1000, 0x10, 0 };
  struct ul_vnet_hdr vh, bad;
  struct ul_tso t;
  size_t hl, len = build_gso(pkt, &sp, &vh, &hl);

  CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_OK);
  bad = vh; bad.gso_size = 0;
  CHECK_EQ(ul_tso_parse(pkt, len, &bad, &t), UL_DROP_TX_MALFORMED);
  bad = vh; bad.flags = 0;
  CHECK_EQ(ul_tso_parse(pkt, len, &bad, &t), UL_DROP_TX_MALFORMED);
  bad = vh; bad.gso_type = 4; /* TCPV6 on an IPv4 packet */
  CHECK_EQ(ul_tso_parse(pkt, len, &bad, &t), UL_DROP_TX_MALFORMED);
  bad = vh; bad.gso_type = 3; /* UFO */
  CHECK_EQ(ul_tso_parse(pkt, len, &bad, &t), UL_DROP_TX_MALFORMED);
  bad = vh; bad.csum_start = 24; /* not the IPv4 header length */
  CHECK_EQ(ul_tso_parse(pkt, len, &bad, &t), UL_DROP_TX_MALFORMED);
  CHECK_EQ(ul_tso_parse(pkt, 30, &vh, &t), UL_DROP_TX_MALFORMED); /* TCP cut */
  pkt[20 + 12] = 0xf0; /* data offset 60 > what is there */
  CHECK_EQ(ul_tso_parse(pkt, 50, &vh, &t), UL_DROP_TX_MALFORMED);
  pkt[20 + 12] = 0x40; /* data offset 16 < 20 */
  CHECK_EQ(ul_tso_parse(pkt, len, &vh, &t), UL_DROP_TX_MALFORMED);
}

/* ---- the read path over a SOCK_SEQPACKET pair ---------------------------- */

static void put_record(int fd, const struct ul_vnet_hdr *vh, const uint8_t *pkt, size_t len)
{
  struct iovec iov[2] = { { (void *)vh, UL_VNET_HDR_LEN }, { (void *)pkt, len } };
  CHECK_EQ(writev(fd, iov, 2), (ssize_t)(UL_VNET_HDR_LEN + len));
}

static void test_read_batch(void)
{
  static uint8_t pkt[MAXPKT], joined[MAXPKT];
  uint64_t counters[UL_C_SLOT_WIDTH] = { 0 };
  struct gso_spec sp = { 4, 6, 47 * 1398 - 300, 1398, 0x18, 12 };
  struct ul_tun_pkt out[10];
  struct ul_tun_reader r;
  struct ul_vnet_hdr vh, plain = { 0 };
  size_t hl, len = build_gso(pkt, &sp, &vh, &hl), joined_len = 0;
  uint32_t total = 0, i;
  int sv[2], n, calls = 0;
  uint32_t seq_next = 0xffff0010u;

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0);
  for (i = 0; i < 10; i++)
    out[i].buf = malloc(UL_BUF_SIZE);
  CHECK_EQ(ul_tun_reader_init(&r, sv[0], counters), 0);

  CHECK(write(sv[1], "runt", 4) == 4);                  /* shorter than a vnet header */
  put_record(sv[1], &vh, pkt, len);                     /* 47 segments */
  {
    struct ul_vnet_hdr bad = vh;
    bad.gso_size = 0;
    put_record(sv[1], &bad, pkt, len);                  /* malformed */
  }
  put_record(sv[1], &plain, pkt, 60);                   /* a plain packet behind */
  while ((n = ul_tun_read_batch(&r, out, 10)) > 0 && calls++ < 20) {
    for (i = 0; i < (uint32_t)n; i++) {
      const uint8_t *ip = out[i].buf + UL_TX_HEADROOM;
      if (total < 47) {
        CHECK_EQ(be32(ip + 24), seq_next);              /* in order across calls */
        CHECK(ref_l4_ok(ip, 20, 6, out[i].len));
        seq_next += (uint32_t)(out[i].len - hl);
        memcpy(joined + joined_len, ip + hl, out[i].len - hl);
        joined_len += out[i].len - hl;
      } else {
        CHECK_EQ(out[i].len, 60);
      }
      total++;
    }
  }
  CHECK_EQ(n, 0);
  CHECK_EQ(total, 48);
  CHECK_EQ(joined_len, sp.payload);
  CHECK(memcmp(joined, pkt + hl, sp.payload) == 0);
  CHECK_EQ(r.supers, 1);
  CHECK_EQ(r.segments, 47);
  CHECK_EQ(counters[UL_C_DROPS + UL_DROP_TX_MALFORMED], 2);

  /* a read error before any packet: -errno, counted */
  close(sv[1]);
  close(sv[0]);
  r.fd = sv[0];
  CHECK_EQ(ul_tun_read_batch(&r, out, 10), -EBADF);
  CHECK_EQ(counters[UL_C_DROPS + UL_DROP_TUN_READ], 1);

  ul_tun_reader_free(&r);
  for (i = 0; i < 10; i++)
    free(out[i].buf);
}

/* Where reads land: out[i].buf is the caller's (never exchanged) and, once
 * the reader has seen a super-packet, only its first UL_TX_HEADROOM +
 * UL_TUN_READ_DIRECT bytes are written (a canary fills the rest), whatever
 * comes: super-packets, more of them than the pool holds (the batch ends
 * with the pool full and the next call goes on), a plain packet longer than
 * the direct part (joined whole). Before that first one, plain packets are
 * read whole where they are sent from. */
static void test_read_pool(void)
{
  static uint8_t pkt[MAXPKT], jumbo[3000];
  const size_t canary_at = UL_TX_HEADROOM - UL_VNET_HDR_LEN + UL_TUN_READ_DIRECT;
  struct gso_spec big = { 4, 6, 47 * 1398 - 300, 1398, 0x10, 12 };
  struct gso_spec small = { 6, 6, 2 * 1000, 1000, 0x10, 0 };
  uint64_t counters[UL_C_SLOT_WIDTH] = { 0 };
  struct ul_tun_pkt out[64];
  uint8_t *given[64];
  struct ul_tun_reader r;
  struct ul_vnet_hdr vh, plain = { 0 };
  uint32_t mode, i, j, bad = 0;
  size_t hl, len;
  int sv[2];

  for (i = 0; i < sizeof(jumbo); i++)
    jumbo[i] = (uint8_t)(i * 7 + 1);
  jumbo[0] = 0x45; /* only the length matters to the reader */
  for (i = 0; i < 64; i++)
    given[i] = out[i].buf = malloc(UL_BUF_SIZE);
  for (mode = 0; mode < 2; mode++) { /* copied segments, shared payloads */
    uint32_t segs = 0, plains = 0;
    int calls[4], n, c;

    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0);
    CHECK_EQ(ul_tun_reader_init(&r, sv[0], counters), 0);
    r.leave_partial = mode == 1;
    r.share_payload = mode == 1;
    /* a plain packet, then the first super-packet: both read whole */
    put_record(sv[1], &plain, jumbo, sizeof(jumbo));
    len = build_gso(pkt, &small, &vh, &hl);
    put_record(sv[1], &vh, pkt, len);
    CHECK_EQ(ul_tun_read_batch(&r, out, 64), 3);
    CHECK(memcmp(out[0].buf + UL_TX_HEADROOM, jumbo, sizeof(jumbo)) == 0);
    CHECK(!r.share_payload || (out[1].payload >= r.pool[0] &&
                               out[1].payload < r.pool[0] + UL_BUF_SIZE));
    CHECK_EQ(r.supers, 1);
    for (i = 0; i < 64; i++)
      memset(out[i].buf, 0xa5, UL_BUF_SIZE);
    len = build_gso(pkt, &big, &vh, &hl);
    put_record(sv[1], &vh, pkt, len);               /* 47 segments */
    put_record(sv[1], &plain, jumbo, sizeof(jumbo)); /* longer than direct */
    len = build_gso(pkt, &small, &vh, &hl);
    for (i = 0; i < UL_TUN_POOL + 2; i++)            /* more than the pool */
      put_record(sv[1], &vh, pkt, len);
    for (c = 0; c < 4; c++) {
      calls[c] = n = ul_tun_read_batch(&r, out, 64);
      for (i = 0; n > 0 && i < (uint32_t)n; i++) {
        size_t total = out[i].len + out[i].payload_len;
        if (total == sizeof(jumbo)) {
          plains++;
          bad += out[i].payload != NULL ||
                 memcmp(out[i].buf + UL_TX_HEADROOM, jumbo, sizeof(jumbo)) != 0;
          continue;
        }
        segs++;
        if (out[i].payload != NULL) { /* in a pool buffer, not a caller's */
          bool in_pool = false;
          for (j = 0; j < UL_TUN_POOL; j++)
            in_pool |= out[i].payload >= r.pool[j] && out[i].payload < r.pool[j] + UL_BUF_SIZE;
          bad += !in_pool || mode == 0;
        }
      }
      for (i = 0; i < 64; i++) /* the jumbo packet may pass the canary */
        if (out[i].buf != given[i])
          bad++;
    }
    /* shared: 47 + the plain one + 8 super-packets of 2 (the pool is full
     * after 8 taken: the first and seven small ones), then the last 3;
     * copied: nothing stays taken, so one call takes everything */
    if (mode == 1) {
      CHECK_EQ(calls[0], 47 + 1 + 2 * (UL_TUN_POOL - 1));
      CHECK_EQ(calls[1], 2 * 3);
    } else {
      CHECK_EQ(calls[0], 64);
      CHECK_EQ(calls[1], 47 + 1 + 2 * (UL_TUN_POOL + 2) - 64);
    }
    CHECK_EQ(calls[2], 0);
    CHECK_EQ(segs, 47 + 2 * (UL_TUN_POOL + 2));
    CHECK_EQ(plains, 1);
    CHECK_EQ(r.supers, 2 + UL_TUN_POOL + 2);
    close(sv[1]);
    close(sv[0]);
    ul_tun_reader_free(&r);
  }
  CHECK_EQ(bad, 0);
  for (i = 0; i < 64; i++) { /* nothing written past the direct part but the jumbo */
    for (j = canary_at; j < UL_BUF_SIZE; j++)
      if (out[i].buf[j] != 0xa5)
        break;
    bad += j != UL_BUF_SIZE && !(j < UL_TX_HEADROOM + sizeof(jumbo));
    free(out[i].buf);
  }
  CHECK_EQ(bad, 0);
}

/* The reader with leave_partial: segments and NEEDS_CSUM packets come with
 * their checksum partial and its place; others complete, offset 0 is
 * finished at once, a field outside the packet is a drop. */
static void test_read_partial(void)
{
  static uint8_t pkt[MAXPKT];
  uint64_t counters[UL_C_SLOT_WIDTH] = { 0 };
  struct gso_spec sp = { 6, 6, 3 * 1000 + 5, 1000, 0x18, 12 };
  struct ul_tun_pkt out[8];
  struct ul_tun_reader r;
  struct ul_vnet_hdr vh, one, zero, outside, plain = { 0 };
  size_t hl, len = build_gso(pkt, &sp, &vh, &hl);
  int sv[2], n, i;

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0);
  for (i = 0; i < 8; i++)
    out[i].buf = malloc(UL_BUF_SIZE);
  CHECK_EQ(ul_tun_reader_init(&r, sv[0], counters), 0);
  r.leave_partial = true;

  put_record(sv[1], &vh, pkt, len);                       /* 4 segments */
  one = vh;
  one.gso_type = 0;
  one.gso_size = 0;
  put_record(sv[1], &one, pkt, len);                      /* NEEDS_CSUM, no GSO */
  zero = one;
  zero.csum_offset = 0;
  put_record(sv[1], &zero, pkt, 100);                     /* offset 0: finished */
  outside = one;
  outside.csum_offset = 2000;
  put_record(sv[1], &outside, pkt, 100);                  /* field outside: drop */
  put_record(sv[1], &plain, pkt, 60);                     /* complete already */
  n = ul_tun_read_batch(&r, out, 8);
  CHECK_EQ(n, 7);
  for (i = 0; i < 4 && i < n; i++) {
    const uint8_t *ip = out[i].buf + UL_TX_HEADROOM;
    CHECK(out[i].csum_start == 40 && out[i].csum_offset == 16 && out[i].csum_travels);
    CHECK(ref_l4_partial(ip, 40, 6, out[i].len));
    CHECK_EQ(ul_csum_partial_travels(ip, out[i].len, 40, 16), 1); /* what the reader said */
  }
  if (n == 7) {
    CHECK(out[4].csum_start == 40 && out[4].csum_offset == 16 && out[4].len == len);
    CHECK(out[4].csum_travels);
    CHECK(ref_l4_partial(out[4].buf + UL_TX_HEADROOM, 40, 6, len));
    CHECK(out[5].csum_offset == 0 && out[5].len == 100 && !out[5].csum_travels);
    CHECK(out[6].csum_offset == 0 && out[6].len == 60 && !out[6].csum_travels);
  }
  CHECK_EQ(counters[UL_C_DROPS + UL_DROP_TX_MALFORMED], 1);

  /* what may travel partial: only what a receiver takes for partial */
  {
    uint8_t *ip = out[0].buf + UL_TX_HEADROOM;
    size_t l = out[0].len;
    CHECK_EQ(ul_csum_partial_travels(ip, l, 40, 16), 1);
    CHECK_EQ(ul_csum_partial_travels(ip, l, 40, 6), 0);    /* not where TCP has it */
    CHECK_EQ(ul_csum_partial_travels(ip, l, 20, 16), 0);   /* not behind the header */
    CHECK_EQ(ul_csum_partial_travels(ip, l + 1, 40, 16), 0); /* IP length differs */
    ip[40 + 16] ^= 1;
    CHECK_EQ(ul_csum_partial_travels(ip, l, 40, 16), 0);   /* not the pseudo sum */
    ip[40 + 16] ^= 1;
    ip[6] = 0;                                            /* hop-by-hop header */
    CHECK_EQ(ul_csum_partial_travels(ip, l, 40, 16), 0);
    ip[6] = 6;
    CHECK_EQ(ul_csum_finish(ip, l, 40, l), UL_DROP_TX_MALFORMED);
    CHECK_EQ(ul_csum_finish(ip, l, l + 1, 0), UL_DROP_TX_MALFORMED);
    CHECK_EQ(ul_csum_finish(ip, l, 40, 16), UL_OK);
    CHECK(ref_l4_ok(ip, 40, 6, l));
    CHECK_EQ(ul_csum_partial_travels(ip, l, 40, 16), 0);   /* finished now */
  }

  close(sv[1]);
  close(sv[0]);
  ul_tun_reader_free(&r);
  for (i = 0; i < 8; i++)
    free(out[i].buf);
}

/* The reader with share_payload: segments come as headers with their
 * payload left where the super-packet lies (a pool buffer, which stays put
 * while a super-packet is continued across calls), and
 * ul_tun_reader_pending says when to call again without waiting. */
static void test_read_shared(void)
{
  static uint8_t a[MAXPKT], b[MAXPKT], joined[2][MAXPKT], whole[MAXPKT];
  struct gso_spec sa = { 4, 6, 47 * 1398 - 300, 1398, 0x18, 12 };
  struct gso_spec sb = { 6, 6, 3 * 1000 + 5, 1000, 0x10, 0 };
  static const int want_calls[] = { 10, 10, 10, 10, 10, 2, 0 };
  uint64_t counters[UL_C_SLOT_WIDTH] = { 0 };
  struct ul_tun_pkt out[10];
  struct ul_tun_reader r;
  struct ul_vnet_hdr va, vb, plain = { 0 };
  size_t hla, hlb, la = build_gso(a, &sa, &va, &hla), lb = build_gso(b, &sb, &vb, &hlb);
  size_t jl[2] = { 0, 0 };
  uint32_t seen = 0, shared = 0, bad = 0, c, i;
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0);
  for (i = 0; i < 10; i++)
    out[i].buf = malloc(UL_BUF_SIZE);
  CHECK_EQ(ul_tun_reader_init(&r, sv[0], counters), 0);
  r.leave_partial = true;
  r.share_payload = true;
  put_record(sv[1], &va, a, la);     /* 47 segments: continued over 5 calls */
  put_record(sv[1], &plain, a, 60);  /* then a plain packet */
  put_record(sv[1], &vb, b, lb);     /* and 4 segments, 2 in that call */
  for (c = 0; c < sizeof(want_calls) / sizeof(want_calls[0]); c++) {
    int n = ul_tun_read_batch(&r, out, 10);
    CHECK_EQ(n, want_calls[c]);
    CHECK_EQ(ul_tun_reader_pending(&r), c < 5);
    for (i = 0; n > 0 && i < (uint32_t)n; i++, seen++) {
      const uint8_t *ip = out[i].buf + UL_TX_HEADROOM;
      size_t total = out[i].len + out[i].payload_len;
      int k = seen < 47 ? 0 : seen == 47 ? -1 : 1;
      size_t hl = k == 0 ? hla : hlb;

      memcpy(whole, ip, out[i].len);
      if (out[i].payload != NULL) {
        shared++;
        memcpy(whole + out[i].len, out[i].payload, out[i].payload_len);
        /* pending, a super-packet's buffer is pool[0] from the next call on */
        bad += !(out[i].payload >= r.pool[0] && out[i].payload < r.pool[0] + UL_BUF_SIZE) &&
               !(c == 4 && k == 1); /* B was read into pool[1] */
        bad += out[i].len != hl;
      }
      if (k < 0) {
        bad += total != 60 || out[i].payload != NULL;
        continue;
      }
      bad += !ref_l4_partial(whole, k == 0 ? 20 : 40, 6, total);
      memcpy(joined[k] + jl[k], whole + hl, total - hl);
      jl[k] += total - hl;
    }
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(shared, 47 + 4); /* every segment, the first too */
  CHECK_EQ(jl[0], sa.payload);
  CHECK_EQ(jl[1], sb.payload);
  CHECK(memcmp(joined[0], a + hla, sa.payload) == 0);
  CHECK(memcmp(joined[1], b + hlb, sb.payload) == 0);

  close(sv[1]);
  close(sv[0]);
  ul_tun_reader_free(&r);
  for (i = 0; i < 10; i++)
    free(out[i].buf);
}

/* ---- UDP GRO split --------------------------------------------------------- */

static void test_gro_split(void)
{
  struct ul_span sp[200];
  int n;

  n = ul_udp_gro_split(1400 * 5 + 3, 1400, 64, sp, 200); /* truncated last */
  CHECK_EQ(n, 6);
  CHECK(n == 6 && sp[5].off == 7000 && sp[5].len == 3 && sp[4].len == 1400);
  n = ul_udp_gro_split(500, 1400, 64, sp, 200);           /* size larger than all */
  CHECK(n == 1 && sp[0].off == 0 && sp[0].len == 500);
  CHECK_EQ(ul_udp_gro_split(500, 0, 64, sp, 200), -EINVAL); /* zero size */
  CHECK_EQ(ul_udp_gro_split(0, 100, 64, sp, 200), -EINVAL);
  CHECK_EQ(ul_udp_gro_split(64 * 100, 100, 64, sp, 200), 64); /* exactly 64 */
  CHECK_EQ(ul_udp_gro_split(64 * 100 + 1, 100, 64, sp, 200), -E2BIG);
  CHECK_EQ(ul_udp_gro_split(65000, 1, 64, sp, 200), -E2BIG); /* lying: size 1 */
  CHECK_EQ(ul_udp_gro_split(150 * 10, 10, 1000, sp, 100), -E2BIG); /* cap */
}

int main(void)
{
  test_tso_split();
  test_uso_split();
  test_tso_routing_header();
  test_tso_malformed();
  test_read_batch();
  test_read_partial();
  test_read_shared();
  test_read_pool();
  test_gro_split();
  return CHECK_DONE();
}
