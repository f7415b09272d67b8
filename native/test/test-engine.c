/*
 * test-engine.c — the native engine end to end, inside a private network
 * namespace (needs root and /dev/net/tun; skips otherwise, a failure under CI).
 *
 *   TUN "ult0" 198.19.1.0/32, route 198.19.0.0/16 dev ult0 (set via netlink)
 *   engine UDP socket 127.0.0.1:E       peer UDP socket 127.0.0.1:P
 *   FDB: 198.19.2.0/24 -> peer 127.0.0.1:P (slot 1)
 *
 *   1. tx: a datagram to 198.19.2.5 enters the TUN, leaves as a VXLAN frame
 *      that the peer socket receives; header bytes checked. A burst of 40
 *      arrives as 40 frames in order (UDP GSO runs are cut apart again).
 *   1a. partial checksums: to a peer with UL_FDB_F_PARTIAL_CSUM the UDP
 *      checksum the kernel left partial leaves so, counted; to one without,
 *      completed.
 *   1b. TSO: super-packets queued on the TUN (a packet socket with virtio-net
 *      headers) leave as one frame per segment, payloads in order, to a peer
 *      that takes partial checksums (payloads sent from the super-packet) and
 *      to one that does not (gathered, completed); over a small path MTU each
 *      segment is answered with an ICMP error quoting its own bytes.
 *   2. no route: a datagram to 198.19.3.5 is answered with an ICMP net
 *      unreachable that the connected sender sees as ENETUNREACH.
 *   2a. too big: with the peer's path MTU at 1000, a 1200-byte datagram with
 *      DF is not sent but answered with ICMP fragmentation needed, which the
 *      sender sees as EMSGSIZE with IP_MTU 1000, counted as too_big on the
 *      peer; a 1000-byte one goes, and a 1200-byte one without DF leaves
 *      the sender as two fragments the MTU it learnt allows, both sent.
 *   3. rx: a VXLAN frame from the peer carrying 198.19.2.5 -> 198.19.1.0:R
 *      reaches a socket on port R; a spoofed inner source and a wrong VNI are
 *      counted as drops.
 *   3c. replies: an echo request from the peer to the TUN's address comes
 *      back as an echo reply, sent by the rx thread when the tx thread slept
 *      (counted as tx_after_rx).
 *   3a. rx with UDP GRO: a UDP_SEGMENT burst arrives as one GRO buffer and
 *      every datagram of it is validated and counted on its own.
 *   3b. rx coalescing: four in-order TCP segments received in one batch
 *      reach the TUN as one GSO packet (a packet socket on the TUN sees one
 *      skb of the summed length) and still count as four packets.
 *   4. FDB swap stress: 10000 swaps while both directions carry traffic
 *      (run under ASan by the Makefile: a table freed too early is a
 *      use-after-free report).
 *   5. outer source ports: with several send sockets each inner flow leaves
 *      from the one its hash picks, always the same one.
 *   6. threads: engines of 2 and 3 thread pairs on a multi-queue TUN
 *      "ultq" (198.19.3.0/32) and a SO_REUSEPORT receive group forward 16
 *      tx flows and 16 rx flows (so more than one queue and more than one
 *      socket is used: the per-queue/per-socket spread is checked), the
 *      counters sum every thread's packets, FDB swaps under traffic, a
 *      second group or plain socket on the port gets EADDRINUSE, stop joins
 *      every thread and the engine starts again.
 *   7. stop/destroy, and no fd left open.
 *
 * The fixture (setup above) and its helpers are in engine-fixture.h.
 * The system sources are compiled in here, so the core Makefile needs no
 * extra rule for this test.
 */
#include "../src/engine.c"
#include "../src/engine-rx.c"
#include "../src/engine-tx.c"
#include "../src/gro.c"
#include "../src/netlink.c"
#include "../src/tun-read.c"
#include "../src/tun.c"
#include "../src/udp.c"

#include <linux/if_packet.h>
#include <linux/sock_diag.h>
#include <net/ethernet.h>
#include <sched.h>

#include "check.h"
#include "engine-fixture.h"

static void test_tx(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.2.5", 7777);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  uint8_t buf[2048], *ip = buf + UL_VXLAN_ENCAP_LEN;
  ssize_t n;

  CHECK(sendto(s, "hello", 5, 0, (struct sockaddr *)&dst, sizeof(dst)) == 5);
  n = recv_wait(f->peer, buf, sizeof(buf), 2000);
  CHECK_EQ(n, UL_VXLAN_ENCAP_LEN + 20 + 8 + 5);
  if (n == UL_VXLAN_ENCAP_LEN + 20 + 8 + 5) {
    static const uint8_t vxlan[8] = { 0x08, 0, 0, 0, 0, 0, VNI, 0 };
    struct ul_addr d = addr("198.19.2.5"), src = addr("198.19.1.0");
    CHECK(memcmp(buf, vxlan, 8) == 0);
    CHECK(memcmp(buf + 8, peer_mac, 6) == 0);
    CHECK(memcmp(buf + 14, our_mac, 6) == 0);
    CHECK(buf[20] == 0x08 && buf[21] == 0x00);
    CHECK(ip[0] == 0x45 && ip[9] == IPPROTO_UDP);
    CHECK(memcmp(ip + 12, src.bytes, 4) == 0);
    CHECK(memcmp(ip + 16, d.bytes, 4) == 0);
    CHECK(ip[22] == 7777 >> 8 && ip[23] == (7777 & 0xff));
    CHECK(memcmp(ip + 28, "hello", 5) == 0);
    /* the UDP checksum the kernel left partial was completed */
    CHECK_EQ(ul_csum_fold(ul_csum_partial(ip + 20, 13,
                                          ul_csum_partial(ip + 12, 8, IPPROTO_UDP + 13))),
             0);
  }
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, 1), 1);
  CHECK_EQ(ctr(f->counters, 0, UL_C_TX_PACKETS), 1);
  CHECK_EQ(ctr(f->counters, 1, UL_C_TX_BYTES), 20 + 8 + 5);
  close(s);
}

/* With UL_FDB_F_PARTIAL_CSUM on the peer, the checksum the kernel left
 * partial travels so (the field holds the pseudo-header sum) and is counted;
 * back on the table without the flag it is completed again. */
static void test_tx_partial(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.2.5", 7777);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  uint8_t buf[2048], *ip = buf + UL_VXLAN_ENCAP_LEN;
  uint32_t pseudo;
  struct ul_engine_stats st;
  struct ul_fdb *fdb;
  struct snap sn;
  unsigned got;
  uint32_t p;
  ssize_t n;
  int k;
  uint64_t sent = ctr(f->counters, 1, UL_C_TX_PACKETS);

  /* TUN_F_CSUM: the kernel hands the datagram over with NEEDS_CSUM */
  CHECK_EQ(ul_tun_set_offloads(f->tun, UL_TUN_F_CSUM, 0, &got), 0);
  CHECK_EQ(got, UL_TUN_F_CSUM);
  snap_init(&sn, 1, 1);
  p = snap_peer(&sn, "127.0.0.1", 0x02, VNI);
  snap_peer_at(&sn, p)->port = f->peer_port;
  snap_peer_at(&sn, p)->flags = UL_FDB_F_PARTIAL_CSUM;
  snap_route(&sn, "198.19.2.0", 24, p);
  fdb = snap_build(&sn);
  snap_free(&sn);
  CHECK(fdb != NULL);
  ul_engine_set_fdb(f->engine, fdb);
  for (k = 0; k < 2; k++) {
    CHECK(sendto(s, "hello", 5, 0, (struct sockaddr *)&dst, sizeof(dst)) == 5);
    n = recv_wait(f->peer, buf, sizeof(buf), 2000);
    CHECK_EQ(n, UL_VXLAN_ENCAP_LEN + 20 + 8 + 5);
    if (n != UL_VXLAN_ENCAP_LEN + 20 + 8 + 5)
      break;
    pseudo = ul_csum_partial(ip + 12, 8, IPPROTO_UDP + 13);
    if (k == 0) { /* left partial: exactly the pseudo-header sum */
      CHECK_EQ(ip[26] << 8 | ip[27], (uint16_t)~ul_csum_fold(pseudo));
      ul_engine_stats(f->engine, &st);
      CHECK_EQ(st.partial_csum, 1);
      ul_engine_set_fdb(f->engine, make_fdb(f->peer_port));
    } else {      /* completed */
      CHECK_EQ(ul_csum_fold(ul_csum_partial(ip + 20, 13, pseudo)), 0);
      ul_engine_stats(f->engine, &st);
      CHECK_EQ(st.partial_csum, 1);
    }
  }
  /* the peer may have the datagram before the engine counted it: wait, so
   * the next case starts from settled counters */
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, sent + 2), sent + 2);
  CHECK_EQ(ul_tun_set_offloads(f->tun, 0, 0, &got), 0);
  close(s);
}

