/*
 * test-codec.c — golden VXLAN bytes (RFC 7348 section 5), encap/decap round
 * trips in both modes, and a table of malformed datagrams, each mapped to
 * the drop reason ul_decap must give it.
 */
#include <stdio.h>

#include "check.h"
#include "snap.h"

/* Inner packet: ICMP echo request 198.19.1.2 -> 198.19.2.2, id 1, seq 1,
 * payload "ping". Checksums worked out by hand (RFC 1071). */
static const uint8_t ICMP4[32] = {
    0x45, 0x00, 0x00, 0x20, /* v4, IHL 5, TOS 0, total length 32 */
    0x00, 0x01, 0x40, 0x00, /* id 1, DF */
    0x40, 0x01, 0xab, 0xb1, /* TTL 64, proto ICMP, header checksum */
    0xc6, 0x13, 0x01, 0x02, /* src 198.19.1.2 */
    0xc6, 0x13, 0x02, 0x02, /* dst 198.19.2.2 */
    0x08, 0x00, 0x19, 0x2d, /* echo request, code 0, checksum */
    0x00, 0x01, 0x00, 0x01, /* id 1, seq 1 */
    0x70, 0x69, 0x6e, 0x67, /* "ping" */
};

/* The whole UDP payload node 1 (VTEP MAC 02:00:00:00:00:01) sends to node 2
 * (VTEP MAC 02:00:00:00:00:02) on VNI 1. */
static const uint8_t GOLDEN[22 + 32] = {
    /* VXLAN header, RFC 7348 5: |R|R|R|R|I|R|R|R| reserved(24) | VNI(24) | reserved(8) */
    0x08, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00,
    /* inner Ethernet: dst MAC, src MAC, ethertype IPv4 */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00,
    /* the IP packet */
    0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0xab, 0xb1,
    0xc6, 0x13, 0x01, 0x02, 0xc6, 0x13, 0x02, 0x02, 0x08, 0x00, 0x19, 0x2d,
    0x00, 0x01, 0x00, 0x01, 0x70, 0x69, 0x6e, 0x67,
};

/* ICMPv6 echo request 2001:2:0:101::2 -> 2001:2:0:102::2 (checksum not
 * relevant to the codec). */
static const uint8_t ICMP6[52] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40, /* payload 12, ICMPv6, hop 64 */
    0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01, 0x02,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,
    0x70, 0x69, 0x6e, 0x67,
};

static const uint8_t MAC1[6] = {2, 0, 0, 0, 0, 1};
static const uint8_t MAC2[6] = {2, 0, 0, 0, 0, 2};

/* Peers 1..3 at 198.18.0.<i> with pod subnets 198.19.<i>.0/24 and
 * 2001:2:0:10<i>::/64, VTEP MAC 02:00:00:00:00:0<i>, VNI 1. */
static struct ul_fdb *lab_fdb(void) {
  struct snap s;
  snap_init(&s, 3, 6);
  char ip[64];
  for (uint32_t i = 1; i <= 3; i++) {
    snprintf(ip, sizeof ip, "198.18.0.%u", i);
    uint32_t p = snap_peer(&s, ip, (uint8_t)i, 1);
    snprintf(ip, sizeof ip, "198.19.%u.0", i);
    snap_route(&s, ip, 24, p);
    snprintf(ip, sizeof ip, "2001:2:0:10%u::", i);
    snap_route(&s, ip, 64, p);
  }
  struct ul_fdb *fdb = snap_build(&s);
  snap_free(&s);
  return fdb;
}

static struct ul_codec_cfg codec(enum ul_mode mode, const uint8_t mac[6]) {
  struct ul_codec_cfg c = {mode, 1, {0}};
  memcpy(c.mac, mac, 6);
  return c;
}

