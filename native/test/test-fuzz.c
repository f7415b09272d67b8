/*
 * test-fuzz.c — seeded random input into the parsers that a pod or a peer
 * feeds, under ASan and UBSan, each with an oracle that can fail. No
 * privileges needed.
 *
 *   1. The TUN read path (ul_tun_read_batch over a SOCK_SEQPACKET pair, in
 *      its three modes: checksums complete, left partial, payloads shared).
 *      Records are TSO/USO super-packets and plain packets with mutated
 *      headers and lying virtio-net headers, runts, and random bytes. Each
 *      record must end as exactly one of: a drop counted as malformed; one
 *      packet, the record itself; or a split whose segments have valid IP
 *      lengths and checksums, consecutive TCP sequence numbers and L4
 *      checksums that verify, and whose payloads join up to the record's.
 *   2. Receive coalescing (ul_gro_batch): batches of TCP segments and UDP
 *      datagrams from a few flows with gaps, odd flags, odd sizes, partial,
 *      bad or missing checksums and flipped bytes. Every present packet is
 *      in exactly one chain, in order; a packet standing alone is
 *      untouched; a super-packet is made only of packets whose IPv4 header
 *      checksum and L4 checksum verify (or whose L4 checksum is exactly
 *      partial), UDP only when asked for and at most UL_GRO_UDP_SEGS of
 *      them, and cut as the kernel's GSO cuts it, gives back each member
 *      (TCP's IPv4 ID and header checksum aside, gro.c says why) with a
 *      checksum that verifies.
 *   3. UDP GRO split with any length, segment size and cap: the spans tile
 *      the buffer, or the call refuses.
 *   4. Decapsulation, the receive-side virtio-net headers, the flow hash and
 *      the ICMP errors on mutated and random bytes, each in a buffer of
 *      exactly its length (so ASan sees any read past the end).
 *
 * The seed is printed; UL_FUZZ_SEED=N repeats a run, UL_FUZZ_SCALE=N runs N
 * times as many rounds (the default takes a few seconds under the
 * sanitizers).
 */
#include "../src/tun-read.c"
#include "../src/gro.c"
#include "../src/tun.c" /* ul_tun_tcp_gso, ul_tun_gso_for_rx */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "gro-pkt.h"
#include "gso-pkt.h"
#include "snap.h"

/* ---- a seeded PRNG (xorshift64*) ----------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

static uint32_t below(uint32_t n)
{
  return n == 0 ? 0 : (uint32_t)(rnd() % n);
}

static int chance(unsigned percent)
{
  return below(100) < percent;
}

static void fill(uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = (uint8_t)rnd();
}

/* A copy of p[0..n) in a buffer of exactly n bytes (1 for n = 0). */
static uint8_t *exact(const uint8_t *p, size_t n)
{
  uint8_t *q = malloc(n ? n : 1);

  if (n)
    memcpy(q, p, n);
  return q;
}

/* Flip a byte among the first `span` of p[0..len). */
static void flip(uint8_t *p, size_t len, size_t span)
{
  if (len == 0)
    return;
  p[below((uint32_t)(span < len ? span : len))] ^= (uint8_t)(1 + below(255));
}

/* ---- 1. the TUN read path ---------------------------------------------------- */

#define FUZZ_BATCH 64