/* ---- 1b. TSO super-packets through the engine ---------------------------- */

#define TSO_GSO 1000

/* IPv4 (DF, TTL 64, header checksum) and TCP headers (20 bytes, window
 * 0x01xx, checksum left 0) of a packet with `payload` bytes behind them. */
static void ipv4_tcp(uint8_t *ip, const char *src, uint16_t sport, const char *dst,
                     uint16_t dport, uint32_t seq, uint16_t id, uint8_t flags,
                     size_t payload)
{
  struct ul_addr s = addr(src), d = addr(dst);
  uint8_t *th = ip + 20;
  size_t len = 40 + payload;
  uint16_t cs;

  memset(ip, 0, 40);
  ip[0] = 0x45;
  ip[2] = (uint8_t)(len >> 8);
  ip[3] = (uint8_t)len;
  ip[4] = (uint8_t)(id >> 8);
  ip[5] = (uint8_t)id;
  ip[6] = 0x40; /* DF */
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  memcpy(ip + 12, s.bytes, 4);
  memcpy(ip + 16, d.bytes, 4);
  cs = ul_csum_fold(ul_csum_partial(ip, 20, 0));
  ip[10] = (uint8_t)(cs >> 8);
  ip[11] = (uint8_t)cs;
  th[0] = (uint8_t)(sport >> 8);
  th[1] = (uint8_t)sport;
  th[2] = (uint8_t)(dport >> 8);
  th[3] = (uint8_t)dport;
  th[4] = (uint8_t)(seq >> 24);
  th[5] = (uint8_t)(seq >> 16);
  th[6] = (uint8_t)(seq >> 8);
  th[7] = (uint8_t)seq;
  th[11] = 1;    /* ack 1 */
  th[12] = 0x50; /* data offset 20 */
  th[13] = flags;
  th[14] = 0x01;
}

/* A TCP super-packet 198.19.1.0:4000 -> 198.19.2.5:5000 of `payload` bytes
 * (byte j of the stream is (j * 7 + seq0) & 0xff) as the TUN's own stack
 * would queue it: IP header complete, TCP checksum the pseudo-header sum. */
static size_t tso_super(uint8_t *ip, uint32_t seq0, uint16_t id, size_t payload)
{
  uint8_t *th = ip + 20;
  size_t j;
  uint16_t cs;

  ipv4_tcp(ip, "198.19.1.0", 4000, "198.19.2.5", 5000, seq0, id, 0x18 /* ACK PSH */,
           payload);
  for (j = 0; j < payload; j++)
    th[20 + j] = (uint8_t)(j * 7 + seq0);
  cs = (uint16_t)~ul_csum_fold(ul_csum_partial(ip + 12, 8, IPPROTO_TCP + 20 + payload));
  th[16] = (uint8_t)(cs >> 8);
  th[17] = (uint8_t)cs;
  return 40 + payload;
}

/* Queue the super-packet on the TUN's transmit side, as the stack does for
 * a TCP socket's TSO send: a packet socket with virtio-net headers. */
static void tso_queue(int ps, const uint8_t *ip, size_t len)
{
  struct ul_vnet_hdr vh = { .flags = UL_VNET_F_NEEDS_CSUM, .gso_type = 1 /* TCPV4 */,
                            .hdr_len = 40, .gso_size = TSO_GSO,
                            .csum_start = 20, .csum_offset = 16 };
  struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
                            .sll_ifindex = ul_nl_link_index(TUN_NAME) };
  struct iovec iov[2] = { { &vh, sizeof(vh) }, { (void *)ip, len } };
  struct msghdr m = { .msg_name = &ll, .msg_namelen = sizeof(ll), .msg_iov = iov,
                      .msg_iovlen = 2 };

  CHECK_EQ(sendmsg(ps, &m, 0), (ssize_t)(sizeof(vh) + len));
}

/* Frame i of a super-packet (seq0, id0, payload bytes) as the peer got it:
 * headers per segment, payload in order, checksum partial or complete. */
static int tso_frame_ok(const uint8_t *fr, ssize_t n, uint32_t seq0, uint16_t id0,
                        size_t payload, uint32_t i, bool partial)
{
  const uint8_t *ip = fr + UL_VXLAN_ENCAP_LEN, *th = ip + 20;
  size_t off = (size_t)i * TSO_GSO, chunk = payload - off < TSO_GSO ? payload - off : TSO_GSO;
  size_t len = 40 + chunk, j;
  uint32_t seq = seq0 + (uint32_t)off, pseudo;
  bool last = off + chunk == payload;
  int ok = n == (ssize_t)(UL_VXLAN_ENCAP_LEN + len);

  if (!ok)
    return 0;
  ok &= (size_t)(ip[2] << 8 | ip[3]) == len;
  ok &= (uint16_t)(ip[4] << 8 | ip[5]) == (uint16_t)(id0 + i);
  ok &= ul_csum_fold(ul_csum_partial(ip, 20, 0)) == 0;
  ok &= ((uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7]) == seq;
  ok &= th[13] == (last ? 0x18 : 0x10);
  for (j = 0; j < chunk; j++)
    ok &= th[20 + j] == (uint8_t)((off + j) * 7 + seq0);
  pseudo = ul_csum_partial(ip + 12, 8, IPPROTO_TCP + 20 + chunk);
  if (partial)
    ok &= (th[16] << 8 | th[17]) == (uint16_t)~ul_csum_fold(pseudo);
  else
    ok &= ul_csum_fold(ul_csum_partial(th, 20 + chunk, pseudo)) == 0;
  return ok;
}

/* The super-packets of a round and what the peer's table says of them. */
struct tso_case {
  const size_t *sizes;
  const uint32_t *seqs;
  const uint16_t *ids;
  bool partial;
  size_t mtu; /* 0: no limit; else segments longer are answered, not sent */
};

/* Receive the frames of supers[0, nsup) at the peer, one per segment that
 * fits c->mtu, and check each one; returns the frames that came. */
static uint32_t tso_receive(struct fixture *f, const struct tso_case *c,
                            uint32_t nsup, uint32_t *bad)
{
  static uint8_t fr[4096];
  uint32_t frames = 0, k, i;

  for (k = 0; k < nsup; k++) {
    uint32_t nseg = (uint32_t)((c->sizes[k] + TSO_GSO - 1) / TSO_GSO);
    for (i = 0; i < nseg; i++) {
      size_t off = (size_t)i * TSO_GSO;
      size_t chunk = c->sizes[k] - off < TSO_GSO ? c->sizes[k] - off : TSO_GSO;
      ssize_t n;

      if (c->mtu != 0 && 40 + chunk > c->mtu)
        continue; /* answered with an error instead */
      n = recv_wait(f->peer, fr, sizeof(fr), 2000);
      if (n < 0)
        return frames;
      frames++;
      if (!tso_frame_ok(fr, n, c->seqs[k], c->ids[k], c->sizes[k], i, c->partial) &&
          (*bad)++ < 3)
        fprintf(stderr, "super %u segment %u wrong\n", k, i);
    }
  }
  return frames;
}

