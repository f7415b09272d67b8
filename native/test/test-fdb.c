/*
 * test-fdb.c — FDB build validation, longest-prefix match (v4 and v6,
 * overlapping prefixes, host routes, default route, empty table), lookup by
 * underlay address, and a 5000-peer table.
 */
#include <errno.h>
#include <stdio.h>

#include "check.h"
#include "snap.h"

/* Slot of the peer `dst` routes to, 0 when no route. */
static uint32_t route_slot(const struct ul_fdb *fdb, const char *dst) {
  struct ul_addr a = addr(dst);
  const struct ul_fdb_peer *p = ul_fdb_lookup(fdb, &a);
  return p == NULL ? 0 : p->slot;
}

static void test_empty(void) {
  struct snap s;
  snap_init(&s, 0, 0);
  struct ul_fdb *fdb = snap_build(&s);
  CHECK(fdb != NULL);
  CHECK_EQ(ul_fdb_peer_count(fdb), 0);
  CHECK_EQ(ul_fdb_route_count(fdb), 0);
  CHECK_EQ(route_slot(fdb, "198.19.1.2"), 0);
  CHECK_EQ(route_slot(fdb, "2001:2:0:101::1"), 0);
  struct ul_addr u = addr("198.18.0.1");
  CHECK(ul_fdb_peer_by_underlay(fdb, &u) == NULL);
  ul_fdb_free(fdb);
  CHECK(ul_fdb_lookup(NULL, &u) == NULL); /* engine without a table */
  CHECK(ul_fdb_peer_by_underlay(NULL, &u) == NULL);
  snap_free(&s);
}

static void test_lpm(void) {
  struct snap s;
  snap_init(&s, 8, 16);
  uint32_t a = snap_peer(&s, "198.18.0.1", 1, 1);
  uint32_t b = snap_peer(&s, "198.18.0.2", 2, 1);
  uint32_t c = snap_peer(&s, "2001:2::3", 3, 1);
  uint32_t d = snap_peer(&s, "198.18.0.4", 4, 1);
  snap_route(&s, "198.19.0.0", 16, a);       /* cluster-wide, overlapped */
  snap_route(&s, "198.19.2.0", 24, b);
  snap_route(&s, "198.19.2.128", 25, c);
  snap_route(&s, "198.19.2.7", 32, d);       /* host route */
  snap_route(&s, "2001:2:0:100::", 56, a);
  snap_route(&s, "2001:2:0:102::", 64, b);
  snap_route(&s, "2001:2:0:102::7", 128, d);
  snap_route(&s, "::", 0, c);                /* v6 default */
  struct ul_fdb *fdb = snap_build(&s);
  CHECK(fdb != NULL);
  if (fdb == NULL) { snap_free(&s); return; }
  CHECK_EQ(ul_fdb_peer_count(fdb), 4);
  CHECK_EQ(ul_fdb_route_count(fdb), 8);

  CHECK_EQ(route_slot(fdb, "198.19.1.2"), a + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.1"), b + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.127"), b + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.128"), c + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.255"), c + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.7"), d + 1);
  CHECK_EQ(route_slot(fdb, "198.19.2.6"), b + 1);
  CHECK_EQ(route_slot(fdb, "198.19.255.255"), a + 1);
  CHECK_EQ(route_slot(fdb, "198.18.2.7"), 0);   /* no v4 default */
  CHECK_EQ(route_slot(fdb, "0.0.0.0"), 0);

  CHECK_EQ(route_slot(fdb, "2001:2:0:100::1"), a + 1);
  CHECK_EQ(route_slot(fdb, "2001:2:0:102::1"), b + 1);
  CHECK_EQ(route_slot(fdb, "2001:2:0:102::7"), d + 1);
  CHECK_EQ(route_slot(fdb, "2001:2:0:102:1::7"), b + 1);
  CHECK_EQ(route_slot(fdb, "2001:2:0:200::1"), c + 1); /* default (outside the /56) */
  CHECK_EQ(route_slot(fdb, "::"), c + 1);

  /* Families never mix: v4 bytes looked up as v6 hit the v6 default only. */
  struct ul_addr v4as6 = addr("198.19.2.7");
  v4as6.family = 6;
  CHECK(ul_fdb_lookup(fdb, &v4as6) != NULL &&
        ul_fdb_lookup(fdb, &v4as6)->slot == c + 1);
  struct ul_addr bad = addr("198.19.2.7");
  bad.family = 5;
  CHECK(ul_fdb_lookup(fdb, &bad) == NULL);

  /* Peers keep snapshot order: ul_fdb_peer_index maps a result back. */
  struct ul_addr x = addr("198.19.2.7"), y = addr("198.19.2.200");
  CHECK_EQ(ul_fdb_peer_index(fdb, ul_fdb_lookup(fdb, &x)), (long)d);
  CHECK_EQ(ul_fdb_peer_index(fdb, ul_fdb_lookup(fdb, &y)), (long)c);
  CHECK_EQ(ul_fdb_peer_index(fdb, NULL), -1);
  CHECK_EQ(ul_fdb_peer_index(NULL, ul_fdb_lookup(fdb, &x)), -1);
  struct ul_fdb_peer foreign = *ul_fdb_lookup(fdb, &x);
  CHECK_EQ(ul_fdb_peer_index(fdb, &foreign), -1);     /* a copy is not ours */
  CHECK_EQ(ul_fdb_peer_index(fdb, ul_fdb_lookup(fdb, &x) + 1), -1); /* one past the end */

  struct ul_addr u2 = addr("198.18.0.2"), u3 = addr("2001:2::3"),
                 u9 = addr("198.18.0.9"), u3as4 = addr("2001:2::3");
  u3as4.family = 4;
  CHECK(ul_fdb_peer_by_underlay(fdb, &u2) != NULL &&
        ul_fdb_peer_by_underlay(fdb, &u2)->slot == b + 1);
  CHECK(ul_fdb_peer_by_underlay(fdb, &u3) != NULL &&
        ul_fdb_peer_by_underlay(fdb, &u3)->slot == c + 1);
  CHECK(ul_fdb_peer_by_underlay(fdb, &u9) == NULL);
  CHECK(ul_fdb_peer_by_underlay(fdb, &u3as4) == NULL);
  ul_fdb_free(fdb);
  snap_free(&s);
}