/* A record for the reader: pkt[0..return) behind *vh. */
static size_t make_record(uint8_t *pkt, struct ul_vnet_hdr *vh)
{
  struct gso_spec sp;
  size_t hl, len, l3, l4, room;

  if (chance(10)) { /* random bytes behind a random header */
    len = chance(30) ? below(64) : below(UL_MAX_PACKET + 2);
    fill(pkt, len);
    fill((uint8_t *)vh, sizeof(*vh));
    return len;
  }
  memset(&sp, 0, sizeof(sp));
  sp.version = chance(50) ? 4 : 6;
  sp.proto = chance(25) ? 17 : 6;
  sp.opts = sp.proto == 6 ? 4 * (int)below(11) : 0;
  sp.tcp_flags = chance(70) ? 0x10 : (uint8_t)rnd();
  l3 = sp.version == 4 ? 20 : 40;
  l4 = sp.proto == 6 ? 20 + (size_t)sp.opts : 8;
  room = UL_MAX_PACKET - l3 - l4;
  sp.payload = chance(80) ? below(6000) : below((uint32_t)room + 1);
  sp.gso_size = chance(70) ? 1 + below(1500) : chance(50) ? 1 + below(40) : 1 + below(65535);
  if (sp.payload / sp.gso_size > 20000) /* keep a round short: 20,000 segments at most */
    sp.gso_size = sp.payload / 20000 + 1;
  len = build_gso(pkt, &sp, vh, &hl);
  if (chance(25)) { /* a plain packet, its checksum partial or complete */
    vh->gso_type = 0;
    vh->gso_size = 0;
    if (chance(30))
      vh->flags = 0;
  }
  while (chance(40)) {
    switch (below(6)) {
    case 0: flip(pkt, len, l3 + l4); break;
    case 1: vh->hdr_len = (uint16_t)rnd(); break;
    case 2: vh->csum_start = (uint16_t)(chance(50) ? below(80) : rnd()); break;
    case 3: vh->csum_offset = (uint16_t)(chance(50) ? below(24) : rnd()); break;
    case 4: vh->gso_type = (uint8_t)(chance(50) ? below(6) : rnd()); break;
    default: len = below((uint32_t)len + 1); break;
    }
  }
  return len;
}

static int seg_valid(const uint8_t *seg, size_t len, const struct ul_tso *t)
{
  if (len < t->hdr_len || (seg[0] >> 4) != t->version)
    return 0;
  if (t->version == 4 &&
      (ref_sum(seg, t->l3, 0) != 0xffff || be16(seg + 2) != len))
    return 0;
  if (t->version == 6 && be16(seg + 4) != len - 40)
    return 0;
  if (t->proto == 17 && be16(seg + t->l3 + 4) != len - t->l3)
    return 0;
  return ref_l4_ok(seg, t->l3, t->proto, len);
}