/* The ICMP errors the engine wrote back into the TUN (seen by the packet
 * socket ps) for segments over c->mtu: fragmentation needed with that MTU,
 * quoting the segment's own header and payload bytes. Returns the count. */
static uint32_t tso_errors(int ps, const struct tso_case *c, uint32_t want,
                           uint32_t *bad)
{
  static uint8_t fr[4096];
  uint32_t got = 0;

  while (got < want) {
    struct sockaddr_ll from;
    socklen_t flen = sizeof(from);
    struct pollfd pl = { .fd = ps, .events = POLLIN };
    const uint8_t *ip = fr + UL_VNET_HDR_LEN, *q = ip + 28; /* the quote */
    uint32_t seq, j, k;
    ssize_t n;

    if (poll(&pl, 1, 2000) <= 0)
      break;
    n = recvfrom(ps, fr, sizeof(fr), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
    if (n < UL_VNET_HDR_LEN + 28 + 40 || from.sll_pkttype == PACKET_OUTGOING ||
        ip[9] != IPPROTO_ICMP)
      continue; /* our own super-packets going out */
    got++;
    if (ip[20] != 3 || ip[21] != 4 || (size_t)(ip[26] << 8 | ip[27]) != c->mtu) {
      (*bad)++;
      continue;
    }
    seq = (uint32_t)q[24] << 24 | (uint32_t)q[25] << 16 | (uint32_t)q[26] << 8 | q[27];
    k = seq >= c->seqs[1] ? 1 : 0;
    for (j = 0; j < (uint32_t)n - UL_VNET_HDR_LEN - 28 - 40; j++)
      if (q[40 + j] != (uint8_t)((seq - c->seqs[k] + j) * 7 + c->seqs[k]))
        (*bad)++;
  }
  return got;
}

/*
 * TSO on the TUN: a super-packet of 40 segments (more than the fixture's
 * batch of 16: continued across reads, its payload sent from the reader's
 * pool), alone and followed by one of 6 (split behind the first),
 * reaches the peer as wire-sized VXLAN frames, in order, payloads intact:
 *   - alone: its last segments go although nothing new arrives on the TUN;
 *   - to a peer that takes partial checksums (payloads sent from the
 *     super-packet by iovec, checksum fields the pseudo-header sum) and to
 *     one that does not (payloads gathered, checksums complete);
 *   - over a path MTU below the segment size: every segment but the two
 *     short last ones is answered with ICMP fragmentation needed quoting
 *     its own bytes, and those two are sent.
 */
static void test_tx_tso(struct fixture *f)
{
  static const size_t sizes[2] = { 39 * TSO_GSO + 517, 5 * TSO_GSO + 300 };
  static const uint32_t seqs[2] = { 0x7fff0000u, 0x7fff0000u + 39 * TSO_GSO + 517 };
  static const uint16_t ids[2] = { 0xfff0, 0x0100 };
  static uint8_t sup[2][70000];
  static const struct { uint32_t nsup; bool partial; size_t mtu; } rounds[] = {
    { 1, true, 0 }, { 2, false, 0 }, { 2, true, 0 }, { 2, true, 900 },
  };
  struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = ul_nl_link_index(TUN_NAME) };
  /* SOCK_RAW: virtio-net headers need it; a TUN has no link header */
  int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  int on = 1;
  unsigned got, r;

  CHECK(ps >= 0);
  CHECK(setsockopt(ps, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof(on)) == 0);
  CHECK(bind(ps, (struct sockaddr *)&ll, sizeof(ll)) == 0);
  CHECK_EQ(ul_tun_set_offloads(f->tun, UL_TUN_F_CSUM | UL_TUN_F_TSO4, 0, &got), 0);
  CHECK_EQ(got, UL_TUN_F_CSUM | UL_TUN_F_TSO4);
  tso_super(sup[0], seqs[0], ids[0], sizes[0]);
  tso_super(sup[1], seqs[1], ids[1], sizes[1]);
  for (r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
    struct tso_case c = { sizes, seqs, ids, rounds[r].partial, rounds[r].mtu };
    uint32_t nsup = rounds[r].nsup, segs = 40 + (nsup > 1 ? 6 : 0);
    uint32_t errors = c.mtu != 0 ? segs - nsup : 0, bad = 0, k;
    uint64_t too_big = ctr(f->counters, 1, UL_C_DROPS + UL_DROP_TOO_BIG);
    uint64_t sent = ctr(f->counters, 1, UL_C_TX_PACKETS);
    struct ul_engine_stats st;
    uint64_t partial0;
    struct snap sn;
    uint32_t p;

    snap_init(&sn, 1, 1);
    p = snap_peer(&sn, "127.0.0.1", 0x02, VNI);
    snap_peer_at(&sn, p)->port = f->peer_port;
    snap_peer_at(&sn, p)->flags = c.partial ? UL_FDB_F_PARTIAL_CSUM : 0;
    snap_peer_at(&sn, p)->mtu = (uint32_t)c.mtu;
    snap_route(&sn, "198.19.2.0", 24, p);
    ul_engine_set_fdb(f->engine, snap_build(&sn));
    snap_free(&sn);
    ul_engine_stats(f->engine, &st);
    partial0 = st.partial_csum;
    /* queued before the engine reads: one read batch sees them together */
    CHECK_EQ(ul_engine_stop(f->engine), 0);
    for (k = 0; k < nsup; k++)
      tso_queue(ps, sup[k], 40 + sizes[k]);
    CHECK_EQ(ul_engine_start(f->engine), 0);
    CHECK_EQ(tso_receive(f, &c, nsup, &bad), segs - errors);
    if (errors > 0) {
      CHECK_EQ(tso_errors(ps, &c, errors, &bad), errors);
      CHECK_EQ(ctr_wait(f->counters, 1, UL_C_DROPS + UL_DROP_TOO_BIG, too_big + errors),
               too_big + errors);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, sent + segs - errors),
             sent + segs - errors);
    ul_engine_stats(f->engine, &st);
    CHECK_EQ(st.partial_csum - partial0, c.partial ? segs - errors : 0);
  }
  ul_engine_set_fdb(f->engine, make_fdb(f->peer_port));
  CHECK_EQ(ul_tun_set_offloads(f->tun, 0, 0, &got), 0);
  close(ps);
}

/* A burst of equal datagrams (sent as UDP GSO runs when the engine reads
 * several at once) still reaches the peer as one VXLAN frame per packet,
 * in order, and a shorter last one keeps its length. */
static void test_tx_burst(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.2.5", 7777);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), i, got = 0, in_order = 1;
  uint64_t before = ctr(f->counters, 1, UL_C_TX_PACKETS);
  char payload[1000];
  uint8_t buf[4096];

  for (i = 0; i < 40; i++) {
    memset(payload, 'a' + i % 26, sizeof(payload));
    payload[0] = (char)i;
    sendto(s, payload, i == 39 ? 100 : sizeof(payload), 0,
           (struct sockaddr *)&dst, sizeof(dst));
  }
  for (i = 0; i < 40; i++) {
    ssize_t n = recv_wait(f->peer, buf, sizeof(buf), 2000);
    size_t want = UL_VXLAN_ENCAP_LEN + 20 + 8 + (i == 39 ? 100 : sizeof(payload));
    if (n < 0)
      break;
    got++;
    CHECK_EQ(n, want);
    if (buf[UL_VXLAN_ENCAP_LEN + 28] != (uint8_t)i)
      in_order = 0;
  }
  CHECK_EQ(got, 40);
  CHECK(in_order);
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, before + 40), before + 40);
  close(s);
}

static void test_no_route(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.3.5", 9);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  uint64_t before = ctr(f->counters, 0, UL_C_DROPS + UL_DROP_NO_ROUTE);
  char buf[16];
  int on = 1;

  /* net unreachable is a soft error: UDP reports it only with IP_RECVERR */
  CHECK(setsockopt(s, IPPROTO_IP, IP_RECVERR, &on, sizeof(on)) == 0);
  CHECK(connect(s, (struct sockaddr *)&dst, sizeof(dst)) == 0);
  CHECK(send(s, "x", 1, 0) == 1);
  CHECK_EQ(recv_wait(s, buf, sizeof(buf), 2000), -ENETUNREACH);
  CHECK(ctr_wait(f->counters, 0, UL_C_DROPS + UL_DROP_NO_ROUTE, before + 1) >= before + 1);
  close(s);
}