/* A v4 /0 default route next to longer ones. */
static void test_default_v4(void) {
  struct snap s;
  snap_init(&s, 2, 2);
  uint32_t a = snap_peer(&s, "198.18.0.1", 1, 1);
  uint32_t b = snap_peer(&s, "198.18.0.2", 2, 1);
  snap_route(&s, "0.0.0.0", 0, a);
  snap_route(&s, "198.19.3.0", 24, b);
  struct ul_fdb *fdb = snap_build(&s);
  CHECK(fdb != NULL);
  CHECK_EQ(route_slot(fdb, "198.19.3.9"), b + 1);
  CHECK_EQ(route_slot(fdb, "203.0.113.1"), a + 1);
  CHECK_EQ(route_slot(fdb, "2001:2:0:101::1"), 0);
  ul_fdb_free(fdb);
  snap_free(&s);
}

/* A base snapshot, corrupted by `corrupt`, must be rejected with -EINVAL. */
typedef void (*corruptor)(struct snap *s, size_t *len);

static void c_magic(struct snap *s, size_t *len) { (void)len; s->buf[0] ^= 1; }
static void c_short(struct snap *s, size_t *len) { (void)s; *len -= 1; }
static void c_long(struct snap *s, size_t *len) { (void)s; *len += 1; }
static void c_tiny(struct snap *s, size_t *len) { (void)s; *len = 15; }
static void c_count(struct snap *s, size_t *len) {
  (void)len;
  uint32_t n = 0xffffffffu;
  memcpy(s->buf + 4, &n, 4); /* n_peers huge: sizes overflow-safe */
}
static void c_hdr_reserved(struct snap *s, size_t *len) { (void)len; s->buf[12] = 1; }
static void c_peer_family(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->family = 5; }
static void c_peer_flags(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->flags = 0x02; }
static void c_peer_slot(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 1)->slot = 0; }
static void c_peer_v4_tail(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->ip[9] = 1; }
static void c_peer_vni(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->vni = 1u << 24; }
static void c_peer_port(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->port = 0; }
static void c_peer_mtu_low(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->mtu = 67; }
static void c_peer_mtu_high(struct snap *s, size_t *len) { (void)len; snap_peer_at(s, 0)->mtu = 65536; }
static void c_peer_dup_ip(struct snap *s, size_t *len) {
  (void)len;
  memcpy(snap_peer_at(s, 1)->ip, snap_peer_at(s, 0)->ip, 16);
}
static struct ul_fdb_route *route_at(struct snap *s, uint32_t i) {
  return (struct ul_fdb_route *)(s->buf + snap_route_off(s, i));
}
static void c_route_peer(struct snap *s, size_t *len) { (void)len; route_at(s, 1)->peer = 2; }
static void c_route_family(struct snap *s, size_t *len) { (void)len; route_at(s, 0)->family = 0; }
static void c_route_plen4(struct snap *s, size_t *len) { (void)len; route_at(s, 0)->prefix_len = 33; }
static void c_route_plen6(struct snap *s, size_t *len) { (void)len; route_at(s, 2)->prefix_len = 129; }
static void c_route_host_bits(struct snap *s, size_t *len) { (void)len; route_at(s, 0)->addr[3] = 1; }
static void c_route_host_bits6(struct snap *s, size_t *len) { (void)len; route_at(s, 2)->addr[15] = 1; }
static void c_route_v4_tail(struct snap *s, size_t *len) { (void)len; route_at(s, 0)->addr[4] = 1; }
static void c_route_dup(struct snap *s, size_t *len) {
  (void)len;
  struct ul_fdb_route r = *route_at(s, 0);
  r.peer = 1; /* same prefix, other peer */
  *route_at(s, 1) = r;
}