static void fuzz_reader(uint32_t rounds)
{
  static uint8_t rec[UL_MAX_PACKET + 2], seg[UL_BUF_SIZE], joined[UL_BUF_SIZE];
  uint64_t counters[UL_C_SLOT_WIDTH] = { 0 };
  struct ul_tun_pkt out[FUZZ_BATCH];
  struct ul_tun_reader r;
  uint32_t round, i, bad = 0, splits = 0, plains = 0, drops = 0;
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0);
  {
    int sz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  }
  for (i = 0; i < FUZZ_BATCH; i++)
    out[i].buf = malloc(UL_BUF_SIZE);
  CHECK_EQ(ul_tun_reader_init(&r, sv[0], counters), 0);

  for (round = 0; round < rounds; round++) {
    struct ul_vnet_hdr vh;
    size_t len = make_record(rec, &vh), joined_len = 0, hdr_len = 0;
    uint64_t drops0 = counters[UL_C_DROPS + UL_DROP_TX_MALFORMED];
    uint64_t supers0 = r.supers, segs0 = r.segments;
    uint32_t mode = below(3), got = 0, seq0 = 0;
    int ok = 1, n, calls = 0;
    struct ul_tso t;

    r.leave_partial = mode >= 1;
    r.share_payload = mode == 2;
    if (chance(3)) { /* a runt: shorter than the virtio-net header */
      len = below(UL_VNET_HDR_LEN + 1);
      CHECK(write(sv[1], rec, len) == (ssize_t)len);
      len = 0;
    } else {
      struct iovec iov[2] = { { &vh, UL_VNET_HDR_LEN }, { rec, len } };
      CHECK(writev(sv[1], iov, 2) == (ssize_t)(UL_VNET_HDR_LEN + len));
    }
    memset(&t, 0, sizeof(t));
    while ((n = ul_tun_read_batch(&r, out, 1 + below(FUZZ_BATCH))) > 0 || ul_tun_reader_pending(&r)) {
      if (calls++ > 30000) {
        ok = 0;
        break;
      }
      if (n < 0) {
        ok = 0;
        break;
      }
      if (r.supers != supers0)
        t = r.tso; /* the split's description, for the oracle */
      for (i = 0; i < (uint32_t)n; i++, got++) {
        size_t total = out[i].len + out[i].payload_len;

        memcpy(seg, out[i].buf + UL_TX_HEADROOM, out[i].len);
        if (out[i].payload != NULL)
          memcpy(seg + out[i].len, out[i].payload, out[i].payload_len);
        if (total > UL_MAX_PACKET + 1) {
          ok = 0;
          continue;
        }
        if (out[i].csum_offset != 0) {
          ok &= (size_t)out[i].csum_start + out[i].csum_offset + 2 <= total;
          ok &= ul_csum_finish(seg, total, out[i].csum_start, out[i].csum_offset) == UL_OK;
        }
        if (r.supers == supers0) { /* the record itself */
          size_t field = (size_t)vh.csum_start + vh.csum_offset;
          int finished = (vh.flags & UL_VNET_F_NEEDS_CSUM) != 0 && field + 2 <= len;
          ok &= total == len;
          if (ok && finished)
            ok &= memcmp(seg, rec, field) == 0 &&
                  memcmp(seg + field + 2, rec + field + 2, len - field - 2) == 0;
          else if (ok)
            ok &= memcmp(seg, rec, len) == 0;
          continue;
        }
        if (got == 0) {
          hdr_len = t.hdr_len;
          if (t.proto == 6)
            seq0 = be32(seg + t.l3 + 4);
        }
        ok &= seg_valid(seg, total, &t);
        if (t.proto == 6)
          ok &= be32(seg + t.l3 + 4) == (uint32_t)(seq0 + joined_len);
        if (ok && total >= hdr_len) {
          memcpy(joined + joined_len, seg + hdr_len, total - hdr_len);
          joined_len += total - hdr_len;
        }
      }
    }
    {
      uint64_t dropped = counters[UL_C_DROPS + UL_DROP_TX_MALFORMED] - drops0;
      uint64_t split = r.supers - supers0, segments = r.segments - segs0;
      uint64_t plain = got - segments;

      ok &= dropped + split + plain == 1;
      if (split == 1) {
        ok &= segments == t.nsegs && joined_len == len - hdr_len &&
              memcmp(joined, rec + hdr_len, joined_len) == 0;
        splits++;
      }
      plains += (uint32_t)plain;
      drops += (uint32_t)dropped;
    }
    if (!ok && bad++ < 5)
      fprintf(stderr, "reader: record %u (len %zu, gso_type %u, gso_size %u, csum %u/%u, mode %u) wrong\n",
              round, len, vh.gso_type, vh.gso_size, vh.csum_start, vh.csum_offset, mode);
  }
  CHECK_EQ(bad, 0);
  /* the mix must reach every outcome, or the oracle above proves little */
  CHECK(splits > rounds / 4 && plains > rounds / 20 && drops > rounds / 20);
  printf("reader: %u records: %u split, %u plain, %u dropped\n", rounds, splits, plains, drops);
  ul_tun_reader_free(&r);
  for (i = 0; i < FUZZ_BATCH; i++)
    free(out[i].buf);
  close(sv[0]);
  close(sv[1]);
}

/* ---- 2. receive coalescing --------------------------------------------------- */

struct flow {
  struct spec sp;
  uint32_t next_seq;
};

/* Do the piece cut from a super-packet and the member's input agree? IPv4
 * ID and header checksum are the super-packet's (gro.c), the TCP checksum
 * is computed by the cut, and the urgent pointer is the first member's: it
 * means nothing without URG, which stands alone (the kernel's GRO does not
 * compare it either). Compare all else. */
static int piece_matches(const uint8_t *piece, const uint8_t *member, size_t len)
{
  unsigned v = member[0] >> 4, proto = proto_of(member);
  size_t l3 = v == 4 ? 20 : 40, k;
  /* UDP without DF keeps its IDs: a run's must count up (gro.c) */
  int id_kept = proto == 17 && v == 4 && (member[6] & 0x40) == 0;

  for (k = 0; k < len; k++) {
    if (v == 4 && (k == 10 || k == 11 || (!id_kept && (k == 4 || k == 5))))
      continue;
    if (proto == 6 ? k >= l3 + 16 && k < l3 + 20 : k >= l3 + 6 && k < l3 + 8)
      continue;
    if (piece[k] != member[k])
      return 0;
  }
  return ref_l4_ok(piece, l3, proto, len);
}