/* The error a connected UDP socket reports for an ICMP error, within ms.
 * With IP_RECVERR, poll wakes when the error is queued, a moment before the
 * kernel sets the socket's error (__udp4_lib_err): a recv in between finds
 * neither (EAGAIN), so wait for the error itself. */
static ssize_t error_wait(int fd, int ms)
{
  struct timespec nap = { 0, 1000 * 1000 };
  uint8_t buf[64];
  ssize_t n = recv_wait(fd, buf, sizeof(buf), ms);
  int i;

  for (i = 0; n == -EAGAIN && i < ms; i++) {
    nanosleep(&nap, NULL);
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    n = n < 0 ? -errno : n;
  }
  return n;
}

static void test_too_big(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.2.5", 9);
  static char payload[1200 - 28];
  uint8_t frame[2048];
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int on = 1, df = IP_PMTUDISC_PROBE, dont = IP_PMTUDISC_DONT, mtu = 0;
  socklen_t ml = sizeof(mtu);
  uint64_t sent = ctr(f->counters, 1, UL_C_TX_PACKETS);
  struct snap sn;
  struct ul_fdb *fdb;
  uint32_t p;

  snap_init(&sn, 1, 1);
  p = snap_peer(&sn, "127.0.0.1", 0x02, VNI);
  snap_peer_at(&sn, p)->port = f->peer_port;
  snap_peer_at(&sn, p)->mtu = 1000;
  snap_route(&sn, "198.19.2.0", 24, p);
  fdb = snap_build(&sn);
  snap_free(&sn);
  CHECK(fdb != NULL);
  ul_engine_set_fdb(f->engine, fdb);

  /* PROBE: DF set, and the local TUN MTU (not a cached PMTU) decides */
  CHECK(setsockopt(s, IPPROTO_IP, IP_RECVERR, &on, sizeof(on)) == 0);
  CHECK(setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &df, sizeof(df)) == 0);
  CHECK(connect(s, (struct sockaddr *)&dst, sizeof(dst)) == 0);
  CHECK(send(s, payload, sizeof(payload), 0) == (ssize_t)sizeof(payload));
  CHECK_EQ(error_wait(s, 2000), -EMSGSIZE);
  CHECK(getsockopt(s, IPPROTO_IP, IP_MTU, &mtu, &ml) == 0);
  CHECK_EQ(mtu, 1000);
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_DROPS + UL_DROP_TOO_BIG, 1), 1);
  CHECK_EQ(ctr(f->counters, 0, UL_C_DROPS + UL_DROP_TOO_BIG), 1);
  CHECK_EQ(recv_wait(f->peer, frame, sizeof(frame), 100), -ETIMEDOUT);

  /* what fits goes; without DF the sender now fragments to the MTU it
   * learnt, and the fragments go (none is refused) */
  CHECK(send(s, payload, 1000 - 28, 0) == 1000 - 28);
  CHECK_EQ(recv_wait(f->peer, frame, sizeof(frame), 2000), UL_VXLAN_ENCAP_LEN + 1000);
  CHECK(setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof(dont)) == 0);
  CHECK(send(s, payload, sizeof(payload), 0) == (ssize_t)sizeof(payload));
  ssize_t first = recv_wait(f->peer, frame, sizeof(frame), 2000);
  ssize_t second = recv_wait(f->peer, frame, sizeof(frame), 2000);
  CHECK(first > UL_VXLAN_ENCAP_LEN && first <= UL_VXLAN_ENCAP_LEN + 1000);
  CHECK_EQ(first + second - 2 * UL_VXLAN_ENCAP_LEN, 1200 + 20); /* two IP headers */
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, sent + 3), sent + 3);
  CHECK_EQ(ctr(f->counters, 1, UL_C_DROPS + UL_DROP_TOO_BIG), 1);
  close(s);
  ul_engine_set_fdb(f->engine, make_fdb(f->peer_port));
}

/* What a received packet makes the node answer goes out at once, sent by the
 * rx thread itself when the tx thread had slept ("Replies" in engine.c): an
 * ICMP echo request from the peer to the TUN's address comes back to the
 * peer as an echo reply, every time, and the rx thread's passes are counted. */
static void test_rx_reply(struct fixture *f)
{
  struct sockaddr_in eng = sin4("127.0.0.1", f->udp_port);
  struct timespec idle = { 0, 2 * 1000 * 1000 }; /* > UL_TX_HANDOFF_IDLE_NS */
  uint64_t sent = ctr(f->counters, 1, UL_C_TX_PACKETS), before;
  uint8_t frame[256], buf[512];
  struct ul_engine_stats st;
  int k, replies = 0;

  ul_engine_stats(f->engine, &st);
  before = st.tx_after_rx;
  for (k = 0; k < 20; k++) {
    size_t len = vxlan_frame(frame, VNI, "198.19.2.5", 0, "echo me!");
    uint8_t *ip = frame + UL_VXLAN_ENCAP_LEN, *icmp = ip + 20;
    const uint8_t *r = buf + UL_VXLAN_ENCAP_LEN;
    uint16_t c;
    ssize_t n;

    ip[9] = IPPROTO_ICMP; /* the UDP header's 8 bytes become the echo header */
    ip[10] = ip[11] = 0;
    c = ul_csum_fold(ul_csum_partial(ip, 20, 0));
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    memcpy(icmp, (const uint8_t[]){ 8, 0, 0, 0, 0x12, 0x34, 0, (uint8_t)k }, 8);
    c = ul_csum_fold(ul_csum_partial(icmp, 16, 0));
    icmp[2] = (uint8_t)(c >> 8);
    icmp[3] = (uint8_t)c;
    nanosleep(&idle, NULL); /* no stream: the tx thread has slept a while */
    CHECK(sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng, sizeof(eng)) == (ssize_t)len);
    n = recv_wait(f->peer, buf, sizeof(buf), 2000);
    if (n == (ssize_t)len && r[9] == IPPROTO_ICMP && r[20] == 0 /* echo reply */ && r[27] == k &&
        memcmp(r + 28, "echo me!", 8) == 0)
      replies++;
  }
  CHECK_EQ(replies, 20);
  ul_engine_stats(f->engine, &st);
  CHECK(st.tx_after_rx > before);
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_TX_PACKETS, sent + 20), sent + 20);
}

static void test_rx(struct fixture *f)
{
  struct sockaddr_in eng = sin4("127.0.0.1", f->udp_port);
  uint8_t frame[256];
  char buf[64];
  size_t len;

  len = vxlan_frame(frame, VNI, "198.19.2.5", f->app_port, "world");
  CHECK(sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng, sizeof(eng)) == (ssize_t)len);
  CHECK_EQ(recv_wait(f->app, buf, sizeof(buf), 2000), 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_RX_PACKETS, 1), 1);
  CHECK_EQ(ctr(f->counters, 1, UL_C_RX_BYTES), 20 + 8 + 5);

  len = vxlan_frame(frame, VNI, "198.19.7.7", f->app_port, "spoof");
  sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng, sizeof(eng));
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_DROPS + UL_DROP_SPOOFED, 1), 1);
  CHECK_EQ(ctr(f->counters, 0, UL_C_DROPS + UL_DROP_SPOOFED), 1);

  len = vxlan_frame(frame, VNI + 1, "198.19.2.5", f->app_port, "vni");
  sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng, sizeof(eng));
  CHECK_EQ(ctr_wait(f->counters, 0, UL_C_DROPS + UL_DROP_BAD_VNI, 1), 1);
  CHECK_EQ(recv_wait(f->app, buf, sizeof(buf), 100), -ETIMEDOUT);
  CHECK_EQ(ctr(f->counters, 1, UL_C_RX_PACKETS), 1);
}