static void test_golden(const struct ul_fdb *fdb) {
  uint8_t buf[UL_BUF_SIZE];
  memset(buf, 0xee, sizeof buf);
  memcpy(buf + UL_TX_HEADROOM, ICMP4, sizeof ICMP4);
  struct ul_codec_cfg node1 = codec(UL_MODE_VXLAN, MAC1);
  struct ul_encap_result er;
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_OK);
  CHECK(er.peer != NULL && er.peer->slot == 2);
  CHECK_EQ(er.frame_off, UL_TX_HEADROOM - 22);
  CHECK_EQ(er.frame_len, sizeof GOLDEN);
  CHECK(memcmp(buf + er.frame_off, GOLDEN, sizeof GOLDEN) == 0);
  CHECK_EQ(buf[er.frame_off - 1], 0xee); /* nothing written before the frame */

  struct ul_codec_cfg node2 = codec(UL_MODE_VXLAN, MAC2);
  struct ul_addr from1 = addr("198.18.0.1");
  struct ul_decap_result dr;
  CHECK_EQ(ul_decap(&node2, fdb, GOLDEN, sizeof GOLDEN, &from1, &dr), UL_OK);
  CHECK(dr.peer != NULL && dr.peer->slot == 1);
  CHECK_EQ(dr.pkt_off, 22);
  CHECK_EQ(dr.pkt_len, sizeof ICMP4);
  CHECK(memcmp(GOLDEN + dr.pkt_off, ICMP4, sizeof ICMP4) == 0);

  /* Trailing Ethernet padding: the IP header's length wins. */
  uint8_t padded[sizeof GOLDEN + 10];
  memcpy(padded, GOLDEN, sizeof GOLDEN);
  memset(padded + sizeof GOLDEN, 0, 10);
  CHECK_EQ(ul_decap(&node2, fdb, padded, sizeof padded, &from1, &dr), UL_OK);
  CHECK_EQ(dr.pkt_len, sizeof ICMP4);
  CHECK_EQ(dr.frame_len, sizeof GOLDEN); /* where a next datagram would start */

  /* frame_len is told for drops after the headers read too, 0 before */
  struct ul_addr stranger = addr("198.18.0.99");
  CHECK_EQ(ul_decap(&node2, fdb, GOLDEN, sizeof GOLDEN, &stranger, &dr), UL_DROP_UNKNOWN_PEER);
  CHECK_EQ(dr.frame_len, sizeof GOLDEN);
  CHECK_EQ(ul_decap(&node2, fdb, GOLDEN, sizeof GOLDEN - 1, &from1, &dr), UL_DROP_MALFORMED);
  CHECK_EQ(dr.frame_len, 0);
  CHECK_EQ(ul_decap(&node2, fdb, GOLDEN, 30, &from1, &dr), UL_DROP_SHORT);
  CHECK_EQ(dr.frame_len, 0);
}

static void test_roundtrip(const struct ul_fdb *fdb, enum ul_mode mode,
                           const uint8_t *pkt, size_t len, const char *to_peer) {
  uint8_t buf[UL_BUF_SIZE];
  memcpy(buf + UL_TX_HEADROOM, pkt, len);
  struct ul_codec_cfg node1 = codec(mode, MAC1), node2 = codec(mode, MAC2);
  struct ul_encap_result er;
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, len, &er), UL_OK);
  CHECK(er.peer != NULL && er.peer->slot == 2);
  size_t hdr = mode == UL_MODE_VXLAN ? 22 : 0;
  CHECK_EQ(er.frame_len, len + hdr);
  CHECK_EQ(er.frame_off, UL_TX_HEADROOM - hdr);
  if (mode == UL_MODE_VXLAN) {
    uint16_t et = (uint16_t)(buf[er.frame_off + 20] << 8 | buf[er.frame_off + 21]);
    CHECK_EQ(et, (pkt[0] >> 4) == 4 ? 0x0800 : 0x86dd);
  }
  struct ul_addr from = addr(to_peer);
  struct ul_decap_result dr;
  CHECK_EQ(ul_decap(&node2, fdb, buf + er.frame_off, er.frame_len, &from, &dr), UL_OK);
  CHECK(dr.peer != NULL && dr.peer->slot == 1);
  CHECK_EQ(dr.pkt_len, len);
  CHECK(memcmp(buf + er.frame_off + dr.pkt_off, pkt, len) == 0);
}