/* May a segment be trusted into a super-packet? */
static int member_provable(const uint8_t *p, size_t len)
{
  unsigned v = p[0] >> 4;
  size_t l3 = v == 4 ? 20 : 40;

  if (v == 4 && ref_sum(p, 20, 0) != 0xffff)
    return 0;
  return ref_l4_ok(p, l3, proto_of(p), len) || ref_l4_partial(p, l3, proto_of(p), len);
}

/* Cut the super-packet led by `lead` as the kernel's TCP or UDP GSO would and
 * compare each piece with its member's input. */
static int cut_matches(uint32_t lead, uint8_t in[][HEADROOM + 2048])
{
  static uint8_t sup[70000];
  const struct ul_vnet_hdr *vh = &items[lead].vh;
  size_t total = gather((int)lead, sup), hl = vh->hdr_len, l3 = vh->csum_start, off = hl;
  uint32_t member = lead;
  int k = 0, ok = total == items[lead].total && vh->gso_size > 0 &&
                  vh->gso_size <= 2048 - hl && hl > l3 &&
                  (size_t)vh->csum_start + vh->csum_offset + 2 <= hl;

  while (ok && off < total) {
    uint8_t piece[2048];
    size_t len = cut_piece(sup, total, vh, off, k++, piece);

    if (member == UL_GRO_END || len != items[member].len)
      return 0;
    ok &= piece_matches(piece, in[member] + HEADROOM, len);
    member = items[member].next;
    off += len - hl;
  }
  return ok && member == UL_GRO_END;
}