/*
 * rx with UDP GRO: six equal frames sent as one UDP_SEGMENT message reach
 * the engine's socket (UDP_GRO on) as one buffer; each datagram is
 * validated on its own: the one with a wrong VNI is dropped and counted,
 * the five others are delivered.
 */
static void test_rx_udp_gro(struct fixture *f)
{
  struct sockaddr_in eng = sin4("127.0.0.1", f->udp_port);
  static uint8_t frames[6 * 128];
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(uint16_t))];
  } ctl;
  struct iovec iov = { frames, 0 };
  struct msghdr h = { .msg_name = &eng, .msg_namelen = sizeof(eng), .msg_iov = &iov,
                      .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
  struct cmsghdr *c;
  struct ul_engine_stats st;
  uint64_t rx0 = ctr(f->counters, 1, UL_C_RX_PACKETS);
  uint64_t vni0 = ctr(f->counters, 0, UL_C_DROPS + UL_DROP_BAD_VNI); /* no peer yet at the VNI check */
  size_t seg = 0;
  uint16_t size;
  char buf[64];
  int k, got = 0;

  CHECK_EQ(ul_udp_set_gro(f->udp, 1), 0);
  for (k = 0; k < 6; k++) {
    char payload[8];
    snprintf(payload, sizeof(payload), "gro-%d", k);
    seg = vxlan_frame(frames + (size_t)k * seg, k == 3 ? VNI + 1 : VNI, "198.19.2.5",
                      f->app_port, payload);
  }
  iov.iov_len = 6 * seg;
  size = (uint16_t)seg;
  c = CMSG_FIRSTHDR(&h);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(size));
  memcpy(CMSG_DATA(c), &size, sizeof(size));
  CHECK_EQ(sendmsg(f->peer, &h, 0), (ssize_t)(6 * seg));
  while (got < 5 && recv_wait(f->app, buf, sizeof(buf), 2000) == 5) {
    CHECK(memcmp(buf, "gro-", 4) == 0 && buf[4] != '3');
    got++;
  }
  CHECK_EQ(got, 5);
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_RX_PACKETS, rx0 + 5), rx0 + 5);
  CHECK_EQ(ctr_wait(f->counters, 0, UL_C_DROPS + UL_DROP_BAD_VNI, vni0 + 1), vni0 + 1);
  ul_engine_stats(f->engine, &st);
  CHECK(st.gro_buffers >= 1); /* the six came as one buffer */
  CHECK(st.gro_datagrams >= 6);
  CHECK_EQ(ul_udp_set_gro(f->udp, 0), 0);
}

/* A VXLAN frame carrying one TCP segment 198.19.2.5:5555 -> 198.19.1.0:dport
 * (ACK, 20-byte header, valid checksums, payload bytes from seq). */
static size_t vxlan_tcp_frame(uint8_t *f, uint16_t dport, uint32_t seq,
                              size_t payload)
{
  size_t iplen = 20 + 20 + payload, k;
  uint8_t *ip = f + UL_VXLAN_ENCAP_LEN, *th = ip + 20;
  uint16_t cs;

  memset(f, 0, UL_VXLAN_ENCAP_LEN);
  f[0] = UL_VXLAN_FLAG_I;
  f[6] = VNI;
  memcpy(f + 8, our_mac, 6);
  memcpy(f + 14, peer_mac, 6);
  f[20] = 0x08;
  ipv4_tcp(ip, "198.19.2.5", 5555, "198.19.1.0", dport, seq, 0, 0x10 /* ACK */, payload);
  for (k = 0; k < payload; k++)
    th[20 + k] = (uint8_t)(seq + k);
  cs = ul_csum_fold(ul_csum_partial(th, 20 + payload,
                                    ul_csum_partial(ip + 12, 8,
                                                    IPPROTO_TCP + 20 + (uint32_t)payload)));
  th[16] = (uint8_t)(cs >> 8);
  th[17] = (uint8_t)cs;
  return UL_VXLAN_ENCAP_LEN + iplen;
}

static void test_rx_gro(struct fixture *f)
{
  struct sockaddr_in eng = sin4("127.0.0.1", f->udp_port);
  struct sockaddr_ll ll = { .sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = ul_nl_link_index(TUN_NAME) };
  static uint8_t frame[2048], got[70000];
  uint64_t before = ctr(f->counters, 1, UL_C_RX_PACKETS);
  int ps = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
  ssize_t n = -1;
  uint32_t i;

  CHECK(ps >= 0);
  CHECK(bind(ps, (struct sockaddr *)&ll, sizeof(ll)) == 0);
  /* queue the run while the engine is stopped: one recvmmsg takes it all */
  CHECK_EQ(ul_engine_stop(f->engine), 0);
  for (i = 0; i < 4; i++) {
    size_t len = vxlan_tcp_frame(frame, f->app_port, 1000 + i * 1000, 1000);
    CHECK(sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng,
                 sizeof(eng)) == (ssize_t)len);
  }
  CHECK_EQ(ul_engine_start(f->engine), 0);
  for (i = 0; i < 20; i++) { /* skip the kernel's RSTs going out */
    struct sockaddr_ll from;
    socklen_t flen = sizeof(from);
    struct pollfd p = { .fd = ps, .events = POLLIN };

    if (poll(&p, 1, 2000) <= 0)
      break;
    n = recvfrom(ps, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&from,
                 &flen);
    if (n > 0 && from.sll_pkttype != PACKET_OUTGOING)
      break;
    n = -1;
  }
  CHECK_EQ(n, 40 + 4 * 1000); /* one skb: the four segments coalesced */
  CHECK_EQ(ctr_wait(f->counters, 1, UL_C_RX_PACKETS, before + 4), before + 4);
  CHECK_EQ(ctr(f->counters, 0, UL_C_DROPS + UL_DROP_TUN_WRITE), 0);
  close(ps);
}

/* ---- swap stress ------------------------------------------------------------ */

struct traffic {
  struct fixture *f;
  volatile int stop;
};