static void test_encap_errors(const struct ul_fdb *fdb) {
  uint8_t buf[UL_BUF_SIZE];
  struct ul_codec_cfg node1 = codec(UL_MODE_VXLAN, MAC1);
  struct ul_encap_result er;
  uint8_t *p = buf + UL_TX_HEADROOM;
  memcpy(p, ICMP4, sizeof ICMP4);
  p[19] = 9; /* dst 198.19.2.9: routed */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_OK);
  p[17] = 9; /* dst 198.19.9.9: no route */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_DROP_NO_ROUTE);
  CHECK_EQ(ul_encap(&node1, NULL, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_DROP_NO_ROUTE);
  memcpy(p, ICMP4, sizeof ICMP4);
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, 0, &er), UL_DROP_TX_MALFORMED);
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, 19, &er), UL_DROP_TX_MALFORMED);
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4 - 1, &er),
           UL_DROP_TX_MALFORMED); /* read shorter than total length */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4 + 1, &er),
           UL_DROP_TX_MALFORMED); /* read longer than total length */
  CHECK_EQ(ul_encap(&node1, fdb, buf, 21, 0, &er), UL_DROP_TX_MALFORMED);
  memcpy(buf + 10, ICMP4, sizeof ICMP4);
  CHECK_EQ(ul_encap(&node1, fdb, buf, 10, sizeof ICMP4, &er), UL_DROP_TX_MALFORMED);
  p[0] = 0x44; /* IHL 4 */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_DROP_TX_MALFORMED);
  p[0] = 0x55; /* version 5 */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP4, &er), UL_DROP_TX_MALFORMED);
  memcpy(p, ICMP6, sizeof ICMP6);
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, 39, &er), UL_DROP_TX_MALFORMED);
  p[5] = 13; /* payload length one more than read */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, sizeof ICMP6, &er), UL_DROP_TX_MALFORMED);
}

/* A peer's path MTU: longer IPv6 and IPv4-with-DF packets are refused with
 * the peer named; IPv4 without DF and packets that fit pass. */
static void test_too_big(void) {
  enum { LEN = 100 };
  struct snap s;
  snap_init(&s, 1, 2);
  uint32_t p = snap_peer(&s, "198.18.0.2", 2, 1);
  snap_peer_at(&s, p)->mtu = LEN - 1;
  snap_route(&s, "198.19.2.0", 24, p);
  snap_route(&s, "2001:2:0:102::", 64, p);
  struct ul_fdb *fdb = snap_build(&s);
  snap_free(&s);
  CHECK(fdb != NULL);
  if (fdb == NULL) return;
  uint8_t buf[UL_BUF_SIZE];
  uint8_t *pkt = buf + UL_TX_HEADROOM;
  struct ul_codec_cfg node1 = codec(UL_MODE_VXLAN, MAC1);
  struct ul_encap_result er;

  memset(buf, 0xee, sizeof buf);
  memcpy(pkt, ICMP4, sizeof ICMP4); /* DF set, made LEN long: one byte over */
  pkt[2] = 0;
  pkt[3] = LEN;
  memset(&er, 0, sizeof er);
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, LEN, &er), UL_DROP_TOO_BIG);
  CHECK(er.peer != NULL && er.peer->mtu == LEN - 1 && er.peer->slot == 1);
  CHECK_EQ(buf[UL_TX_HEADROOM - 1], 0xee); /* nothing encapsulated */
  CHECK(memcmp(pkt + 4, ICMP4 + 4, sizeof ICMP4 - 4) == 0);
  pkt[6] = 0x00; /* DF clear: sent on (the outer datagram fragments) */
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, LEN, &er), UL_OK);
  pkt[3] = LEN - 1; /* fits exactly, DF set again */
  pkt[6] = 0x40;
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, LEN - 1, &er), UL_OK);

  /* IPv6 is never fragmented on the way: refused whatever its flags */
  memcpy(pkt, ICMP6, sizeof ICMP6);
  pkt[4] = 0;
  pkt[5] = LEN - 40;
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, LEN, &er), UL_DROP_TOO_BIG);
  pkt[5] = LEN - 41;
  CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, LEN - 1, &er), UL_OK);
  ul_fdb_free(fdb);
}