static void fuzz_gro(uint32_t rounds)
{
  static uint8_t in[NBUF][HEADROOM + 2048];
  uint32_t round, bad = 0, merged = 0, groups = 0, udp_merged = 0;

  for (round = 0; round < rounds; round++) {
    struct flow flows[3];
    uint32_t n = 1 + below(NBUF), nflows = 1 + below(3), i, k;
    int mtu = chance(5) ? (int)below(3) - 1 : chance(20) ? 600 + (int)below(1000) : 1500;
    uint8_t visited[NBUF] = { 0 };
    unsigned protos = chance(80) ? UL_GRO_TCP | UL_GRO_UDP : UL_GRO_TCP;
    const char *why = NULL;
    int ok = 1;

    for (i = 0; i < nflows; i++) {
      memset(&flows[i], 0, sizeof(flows[i]));
      flows[i].sp.version = chance(50) ? 4 : 6;
      flows[i].sp.sport = (uint16_t)(40000 + i);
      flows[i].sp.payload = chance(70) ? MSS : 1 + below(MSS);
      flows[i].sp.tsval = (uint32_t)rnd();
      flows[i].sp.ip_id = (uint16_t)rnd();
      flows[i].sp.udp = chance(35);
      flows[i].sp.no_df = flows[i].sp.udp && chance(30); /* then IDs must count up */
      flows[i].next_seq = (uint32_t)rnd();
    }
    reset();
    for (i = 0; i < n; i++) {
      struct flow *f = &flows[below(nflows)];
      struct spec s = f->sp;
      static const uint8_t odd[] = { 0x18, 0x11, 0x02, 0x90, 0x50, 0x04, 0x30, 0x00, 0x12 };

      s.seq = chance(90) ? f->next_seq : (uint32_t)rnd();
      if (chance(15))
        s.payload = below(MSS + 1);
      if (chance(10))
        s.flags = odd[below(sizeof(odd))];
      s.partial = chance(30);
      s.bad_csum = chance(5);
      s.ip_options = s.version == 4 && chance(3);
      if (chance(3))
        s.no_df = !s.no_df;
      if (s.udp) {
        s.zero_csum = chance(3);
        if (chance(2))
          s.ip_id = (uint16_t)rnd(); /* an ID out of turn */
        build_udp((int)i, s);
      } else {
        s.udp = chance(2); /* a TCP layout with protocol 17 */
        if (chance(5))
          s.tsval++;
        if (chance(3))
          s.window++;
        build((int)i, s);
      }
      f->next_seq = s.seq + (uint32_t)s.payload;
      f->sp.ip_id++;
      if (chance(8)) { /* a flipped byte, maybe with its IPv4 header checksum mended */
        uint8_t *p = items[i].pkt;
        flip(p, items[i].len, chance(70) ? 72 : items[i].len);
        if ((p[0] >> 4) == 4 && chance(50)) {
          size_t ihl = (size_t)(p[0] & 0x0f) * 4;
          if (ihl >= 20 && ihl <= items[i].len) {
            put16(p + 10, 0);
            put16(p + 10, ul_csum_fold(ul_csum_partial(p, ihl, 0)));
          }
        }
      }
      if (chance(3))
        items[i].len = below((uint32_t)items[i].len + 1); /* the IP length now lies */
      if (chance(2))
        items[i].pkt = NULL; /* dropped earlier in the batch */
      memcpy(in[i] + HEADROOM, bufs[i] + HEADROOM, orig_len[i]);
    }
    ul_gro_batch(items, n, mtu, protos);

    for (i = 0; i < n && ok; i++) {
      uint32_t m, prev = 0;

      if (items[i].pkt == NULL) {
        ok &= items[i].count == 0 && items[i].next == UL_GRO_END;
        why = ok ? why : "an absent packet in a chain";
        continue;
      }
      if (items[i].count == 0)
        continue; /* a follower: visited from its leader */
      for (k = i, m = 0; k != UL_GRO_END && m <= n; k = items[k].next, m++) {
        ok &= k < n && !visited[k] && items[k].pkt != NULL && (k == i || k > prev);
        if (!ok)
          break;
        visited[k] = 1;
        prev = k;
      }
      ok &= m == items[i].count;
      if (!ok) {
        why = "a chain";
        break;
      }
      groups++;
      if (items[i].count == 1) {
        ok &= memcmp(items[i].pkt, in[i] + HEADROOM, items[i].len) == 0;
        why = ok ? why : "a packet standing alone was changed";
        continue;
      }
      merged += items[i].count;
      if (mtu <= 0 || items[i].len > (size_t)mtu || items[i].total > UL_MAX_PACKET)
        why = "a super-packet past the MTU or 64 KiB";
      if (proto_of(in[i] + HEADROOM) == 17 &&
          ((protos & UL_GRO_UDP) == 0 || items[i].count > UL_GRO_UDP_SEGS))
        why = "a UDP run not asked for, or too long";
      if (proto_of(in[i] + HEADROOM) == 17)
        udp_merged += items[i].count;
      for (k = i; !why && k != UL_GRO_END; k = items[k].next)
        if (!member_provable(in[k] + HEADROOM, items[k].len))
          why = "a member not proven by its checksums";
      if (!why && !cut_matches(i, in))
        why = "a super-packet cut apart differs from its members";
      ok = why == NULL;
    }
    for (k = 0; k < n && ok; k++)
      ok &= items[k].pkt == NULL || visited[k];
    why = ok ? why : why ? why : "a packet in no chain";
    if (!ok && bad++ < 5)
      fprintf(stderr, "gro: batch %u (%u packets, %u flows, mtu %d): %s at %u\n",
              round, n, nflows, mtu, why, i);
  }
  CHECK_EQ(bad, 0);
  CHECK(merged > rounds && groups > rounds); /* the mix coalesces, and not always */
  CHECK(udp_merged > rounds / 4 && udp_merged < merged);
  printf("gro: %u batches: %u groups, %u packets coalesced (%u UDP)\n", rounds, groups,
         merged, udp_merged);
}

/* ---- 3. UDP GRO split ---------------------------------------------------------- */

static void fuzz_gro_split(uint32_t rounds)
{
  static struct ul_span spans[80];
  uint32_t round, bad = 0, cut = 0;

  for (round = 0; round < rounds; round++) {
    size_t len = chance(5) ? 0 : below(70000);
    size_t seg = chance(5) ? 0 : chance(50) ? 1 + below(1500) : below(70000);
    size_t max = below(80), cap = below(81), off = 0;
    int n = ul_udp_gro_split(len, seg, max, spans, cap), k, ok = 1;

    if (n < 0) {
      ok = (seg == 0 || len == 0) ? n == -EINVAL
                                  : n == -E2BIG && (len + seg - 1) / seg > (max < cap ? max : cap);
    } else {
      ok = n >= 1 && (size_t)n <= max && (size_t)n <= cap;
      for (k = 0; ok && k < n; k++) {
        ok &= spans[k].off == off && spans[k].len >= 1 &&
              (spans[k].len == seg || (k == n - 1 && spans[k].len < seg));
        off += spans[k].len;
      }
      ok &= off == len;
      cut++;
    }
    if (!ok && bad++ < 5)
      fprintf(stderr, "gro split: len %zu seg %zu max %zu cap %zu gave %d\n", len, seg, max, cap, n);
  }
  CHECK_EQ(bad, 0);
  CHECK(cut > rounds / 10);
}