static void *traffic_main(void *arg)
{
  struct traffic *t = arg;
  struct sockaddr_in dst = sin4("198.19.2.5", 7777),
                     eng = sin4("127.0.0.1", t->f->udp_port);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  uint8_t frame[256], sink[2048];
  size_t len = vxlan_frame(frame, VNI, "198.19.2.5", t->f->app_port, "stress");

  while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
    sendto(s, "stress", 6, 0, (struct sockaddr *)&dst, sizeof(dst));
    sendto(t->f->peer, frame, len, MSG_DONTWAIT, (struct sockaddr *)&eng, sizeof(eng));
    /* drain so the sockets keep accepting */
    while (recv(t->f->peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
      ;
    while (recv(t->f->app, sink, sizeof(sink), MSG_DONTWAIT) > 0)
      ;
  }
  close(s);
  return NULL;
}

/* Receive on fd until a datagram ending in `marker` arrives (2 s each);
 * returns whether it did. */
static int drain_until(int fd, const char *marker)
{
  uint8_t buf[2048];
  size_t m = strlen(marker);
  ssize_t n;

  while ((n = recv_wait(fd, buf, sizeof(buf), 2000)) > 0)
    if ((size_t)n >= m && memcmp(buf + n - m, marker, m) == 0)
      return 1;
  return 0;
}

/* After the traffic thread: what the engine still carried reaches the
 * sockets after it stopped draining them, and would meet later tests. A
 * marker each way goes behind it (one rx and one tx thread keep the order),
 * and everything up to the marker is read. The traffic thread drains both
 * sockets while it runs; settle() is called once it has stopped. */
static void settle(struct fixture *f)
{
  struct sockaddr_in dst = sin4("198.19.2.5", 7777),
                     eng = sin4("127.0.0.1", f->udp_port);
  uint8_t frame[256];
  size_t len = vxlan_frame(frame, VNI, "198.19.2.5", f->app_port, "settled-rx");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 64 << 20;

  CHECK(s >= 0);
  /* room for the whole backlog, so the markers are not dropped behind it */
  CHECK(setsockopt(f->peer, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) == 0);
  CHECK(setsockopt(f->app, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) == 0);
  CHECK(sendto(s, "settled-tx", 10, 0, (struct sockaddr *)&dst, sizeof(dst)) == 10);
  CHECK(drain_until(f->peer, "settled-tx"));
  CHECK(sendto(f->peer, frame, len, 0, (struct sockaddr *)&eng, sizeof(eng)) == (ssize_t)len);
  CHECK(drain_until(f->app, "settled-rx"));
  close(s);
}

static void test_swap_stress(struct fixture *f)
{
  struct traffic t = { .f = f };
  pthread_t th;
  uint64_t tx0 = ctr(f->counters, 1, UL_C_TX_PACKETS),
           rx0 = ctr(f->counters, 1, UL_C_RX_PACKETS);
  int i;

  CHECK(pthread_create(&th, NULL, traffic_main, &t) == 0);
  for (i = 0; i < 10000; i++) {
    struct ul_fdb *fdb = make_fdb(f->peer_port);
    CHECK(fdb != NULL);
    ul_engine_set_fdb(f->engine, fdb);
  }
  __atomic_store_n(&t.stop, 1, __ATOMIC_RELAXED);
  pthread_join(th, NULL);
  settle(f);
  CHECK(ctr(f->counters, 1, UL_C_TX_PACKETS) > tx0);
  CHECK(ctr(f->counters, 1, UL_C_RX_PACKETS) > rx0);
  printf("swap stress: 10000 swaps, tx %llu rx %llu packets meanwhile\n",
         (unsigned long long)(ctr(f->counters, 1, UL_C_TX_PACKETS) - tx0),
         (unsigned long long)(ctr(f->counters, 1, UL_C_RX_PACKETS) - rx0));
  /* a NULL table drops everything as no route, and is not a crash */
  ul_engine_set_fdb(f->engine, NULL);
}

/*
 * Outer source ports: an engine with three send sockets sends each inner
 * flow from the socket ul_flow_pick(ul_flow_hash(inner packet)) names, so a
 * flow keeps its port and eight flows use more than one.
 */
static void test_tx_src_ports(struct fixture *f)
{
  struct ul_addr lo = addr("127.0.0.1");
  struct sockaddr_in dst = sin4("198.19.2.5", 7777);
  uint16_t ports[3], seen[8];
  struct ul_engine_cfg cfg;
  struct ul_engine *e;
  int k, distinct = 0;

  CHECK_EQ(ul_engine_stop(f->engine), 0);
  memset(&cfg, 0, sizeof(cfg));
  cfg.tun_fd = f->tun;
  cfg.udp[0].udp_fd = f->udp;
  cfg.codec.mode = UL_MODE_VXLAN;
  cfg.codec.vni = VNI;
  memcpy(cfg.codec.mac, our_mac, 6);
  cfg.counters = f->counters;
  cfg.max_slot = 1;
  cfg.udp[0].n_tx_fds = 3;
  for (k = 0; k < 3; k++) {
    cfg.udp[0].tx_fds[k] = ul_udp_open_sender(4, &lo);
    CHECK(cfg.udp[0].tx_fds[k] >= 0);
    ports[k] = local_port(cfg.udp[0].tx_fds[k]);
  }
  CHECK_EQ(ul_engine_create(&cfg, &e), 0);
  ul_engine_set_fdb(e, make_fdb(f->peer_port));
  CHECK_EQ(ul_engine_start(e), 0);
  for (k = 0; k < 8; k++) {
    struct sockaddr_in from = sin4("0.0.0.0", (uint16_t)(41000 + k)), src;
    socklen_t slen = sizeof(src);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), round;
    uint8_t buf[2048];

    CHECK(bind(s, (struct sockaddr *)&from, sizeof(from)) == 0);
    for (round = 0; round < 2; round++) { /* the same flow twice: same port */
      const size_t want_len = UL_VXLAN_ENCAP_LEN + 20 + 8 + 4;
      ssize_t n = -1;
      int tries;

      CHECK(sendto(s, "port", 4, 0, (struct sockaddr *)&dst, sizeof(dst)) == 4);
      /* skip what earlier cases left queued (the swap stress's traffic) */
      for (tries = 0; tries < 100000; tries++) {
        struct pollfd p = { .fd = f->peer, .events = POLLIN };
        const uint8_t *udp = buf + UL_VXLAN_ENCAP_LEN + 20;
        if (poll(&p, 1, 2000) != 1)
          break;
        slen = sizeof(src);
        n = recvfrom(f->peer, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&src, &slen);
        if (n == (ssize_t)want_len && memcmp(udp + 8, "port", 4) == 0 &&
            ((udp[0] << 8) | udp[1]) == 41000 + k)
          break;
        n = -1;
      }
      CHECK_EQ(n, (ssize_t)want_len);
      if (n == (ssize_t)want_len) {
        uint32_t want = ul_flow_pick(ul_flow_hash(buf + UL_VXLAN_ENCAP_LEN,
                                                  (size_t)n - UL_VXLAN_ENCAP_LEN), 3);
        CHECK_EQ(ntohs(src.sin_port), ports[want]);
        if (round == 0)
          seen[k] = ntohs(src.sin_port);
        else
          CHECK_EQ(ntohs(src.sin_port), seen[k]);
      }
    }
    close(s);
    if (k > 0 && seen[k] != seen[0])
      distinct = 1;
  }
  CHECK(distinct); /* eight flows do not all share one port */
  ul_engine_destroy(e);
  for (k = 0; k < 3; k++)
    close(cfg.udp[0].tx_fds[k]);
}

/* ---- thread pairs ------------------------------------------------------------ */

#define MQ_NAME "ultq"