/* One malformed-datagram case: start from the inner v4 (or v6) packet in a
 * valid frame, patch one byte, cut the length, change the outer source. */
struct bad_case {
  const char *name;
  enum ul_mode mode;
  int v6;           /* base inner packet: ICMP6 instead of ICMP4 */
  int patch_off;    /* -1: none; offset into the UDP payload */
  uint8_t patch_val;
  int len;          /* -1: the full frame */
  const char *src;  /* outer source; NULL: peer 1 */
  int want;
};

static const struct bad_case BAD[] = {
    /* VXLAN */
    {"empty", UL_MODE_VXLAN, 0, -1, 0, 0, NULL, UL_DROP_SHORT},
    {"7 bytes", UL_MODE_VXLAN, 0, -1, 0, 7, NULL, UL_DROP_SHORT},
    {"headers only", UL_MODE_VXLAN, 0, -1, 0, 22, NULL, UL_DROP_SHORT},
    {"flags 0x00", UL_MODE_VXLAN, 0, 0, 0x00, -1, NULL, UL_DROP_BAD_FLAGS},
    {"flags 0x0c (GPE P bit)", UL_MODE_VXLAN, 0, 0, 0x0c, -1, NULL, UL_DROP_BAD_FLAGS},
    {"flags 0x88 (GBP G bit)", UL_MODE_VXLAN, 0, 0, 0x88, -1, NULL, UL_DROP_BAD_FLAGS},
    {"reserved byte 1", UL_MODE_VXLAN, 0, 1, 0x01, -1, NULL, UL_DROP_BAD_FLAGS},
    {"reserved byte 3", UL_MODE_VXLAN, 0, 3, 0x04, -1, NULL, UL_DROP_BAD_FLAGS},
    {"reserved byte 7", UL_MODE_VXLAN, 0, 7, 0x01, -1, NULL, UL_DROP_BAD_FLAGS},
    {"VNI 2", UL_MODE_VXLAN, 0, 6, 0x02, -1, NULL, UL_DROP_BAD_VNI},
    {"VNI 0x010001", UL_MODE_VXLAN, 0, 4, 0x01, -1, NULL, UL_DROP_BAD_VNI},
    {"wrong inner dst MAC", UL_MODE_VXLAN, 0, 13, 0x03, -1, NULL, UL_DROP_BAD_MAC},
    {"broadcast-bit inner MAC", UL_MODE_VXLAN, 0, 8, 0xff, -1, NULL, UL_DROP_BAD_MAC},
    {"ethertype ARP", UL_MODE_VXLAN, 0, 21, 0x06, -1, NULL, UL_DROP_MALFORMED},
    {"IPv4 with v6 ethertype", UL_MODE_VXLAN, 0, 20, 0x86, -1, NULL, UL_DROP_MALFORMED},
    {"IPv6 with v4 ethertype", UL_MODE_VXLAN, 1, 20, 0x08, -1, NULL, UL_DROP_MALFORMED},
    {"IHL 4", UL_MODE_VXLAN, 0, 22, 0x44, -1, NULL, UL_DROP_MALFORMED},
    {"IHL 15 > total length", UL_MODE_VXLAN, 0, 22, 0x4f, -1, NULL, UL_DROP_MALFORMED},
    {"total length > datagram", UL_MODE_VXLAN, 0, 25, 0x21, -1, NULL, UL_DROP_MALFORMED},
    {"truncated IPv4", UL_MODE_VXLAN, 0, -1, 0, 22 + 31, NULL, UL_DROP_MALFORMED},
    {"IPv6 short", UL_MODE_VXLAN, 1, -1, 0, 22 + 30, NULL, UL_DROP_MALFORMED},
    {"IPv6 payload > datagram", UL_MODE_VXLAN, 1, 22 + 5, 0x0d, -1, NULL, UL_DROP_MALFORMED},
    {"unknown outer source", UL_MODE_VXLAN, 0, -1, 0, -1, "198.18.0.9", UL_DROP_UNKNOWN_PEER},
    {"unknown outer source v6", UL_MODE_VXLAN, 1, -1, 0, -1, "2001:2::1", UL_DROP_UNKNOWN_PEER},
    {"spoofed: other peer's subnet", UL_MODE_VXLAN, 0, 22 + 14, 0x03, -1, NULL, UL_DROP_SPOOFED},
    {"spoofed: unrouted source", UL_MODE_VXLAN, 0, 22 + 14, 0x09, -1, NULL, UL_DROP_SPOOFED},
    {"spoofed v6", UL_MODE_VXLAN, 1, 22 + 15, 0x03, -1, NULL, UL_DROP_SPOOFED},
    {"right source, other peer", UL_MODE_VXLAN, 0, -1, 0, -1, "198.18.0.3", UL_DROP_SPOOFED},
    /* first failing check wins: bad VNI and bad MAC -> BAD_VNI */
    {"order: VNI before MAC", UL_MODE_VXLAN, 0, 6, 0x05, -1, "198.18.0.9", UL_DROP_BAD_VNI},
    /* udp */
    {"udp empty", UL_MODE_UDP, 0, -1, 0, 0, NULL, UL_DROP_SHORT},
    {"udp 7 bytes", UL_MODE_UDP, 0, -1, 0, 7, NULL, UL_DROP_SHORT},
    {"udp version 0", UL_MODE_UDP, 0, 0, 0x05, -1, NULL, UL_DROP_MALFORMED},
    {"udp version 5", UL_MODE_UDP, 0, 0, 0x55, -1, NULL, UL_DROP_MALFORMED},
    {"udp IHL 4", UL_MODE_UDP, 0, 0, 0x44, -1, NULL, UL_DROP_MALFORMED},
    {"udp total length > datagram", UL_MODE_UDP, 0, 3, 0x21, -1, NULL, UL_DROP_MALFORMED},
    {"udp IPv6 short", UL_MODE_UDP, 1, -1, 0, 30, NULL, UL_DROP_MALFORMED},
    {"udp IPv6 payload > datagram", UL_MODE_UDP, 1, 5, 0x0d, -1, NULL, UL_DROP_MALFORMED},
    {"udp unknown outer source", UL_MODE_UDP, 0, -1, 0, -1, "198.18.0.9", UL_DROP_UNKNOWN_PEER},
    {"udp spoofed inner source", UL_MODE_UDP, 0, 14, 0x03, -1, NULL, UL_DROP_SPOOFED},
    {"udp spoofed v6", UL_MODE_UDP, 1, 15, 0x03, -1, NULL, UL_DROP_SPOOFED},
    /* controls: the unpatched frames pass */
    {"vxlan v4 ok", UL_MODE_VXLAN, 0, -1, 0, -1, NULL, UL_OK},
    {"vxlan v6 ok", UL_MODE_VXLAN, 1, -1, 0, -1, NULL, UL_OK},
    {"udp v4 ok", UL_MODE_UDP, 0, -1, 0, -1, NULL, UL_OK},
    {"udp v6 ok", UL_MODE_UDP, 1, -1, 0, -1, NULL, UL_OK},
};