/* ---- 4. decapsulation, rx headers, flow hash, ICMP errors ---------------------- */

static const uint8_t MAC1[6] = { 0x02, 0, 0, 0, 0, 1 }, MAC2[6] = { 0x02, 0, 0, 0, 0, 2 };

static void fuzz_decap(uint32_t rounds)
{
  struct ul_codec_cfg node1 = { UL_MODE_VXLAN, 1, { 0 } }, node2 = node1;
  struct snap to2, to1;
  struct ul_fdb *fdb1, *fdb2;
  struct ul_addr from1 = addr("198.18.0.1"), from1v6 = addr("2001:2::1");
  static uint8_t buf[UL_BUF_SIZE], pkt[2048];
  uint32_t round, bad = 0, delivered = 0;

  memcpy(node1.mac, MAC1, 6);
  memcpy(node2.mac, MAC2, 6);
  snap_init(&to2, 1, 2);
  snap_route(&to2, "198.19.2.0", 24, snap_peer(&to2, "198.18.0.2", 2, 1));
  snap_route(&to2, "2001:2:0:102::", 64, 0);
  fdb1 = snap_build(&to2);
  snap_init(&to1, 2, 2);
  snap_route(&to1, "198.19.1.0", 24, snap_peer(&to1, "198.18.0.1", 1, 1));
  snap_route(&to1, "2001:2:0:101::", 64, snap_peer(&to1, "2001:2::1", 1, 1));
  snap_peer_at(&to1, 1)->slot = 1; /* one dual-stack peer */
  fdb2 = snap_build(&to1);
  CHECK(fdb1 != NULL && fdb2 != NULL);

  for (round = 0; round < rounds && fdb1 && fdb2; round++) {
    unsigned v = chance(50) ? 4 : 6;
    size_t l3 = v == 4 ? 20 : 40, plen = l3 + 8 + below(1400), len;
    struct ul_encap_result er;
    struct ul_decap_result dr;
    uint8_t *dgram;
    int got, ok = 1, mutated = 0;

    fill(pkt, plen);
    memset(pkt, 0, l3);
    if (v == 4) {
      pkt[0] = 0x45;
      put16(pkt + 2, (uint32_t)plen);
      pkt[8] = 64;
      put32(pkt + 12, 0xc6130105); /* 198.19.1.5 -> 198.19.2.5 */
      put32(pkt + 16, 0xc6130205);
    } else {
      static const uint8_t net6[7] = { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01 };
      pkt[0] = 0x60;
      put16(pkt + 4, (uint32_t)(plen - 40));
      pkt[7] = 64;
      memcpy(pkt + 8, net6, 7);
      pkt[15] = 0x01;
      pkt[23] = 5;
      memcpy(pkt + 24, net6, 7);
      pkt[31] = 0x02;
      pkt[39] = 5;
    }
    pkt[v == 4 ? 9 : 6] = (uint8_t)(chance(50) ? 17 : rnd());
    memcpy(buf + UL_TX_HEADROOM, pkt, plen);
    if (ul_encap(&node1, fdb1, buf, UL_TX_HEADROOM, plen, &er) != UL_OK) {
      if (bad++ < 5)
        fprintf(stderr, "decap: encap of a valid v%u packet refused\n", v);
      continue;
    }
    len = er.frame_len;
    while (chance(50)) {
      mutated = 1;
      if (chance(20))
        len = below((uint32_t)len + 1);
      else if (chance(10))
        len += below(64); /* padded with garbage */
      else
        flip(buf + er.frame_off, len, chance(70) ? 16 + l3 : len);
    }
    if (len > er.frame_len)
      fill(buf + er.frame_off + er.frame_len, len - er.frame_len);
    dgram = exact(buf + er.frame_off, len);
    got = ul_decap(&node2, fdb2, dgram, len, chance(10) ? &from1v6 : &from1, &dr);
    if (got == UL_OK) {
      ok &= dr.peer != NULL && dr.pkt_off + dr.pkt_len <= len && dr.pkt_len >= 20;
      delivered++;
    }
    if (!mutated)
      ok &= got == UL_OK && dr.pkt_len == plen && memcmp(dgram + dr.pkt_off, pkt, plen) == 0;
    free(dgram);
    if (!ok && bad++ < 5)
      fprintf(stderr, "decap: round %u (v%u, len %zu, mutated %d) gave %d\n", round, v, len, mutated, got);
  }
  CHECK_EQ(bad, 0);
  CHECK(delivered > rounds / 4);
  ul_fdb_free(fdb1);
  ul_fdb_free(fdb2);
  snap_free(&to1);
  snap_free(&to2);
}