/* Threads of this process right now (/proc/self/task entries). */
static int count_tasks(void)
{
  DIR *d = opendir("/proc/self/task");
  struct dirent *de;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* The thread count once it reads `want`, or after 2 s whatever it reads. A
 * joined thread can still be listed for a moment: pthread_join returns when
 * the exiting thread clears its tid, before the kernel unlists it. */
static int tasks_wait(int want)
{
  struct timespec pause = { 0, 1000 * 1000 };
  int i, n = count_tasks();

  for (i = 0; i < 2000 && n != want; i++) {
    nanosleep(&pause, NULL);
    n = count_tasks();
  }
  return n;
}

/* The thread count once no thread of an earlier case is still leaving: the
 * same for 20 reads 1 ms apart (at most 2 s). */
static int tasks_settled(void)
{
  struct timespec pause = { 0, 1000 * 1000 };
  int i, same = 0, n = count_tasks();

  for (i = 0; i < 2000 && same < 20; i++) {
    int m;
    nanosleep(&pause, NULL);
    m = count_tasks();
    same = m == n ? same + 1 : 0;
    n = m;
  }
  return n;
}

/* What ul_udp_open_group's guard relies on (udp.c, design note): a socket
 * bound without SO_REUSEPORT keeps reuseport sockets out until the flag is
 * set on it after the bind; then they join, and once it is closed a plain
 * bind is still refused. */
static void test_reuseport_guard(void)
{
  struct ul_addr lo = addr("127.0.0.1");
  int guard = ul_udp_open(4, &lo, 0), on = 1, a, b;
  uint16_t port = local_port(guard);

  CHECK(guard >= 0);
  CHECK_EQ(ul_udp_open_reuse(4, &lo, port), -EADDRINUSE);
  CHECK(setsockopt(guard, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == 0);
  a = ul_udp_open_reuse(4, &lo, port);
  b = ul_udp_open_reuse(4, &lo, port);
  CHECK(a >= 0 && b >= 0);
  close(guard);
  CHECK_EQ(ul_udp_open(4, &lo, port), -EADDRINUSE);
  close(a);
  close(b);
}

/* A socket of ul_udp_open_sender (udp.c, design note): what it sends
 * arrives; what is sent to it is dropped before it is queued, each datagram
 * counted in the socket's drops. Loopback delivers within sendto(), so the
 * drop count is final when the last send returns. */
static void test_sender_takes_nothing(void)
{
  struct ul_addr lo = addr("127.0.0.1");
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  int sender = ul_udp_open_sender(4, &lo), rx = ul_udp_open(4, &lo, 0), i, sent;
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof(mem);
  uint8_t buf[1400] = { 0 };

  CHECK(sender >= 0 && rx >= 0);
  CHECK(local_port(sender) != 0);
  /* it sends */
  to.sin_port = htons(local_port(rx));
  CHECK_EQ(sendto(sender, buf, 100, 0, (struct sockaddr *)&to, sizeof(to)), 100);
  CHECK_EQ(recv(rx, buf, sizeof(buf), MSG_DONTWAIT), 100);
  /* it takes nothing: 3,000 datagrams of 1,400 B would be 4 MiB queued */
  to.sin_port = htons(local_port(sender));
  for (i = 0, sent = 0; i < 3000; i++)
    sent += sendto(rx, buf, sizeof(buf), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)sizeof(buf);
  CHECK_EQ(sent, 3000);
  CHECK(getsockopt(sender, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0);
  CHECK_EQ(mem[SK_MEMINFO_DROPS], 3000);
  CHECK_EQ(mem[SK_MEMINFO_RMEM_ALLOC], 0);
  CHECK_EQ(recv(sender, buf, sizeof(buf), MSG_DONTWAIT), -1);
  CHECK_EQ(errno, EAGAIN);
  close(sender);
  close(rx);
}

/* An FDB sending 198.19.2.0/24 to the peer and accepting 198.19.2.0/24
 * from it, whose inner destination is ultq's 198.19.3.0 for rx. */
static void threads_case(struct fixture *f, uint32_t n)
{
  struct ul_addr lo = addr("127.0.0.1"), ip = addr("198.19.3.0");
  struct ul_engine_cfg cfg;
  struct ul_engine *e;
  int tun[UL_THREADS_MAX], udp[UL_THREADS_MAX], again[UL_THREADS_MAX];
  uint64_t c[2 * UL_C_SLOT_WIDTH] = { 0 };
  char name[16];
  uint32_t i, k;
  struct ul_addr sub = addr("198.19.2.0");
  int tasks0, round;
  uint16_t port;

  CHECK_EQ(ul_engine_stop(f->engine), 0);
  tasks0 = tasks_settled();
  for (i = 0; i < n; i++) {
    tun[i] = ul_tun_open_queue(MQ_NAME, 1, name);
    CHECK(tun[i] >= 0);
  }
  CHECK_EQ(ul_tun_open(MQ_NAME, 1, name), -EINVAL); /* not one more single queue */
  CHECK_EQ(ul_nl_link_set(MQ_NAME, 1400, 1), 0);
  CHECK_EQ(ul_nl_addr(1, MQ_NAME, &ip, 32), 0);
  /* the peer's subnet through ultq (more specific than ult0's /16; gone
   * with the device) */
  CHECK_EQ(ul_nl_route(1, MQ_NAME, &sub, 24, NULL, 0), 0);
  CHECK_EQ(ul_udp_open_group(4, &lo, 0, udp, n), 0);
  port = local_port(udp[0]);
  for (i = 1; i < n; i++)
    CHECK_EQ(local_port(udp[i]), port);
  CHECK_EQ(ul_udp_open(4, &lo, port), -EADDRINUSE);       /* a plain agent */
  CHECK_EQ(ul_udp_open_group(4, &lo, port, again, n), -EADDRINUSE); /* a group */

  memset(&cfg, 0, sizeof(cfg));
  cfg.tun_fd = tun[0];
  cfg.udp[0].udp_fd = udp[0];
  cfg.threads = n;
  for (i = 1; i < n; i++) {
    cfg.tun_fds[i] = tun[i];
    cfg.udp[0].udp_fds[i] = udp[i];
  }
  cfg.codec.mode = UL_MODE_VXLAN;
  cfg.codec.vni = VNI;
  memcpy(cfg.codec.mac, our_mac, 6);
  cfg.counters = c;
  cfg.max_slot = 1;
  cfg.batch = 16;
  CHECK_EQ(ul_engine_create(&cfg, &e), 0);
  ul_engine_set_fdb(e, make_fdb(f->peer_port));
  for (round = 0; round < 2; round++) { /* a stopped engine starts again */
    struct sockaddr_in dst = sin4("198.19.2.5", 7777), eng = sin4("127.0.0.1", port);
    uint64_t tx0 = ctr(c, 1, UL_C_TX_PACKETS), rx0 = ctr(c, 0, UL_C_RX_PACKETS);
    uint8_t frame[256], buf[2048];
    const uint32_t flows = 16;
    size_t len = vxlan_frame(frame, VNI, "198.19.2.5", f->app_port, "mq");
    uint8_t *iph = frame + UL_VXLAN_ENCAP_LEN;
    uint16_t cs;

    while (recv(f->peer, buf, sizeof(buf), MSG_DONTWAIT) > 0)
      ; /* what earlier cases left */
    while (recv(f->app, buf, sizeof(buf), MSG_DONTWAIT) > 0)
      ;
    iph[18] = 3; /* inner destination 198.19.3.0, ultq's */
    iph[10] = iph[11] = 0;
    cs = ul_csum_fold(ul_csum_partial(iph, 20, 0));
    iph[10] = (uint8_t)(cs >> 8);
    iph[11] = (uint8_t)cs;
    /* Queue the traffic before the threads run, to see where the kernel
     * put it: 16 inner flows (source ports) into the TUN, spread over its
     * queues by flow hash; 16 outer flows (source ports) to the group,
     * spread over its sockets by 4-tuple hash. */
    {
      /* each flow from a socket of its own, all open at once: distinct
       * source ports the kernel picks (fixed ones could collide with the
       * ephemeral ports of this test's other sockets) */
      int s[16], o[16];
      for (k = 0; k < flows; k++) {
        s[k] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        o[k] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(s[k] >= 0 && o[k] >= 0);
        CHECK(sendto(s[k], "mq", 2, 0, (struct sockaddr *)&dst, sizeof(dst)) == 2);
        CHECK(sendto(o[k], frame, len, 0, (struct sockaddr *)&eng, sizeof(eng)) == (ssize_t)len);
      }
      for (k = 0; k < flows; k++) {
        close(s[k]);
        close(o[k]);
      }
    }
    {
      uint32_t tun_used = 0, udp_used = 0;
      for (i = 0; i < n; i++) {
        struct pollfd pt = { .fd = tun[i], .events = POLLIN },
                      pu = { .fd = udp[i], .events = POLLIN };
        /* sendto() returns once the TUN queued the packet (no softirq
         * between a local socket and the TUN's queue) */
        tun_used += poll(&pt, 1, 0) == 1;
        udp_used += poll(&pu, 1, 0) == 1;
      }
      CHECK(tun_used >= 2); /* more than one queue carries a flow */
      CHECK(udp_used >= 2); /* more than one socket receives one */
    }
    CHECK_EQ(ul_engine_start(e), 0);
    CHECK_EQ(tasks_wait(tasks0 + 2 * (int)n), tasks0 + 2 * (int)n);
    /* every queue's and every socket's thread forwards: all 16 each way */
    CHECK_EQ(ctr_wait(c, 1, UL_C_TX_PACKETS, tx0 + flows), tx0 + flows);
    CHECK_EQ(ctr_wait(c, 0, UL_C_RX_PACKETS, rx0 + flows), rx0 + flows);
    CHECK_EQ(ctr(c, 1, UL_C_RX_PACKETS), ctr(c, 0, UL_C_RX_PACKETS)); /* slot 1 = totals */
    for (k = 0; k < flows; k++) {
      CHECK(recv_wait(f->peer, buf, sizeof(buf), 2000) > 0);
      CHECK_EQ(recv_wait(f->app, buf, sizeof(buf), 2000), 2);
    }
    /* FDB swaps while the threads run: each one waits for all of them */
    for (k = 0; k < 200; k++)
      ul_engine_set_fdb(e, make_fdb(f->peer_port));
    CHECK_EQ(ul_engine_stop(e), 0);
    CHECK_EQ(tasks_wait(tasks0), tasks0); /* every thread joined */
  }
  ul_engine_destroy(e);
  for (i = 0; i < n; i++) {
    close(udp[i]);
    close(tun[i]);
  }
  CHECK_EQ(ul_nl_link_index(MQ_NAME), -ENODEV);
  CHECK_EQ(ul_engine_start(f->engine), 0);
  printf("threads: %u pairs forward 16+16 flows, stop and start again\n", n);
}

/* ---- dual stack ---------------------------------------------------------------
 *
 * An engine with an IPv4 and an IPv6 socket set, and one dual-stack peer as
 * two FDB entries sharing slot 1: 198.19.2.0/24 behind its IPv4 entry
 * (127.0.0.1), 2001:2:0:102::/64 behind its IPv6 entry ([::1], MAC ..:03).
 * An IPv6 pod packet leaves from the IPv6 socket to the IPv6 entry with its
 * MAC; a datagram from the IPv6 entry carrying an IPv4 pod packet of the
 * peer is delivered (the same peer), one from a subnet of nobody is spoofed.
 */
static uint16_t local_port6(int fd)
{
  struct sockaddr_in6 sin6;
  socklen_t len = sizeof(sin6);

  getsockname(fd, (struct sockaddr *)&sin6, &len);
  return ntohs(sin6.sin6_port);
}

static void test_dual_family(struct fixture *f)
{
  struct ul_addr lo6 = addr("::1"), tun6 = addr("2001:2:0:101::"), net6 = addr("2001:2:0:100::");
  struct sockaddr_in6 dst = { .sin6_family = AF_INET6, .sin6_port = htons(7777) }, to = { .sin6_family = AF_INET6 };
  struct ul_engine_cfg cfg;
  struct ul_engine *e;
  struct snap sn;
  uint32_t a, b;
  uint8_t buf[2048];
  uint64_t spoofed;
  ssize_t n;
  int u6, peer6, app6, knob;

  CHECK_EQ(ul_engine_stop(f->engine), 0);
  knob = open("/proc/sys/net/ipv6/conf/" TUN_NAME "/disable_ipv6", O_WRONLY | O_CLOEXEC);
  if (knob >= 0) {
    (void)!write(knob, "0", 1);
    close(knob);
  }
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &tun6, 128), 0);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &net6, 56, NULL, 0), 0);
  u6 = ul_udp_open(6, &lo6, 0);
  peer6 = ul_udp_open(6, &lo6, 0);
  CHECK(u6 >= 0 && peer6 >= 0);
  memset(&cfg, 0, sizeof(cfg));
  cfg.tun_fd = f->tun;
  cfg.udp[0].udp_fd = f->udp;
  cfg.udp[1].udp_fd = u6;
  cfg.n_udp = 2;
  cfg.codec.mode = UL_MODE_VXLAN;
  cfg.codec.vni = VNI;
  memcpy(cfg.codec.mac, our_mac, 6);
  cfg.counters = f->counters;
  cfg.max_slot = 1;
  cfg.batch = 16;
  cfg.udp[1].udp_fd = f->udp; /* two sets of one family are refused */
  CHECK_EQ(ul_engine_create(&cfg, &e), -EINVAL);
  cfg.udp[1].udp_fd = u6;
  CHECK_EQ(ul_engine_create(&cfg, &e), 0);
  snap_init(&sn, 2, 2);
  a = snap_peer(&sn, "127.0.0.1", 0x02, VNI);
  snap_peer_at(&sn, a)->port = f->peer_port;
  b = snap_peer(&sn, "::1", 0x03, VNI);
  snap_peer_at(&sn, b)->port = local_port6(peer6);
  snap_peer_at(&sn, b)->slot = snap_peer_at(&sn, a)->slot;
  snap_route(&sn, "198.19.2.0", 24, a);
  snap_route(&sn, "2001:2:0:102::", 64, b);
  ul_engine_set_fdb(e, snap_build(&sn));
  snap_free(&sn);
  CHECK_EQ(ul_engine_start(e), 0);

  /* tx: an IPv6 pod packet goes out of the IPv6 socket, to the v6 entry's MAC */
  app6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(app6 >= 0);
  inet_pton(AF_INET6, "2001:2:0:102::5", &dst.sin6_addr);
  CHECK(sendto(app6, "six", 3, 0, (struct sockaddr *)&dst, sizeof(dst)) == 3);
  n = recv_wait(peer6, buf, sizeof(buf), 2000);
  CHECK_EQ(n, (ssize_t)(UL_VXLAN_ENCAP_LEN + 40 + 8 + 3));
  if (n > 0) {
    {
      static const uint8_t mac6[6] = { 0x02, 0, 0, 0, 0, 0x03 };
      CHECK(memcmp(buf + 8, mac6, 6) == 0);
    }
    CHECK_EQ(buf[UL_VXLAN_ENCAP_LEN] >> 4, 6);
    CHECK(memcmp(buf + UL_VXLAN_ENCAP_LEN + 48, "six", 3) == 0);
  }

  /* rx: the peer's IPv4 pod packet from its IPv6 underlay address is its own */
  inet_pton(AF_INET6, "::1", &to.sin6_addr);
  to.sin6_port = htons(local_port6(u6));
  n = (ssize_t)vxlan_frame(buf, VNI, "198.19.2.7", f->app_port, "dual");
  CHECK(sendto(peer6, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)) == n);
  n = recv_wait(f->app, buf, sizeof(buf), 2000);
  CHECK_EQ(n, 4);
  CHECK(n == 4 && memcmp(buf, "dual", 4) == 0);
  /* ... but not one from a subnet that is nobody's */
  spoofed = ctr(f->counters, 0, UL_C_DROPS + UL_DROP_SPOOFED);
  n = (ssize_t)vxlan_frame(buf, VNI, "198.19.3.7", f->app_port, "nope");
  CHECK(sendto(peer6, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)) == n);
  CHECK_EQ(ctr_wait(f->counters, 0, UL_C_DROPS + UL_DROP_SPOOFED, spoofed + 1), spoofed + 1);

  ul_engine_destroy(e);
  close(app6);
  close(peer6);
  close(u6);
  CHECK_EQ(ul_nl_route(0, TUN_NAME, &net6, 56, NULL, 0), 0);
}