static void test_bad_table(const struct ul_fdb *fdb) {
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
    const struct bad_case *c = &BAD[i];
    const uint8_t *pkt = c->v6 ? ICMP6 : ICMP4;
    size_t pkt_len = c->v6 ? sizeof ICMP6 : sizeof ICMP4;
    /* Encapsulate with node 1's config to get a valid frame, then break it.
     * The datagram is copied to a buffer of exactly its length so that ASan
     * catches any read beyond it. */
    uint8_t buf[UL_BUF_SIZE];
    memcpy(buf + UL_TX_HEADROOM, pkt, pkt_len);
    struct ul_codec_cfg node1 = codec(c->mode, MAC1), node2 = codec(c->mode, MAC2);
    struct ul_encap_result er;
    CHECK_EQ(ul_encap(&node1, fdb, buf, UL_TX_HEADROOM, pkt_len, &er), UL_OK);
    size_t len = c->len < 0 ? er.frame_len : (size_t)c->len;
    uint8_t *dgram = malloc(len ? len : 1);
    CHECK(dgram != NULL);
    if (dgram == NULL) continue;
    memcpy(dgram, buf + er.frame_off, len);
    if (c->patch_off >= 0) dgram[c->patch_off] = c->patch_val;
    struct ul_addr src = addr(c->src ? c->src : "198.18.0.1");
    struct ul_decap_result dr;
    int got = ul_decap(&node2, fdb, dgram, len, &src, &dr);
    if (got != c->want)
      fprintf(stderr, "case \"%s\": got %d want %d\n", c->name, got, c->want);
    CHECK_EQ(got, c->want);
    if (c->want == UL_DROP_SPOOFED)
      CHECK(dr.peer != NULL); /* counted against the sending peer */
    free(dgram);
  }
}