/* Random and near-valid IP packets into the functions that parse one
 * packet: only memory safety and the documented bounds are checked. */
static void fuzz_packets(uint32_t rounds)
{
  static uint8_t pkt[2048], icmp[1400];
  struct ul_addr src = addr("198.18.0.9"), src6 = addr("2001:2::9");
  uint32_t round, bad = 0;

  for (round = 0; round < rounds; round++) {
    size_t len = chance(10) ? below(48) : below(sizeof(pkt));
    struct ul_vnet_hdr vh;
    uint8_t *p;
    int ok = 1, n;

    fill(pkt, len);
    if (len >= 40 && chance(80)) {
      unsigned v = chance(50) ? 4 : 6;
      pkt[0] = v == 4 ? (uint8_t)(0x45 + (chance(10) ? below(11) : 0)) : 0x60;
      if (chance(80))
        put16(pkt + (v == 4 ? 2 : 4), (uint32_t)(v == 4 ? len : len - 40));
      if (chance(70))
        pkt[v == 4 ? 9 : 6] = chance(60) ? 6 : 17;
      if (v == 4 && chance(70))
        pkt[6] &= 0x40; /* no fragment */
    }
    p = exact(pkt, len);
    (void)ul_flow_hash(p, len);
    memset(&vh, 0, sizeof(vh));
    if (ul_vnet_hdr_for_rx(p, len, &vh) == 1)
      ok &= vh.flags == UL_VNET_F_NEEDS_CSUM && (size_t)vh.csum_start + vh.csum_offset + 2 <= len;
    memset(&vh, 0, sizeof(vh));
    if (ul_tun_gso_for_rx(p, len, 1200 + (int)below(300), &vh) == 1)
      ok &= vh.gso_size > 0 && vh.hdr_len <= len && (size_t)vh.csum_start + vh.csum_offset + 2 <= len;
    memset(&vh, 0, sizeof(vh));
    if (ul_tun_udp_gso_for_rx(p, len, 1200 + (int)below(300), below(1500), &vh) == 1)
      ok &= vh.gso_size > 0 && vh.gso_type == 5 && vh.hdr_len < len &&
            (size_t)vh.csum_start + vh.csum_offset + 2 <= len && vh.hdr_len + vh.gso_size <= 1500;
    n = ul_icmp_error(p, len, (p[0] >> 4) == 6 ? &src6 : &src, chance(50) ? UL_ICMP_NO_ROUTE : UL_ICMP_TOO_BIG,
                      1280 + below(200), icmp, chance(10) ? below(sizeof(icmp)) : sizeof(icmp));
    ok &= n >= -ENOSPC && (n < 0 || (size_t)n <= sizeof(icmp));
    free(p);
    if (!ok && bad++ < 5)
      fprintf(stderr, "packets: round %u (len %zu) out of bounds\n", round, len);
  }
  CHECK_EQ(bad, 0);
}

int main(void)
{
  const char *seed_env = getenv("UL_FUZZ_SEED"), *scale_env = getenv("UL_FUZZ_SCALE");
  uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
  uint32_t scale = scale_env ? (uint32_t)strtoul(scale_env, NULL, 10) : 1;

  if (scale == 0)
    scale = 1;
  printf("test-fuzz: seed %llu (repeat with UL_FUZZ_SEED=%llu)\n",
         (unsigned long long)seed, (unsigned long long)seed);
  rng = seed ? seed : 1;
  fuzz_reader(3000 * scale);
  fuzz_gro(3000 * scale);
  fuzz_gro_split(100000 * scale);
  fuzz_decap(50000 * scale);
  fuzz_packets(50000 * scale);
  return CHECK_DONE();
}