int main(void)
{
  struct fixture f;
  int fds_before;

  if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
    return CHECK_SKIP("needs root and /dev/net/tun");
  if (unshare(CLONE_NEWNET) != 0) {
    char why[128];
    snprintf(why, sizeof(why), "unshare(CLONE_NEWNET): %s", strerror(errno));
    return CHECK_SKIP(why);
  }
  CHECK_EQ(ul_nl_link_set("lo", 0, 1), 0);
  fds_before = count_fds();

  if (setup(&f)) {
    test_tx(&f);
    test_tx_partial(&f);
    test_tx_burst(&f);
    test_no_route(&f);
    test_too_big(&f);
    test_tx_tso(&f); /* after the cases that count too_big from 0 */
    test_rx(&f);
    test_rx_reply(&f);
    test_rx_gro(&f);
    test_rx_udp_gro(&f);
    test_swap_stress(&f);
    test_tx_src_ports(&f);
    test_reuseport_guard();
    test_sender_takes_nothing();
    threads_case(&f, 2);
    threads_case(&f, 3);
    test_dual_family(&f);
    CHECK_EQ(ul_engine_stop(f.engine), 0);
    CHECK_EQ(ul_engine_stop(f.engine), 0); /* idempotent */
    ul_engine_destroy(f.engine);
  }
  close(f.app);
  close(f.peer);
  close(f.udp);
  close(f.tun);
  CHECK_EQ(ul_nl_link_index(TUN_NAME), -ENODEV); /* gone with its fd */
  CHECK_EQ(count_fds(), fds_before);
  return CHECK_DONE();
}