/* ul_flow_hash: one flow one hash; ports count except for fragments. */
static void test_flow_hash(void) {
  uint8_t a[48] = { 0x45, 0, 0, 48, 0, 0, 0x40, 0, 64, 17, 0, 0,
                    198, 19, 1, 2, 198, 19, 2, 3, 0x9c, 0x41, 0x14, 0x51 };
  uint8_t b[48], v6[60];
  uint32_t h = ul_flow_hash(a, sizeof a), counts[4] = { 0 };
  unsigned k;

  memcpy(b, a, sizeof a);
  b[40] ^= 0xff; /* payload: not part of the flow */
  CHECK_EQ(ul_flow_hash(b, sizeof b), h);
  b[21] ^= 1; /* source port */
  CHECK(ul_flow_hash(b, sizeof b) != h);
  memcpy(b, a, sizeof a);
  b[19] ^= 1; /* destination address */
  CHECK(ul_flow_hash(b, sizeof b) != h);
  /* fragments: ports ignored, so a first and a later fragment agree */
  memcpy(b, a, sizeof a);
  b[6] = 0x20; /* MF */
  {
    uint32_t first = ul_flow_hash(b, sizeof b);
    b[7] = 0x10; /* offset, and what would be ports is payload */
    b[20] ^= 0x55;
    CHECK_EQ(ul_flow_hash(b, sizeof b), first);
  }
  memset(v6, 0, sizeof v6);
  v6[0] = 0x60;
  v6[6] = 6;
  v6[23] = 1;
  v6[39] = 2;
  v6[41] = 80;
  h = ul_flow_hash(v6, sizeof v6);
  v6[43] = 9; /* destination port */
  CHECK(ul_flow_hash(v6, sizeof v6) != h);
  CHECK_EQ(ul_flow_hash((const uint8_t *)"x", 1), 0);
  /* spread: 4000 flows (source ports) over 4 sockets, each gets a fair share */
  for (k = 0; k < 4000; k++) {
    a[20] = (uint8_t)(k >> 8);
    a[21] = (uint8_t)k;
    counts[ul_flow_pick(ul_flow_hash(a, sizeof a), 4)]++;
  }
  for (k = 0; k < 4; k++) CHECK(counts[k] > 800 && counts[k] < 1200);
  CHECK_EQ(ul_flow_pick(0xffffffffu, 4), 3);
  CHECK_EQ(ul_flow_pick(0, 4), 0);
}

int main(void) {
  struct ul_fdb *fdb = lab_fdb();
  CHECK(fdb != NULL);
  if (fdb == NULL) return CHECK_DONE();
  test_golden(fdb);
  test_roundtrip(fdb, UL_MODE_VXLAN, ICMP4, sizeof ICMP4, "198.18.0.1");
  test_roundtrip(fdb, UL_MODE_VXLAN, ICMP6, sizeof ICMP6, "198.18.0.1");
  test_roundtrip(fdb, UL_MODE_UDP, ICMP4, sizeof ICMP4, "198.18.0.1");
  test_roundtrip(fdb, UL_MODE_UDP, ICMP6, sizeof ICMP6, "198.18.0.1");
  test_encap_errors(fdb);
  test_too_big();
  test_bad_table(fdb);
  test_flow_hash();
  ul_fdb_free(fdb);
  return CHECK_DONE();
}