static void test_malformed(void) {
  static const struct { const char *name; corruptor fn; } cases[] = {
      {"bad magic", c_magic},
      {"len one short", c_short},
      {"len one long", c_long},
      {"shorter than header", c_tiny},
      {"n_peers overflow", c_count},
      {"header reserved", c_hdr_reserved},
      {"peer family", c_peer_family},
      {"peer unknown flag", c_peer_flags},
      {"peer slot 0", c_peer_slot},
      {"peer v4 ip tail", c_peer_v4_tail},
      {"peer vni", c_peer_vni},
      {"peer port 0", c_peer_port},
      {"peer mtu below 68", c_peer_mtu_low},
      {"peer mtu above 65535", c_peer_mtu_high},
      {"duplicate underlay ip", c_peer_dup_ip},
      {"route peer index", c_route_peer},
      {"route family", c_route_family},
      {"route v4 /33", c_route_plen4},
      {"route v6 /129", c_route_plen6},
      {"route host bits", c_route_host_bits},
      {"route v6 host bits", c_route_host_bits6},
      {"route v4 addr tail", c_route_v4_tail},
      {"duplicate prefix", c_route_dup},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct snap s;
    snap_init(&s, 2, 3);
    snap_peer(&s, "198.18.0.1", 1, 1);
    snap_peer(&s, "198.18.0.2", 2, 1);
    snap_route(&s, "198.19.1.0", 24, 0);
    snap_route(&s, "198.19.2.0", 24, 1);
    snap_route(&s, "2001:2:0:101::", 64, 0);
    size_t len = snap_finish(&s);
    struct ul_fdb *fdb = NULL;
    CHECK_EQ(ul_fdb_build(s.buf, len, &fdb), 0); /* base is valid */
    ul_fdb_free(fdb);
    fdb = NULL;
    cases[i].fn(&s, &len);
    int rc = ul_fdb_build(s.buf, len, &fdb);
    if (rc != -EINVAL) fprintf(stderr, "case: %s\n", cases[i].name);
    CHECK_EQ(rc, -EINVAL);
    CHECK(fdb == NULL);
    ul_fdb_free(fdb); /* only when the check above failed */
    snap_free(&s);
  }
  struct ul_fdb *fdb = NULL;
  CHECK_EQ(ul_fdb_build(NULL, 16, &fdb), -EINVAL);
}

/* 5000 peers, each with a /29 and a /64, plus a cluster-wide /16. */
static void test_many(void) {
  enum { N = 5000 };
  struct snap s;
  snap_init(&s, N, 2 * N + 1);
  char ip[64], net[64];
  for (uint32_t i = 0; i < N; i++) {
    /* 198.19.0.0/16 can't hold 5000 /24s: /29s, and /64s in
     * 2001:2:0:2000::/51 (the /56 cluster network can't hold 5000 /64s) */
    snprintf(ip, sizeof ip, "198.18.%u.%u", i / 250, i % 250 + 1);
    snap_peer(&s, ip, (uint8_t)i, 1);
    snprintf(net, sizeof net, "198.19.%u.%u", (i * 8) / 256, (i * 8) % 256);
    snap_route(&s, net, 29, i);
    snprintf(net, sizeof net, "2001:2:0:%x::", 0x2000 + i);
    snap_route(&s, net, 64, i);
  }
  uint32_t catchall = 0;
  snap_route(&s, "198.19.0.0", 16, catchall);
  struct ul_fdb *fdb = snap_build(&s);
  CHECK(fdb != NULL);
  if (fdb == NULL) { snap_free(&s); return; }
  CHECK_EQ(ul_fdb_peer_count(fdb), N);
  CHECK_EQ(ul_fdb_route_count(fdb), 2 * N + 1);
  int wrong = 0;
  for (uint32_t i = 0; i < N; i++) {
    snprintf(net, sizeof net, "198.19.%u.%u", (i * 8) / 256, (i * 8) % 256 + 5);
    if (route_slot(fdb, net) != i + 1) wrong++;
    snprintf(net, sizeof net, "2001:2:0:%x:1:2:3:4", 0x2000 + i);
    if (route_slot(fdb, net) != i + 1) wrong++;
    snprintf(ip, sizeof ip, "198.18.%u.%u", i / 250, i % 250 + 1);
    struct ul_addr u = addr(ip);
    const struct ul_fdb_peer *p = ul_fdb_peer_by_underlay(fdb, &u);
    if (p == NULL || p->slot != i + 1) wrong++;
  }
  CHECK_EQ(wrong, 0);
  CHECK_EQ(route_slot(fdb, "198.19.255.1"), catchall + 1); /* beyond the /29s */
  CHECK_EQ(route_slot(fdb, "2001:2:0:4000::1"), 0);
  ul_fdb_free(fdb);
  snap_free(&s);
}

/* The partial-checksum flag is accepted and kept per peer. */
static void test_flags(void) {
  struct snap s;
  struct ul_fdb *fdb = NULL;
  struct ul_addr a = addr("198.19.1.9"), b = addr("198.19.2.9");
  snap_init(&s, 2, 2);
  snap_peer(&s, "198.18.0.1", 1, 1);
  snap_peer(&s, "198.18.0.2", 2, 1);
  snap_peer_at(&s, 0)->flags = UL_FDB_F_PARTIAL_CSUM;
  snap_route(&s, "198.19.1.0", 24, 0);
  snap_route(&s, "198.19.2.0", 24, 1);
  size_t len = snap_finish(&s);
  CHECK_EQ(ul_fdb_build(s.buf, len, &fdb), 0);
  if (fdb != NULL) {
    const struct ul_fdb_peer *p = ul_fdb_lookup(fdb, &a), *q = ul_fdb_lookup(fdb, &b);
    CHECK(p != NULL && p->flags == UL_FDB_F_PARTIAL_CSUM);
    CHECK(q != NULL && q->flags == 0);
  }
  ul_fdb_free(fdb);
  snap_free(&s);
}

int main(void) {
  test_empty();
  test_flags();
  test_lpm();
  test_default_v4();
  test_malformed();
  test_many();
  return CHECK_DONE();
}
