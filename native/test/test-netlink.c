/*
 * test-netlink.c — TUN, UDP and rtnetlink helpers against the real kernel,
 * inside a private network namespace (needs root and /dev/net/tun; those
 * parts are skipped otherwise, a failure under CI), and the GSO header for TCP super-segments
 * (pure, runs everywhere). Kernel effects are read back through the kernel:
 * MTU and flags by ioctl, addresses by bind(), routes by a connect() route
 * lookup and by a second delete failing with ESRCH.
 *
 * The system sources are compiled in, so the core Makefile needs no rule.
 */
#include "../src/netlink.c"
#include "../src/tun.c"
#include "../src/udp.c"

#include <net/if.h>
#include <sched.h>
#include <stdio.h>

#include "check.h"
#include "snap.h"

#define TUN_NAME "ultn0"

static struct ifreq ifreq_get(unsigned long req)
{
  struct ifreq ifr;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  memset(&ifr, 0, sizeof(ifr));
  strcpy(ifr.ifr_name, TUN_NAME);
  if (ioctl(s, req, &ifr) < 0)
    memset(&ifr, 0xff, sizeof(ifr));
  close(s);
  return ifr;
}

/* bind() succeeds only on a local address: 0 or -errno. */
static int bind_to(const char *ip)
{
  struct ul_addr a = addr(ip);
  int fd = ul_udp_open(a.family, &a, 0);

  if (fd >= 0)
    close(fd);
  return fd < 0 ? fd : 0;
}

/* Is there a route to `ip`? 1, or -errno (-ENETUNREACH). */
static int route_to(const char *ip)
{
  struct sockaddr_storage ss;
  struct ul_addr a = addr(ip);
  socklen_t len;
  int s, r;

  memset(&ss, 0, sizeof(ss));
  if (a.family == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(9);
    memcpy(&sin->sin_addr, a.bytes, 4);
    len = sizeof(*sin);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(9);
    memcpy(&sin6->sin6_addr, a.bytes, 16);
    len = sizeof(*sin6);
  }
  s = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  /* connect() on UDP is a route lookup and nothing more */
  r = connect(s, (struct sockaddr *)&ss, len) == 0 ? 1 : -errno;
  close(s);
  return r;
}

static void test_tun(void)
{
  char name[16];
  int fd, fd2;

  fd = ul_tun_open("", 0, name);
  CHECK(fd >= 0);
  CHECK(strncmp(name, "tun", 3) == 0); /* kernel-chosen name */
  CHECK(ul_nl_link_index(name) > 0);
  close(fd);
  CHECK_EQ(ul_nl_link_index(name), -ENODEV); /* not persistent */

  fd = ul_tun_open(TUN_NAME, 1, name);
  CHECK(fd >= 0);
  CHECK(strcmp(name, TUN_NAME) == 0);
  CHECK_EQ(ifreq_get(SIOCGIFTXQLEN).ifr_qlen, UL_TUN_TXQLEN);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 1420, 0), 0);
  CHECK_EQ(ul_tun_mtu(fd), 1420);
  {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    struct ul_tun_mtu_cache c = UL_TUN_MTU_CACHE_INIT;
    CHECK(ul_tun_mtu(null) < 0); /* not a TUN */
    CHECK_EQ(ul_tun_mtu_cached(null, &c, 2000), 0); /* unknown */
    close(null);
  }
  {
    struct ul_tun_mtu_cache c = UL_TUN_MTU_CACHE_INIT;
    CHECK_EQ(ul_tun_mtu_cached(fd, &c, 2000), 1420); /* first use reads */
    CHECK_EQ(ul_nl_link_set(TUN_NAME, 1400, 0), 0);
    CHECK_EQ(ul_tun_mtu_cached(fd, &c, 1000), 1420); /* fits: no re-read */
    c.checked = -1; /* as if the last read were a second old */
    CHECK_EQ(ul_tun_mtu_cached(fd, &c, 1000), 1420); /* still fits */
    CHECK_EQ(ul_tun_mtu_cached(fd, &c, 2000), 1400); /* exceeds: re-read */
    CHECK_EQ(ul_nl_link_set(TUN_NAME, 1420, 0), 0);
  }
  {
    int sz = 0;
    CHECK(ioctl(fd, TUNGETVNETHDRSZ, &sz) == 0);
    CHECK_EQ(sz, UL_VNET_HDR_LEN);
  }
  fd2 = ul_tun_open(TUN_NAME, 1, name); /* attached already */
  CHECK_EQ(fd2, -EBUSY);
  CHECK_EQ(ul_tun_open("0123456789abcdefg", 1, name), -EINVAL);
  close(fd);
}

/* A route as another program would add it: protocol `proto` (not ours). */
static int foreign_route(const char *ifname, const struct ul_addr *dst,
                         int prefix_len, uint8_t proto)
{
  struct nl_req req;
  struct rtmsg *rtm;
  size_t alen;
  int af = family_af(dst->family, &alen);

  rtm = nl_init(&req, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*rtm));
  rtm->rtm_family = (uint8_t)af;
  rtm->rtm_dst_len = (uint8_t)prefix_len;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = proto;
  rtm->rtm_type = RTN_UNICAST;
  rtm->rtm_scope = af == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  if (nl_put(&req, RTA_DST, dst->bytes, alen) < 0 ||
      nl_put_u32(&req, RTA_OIF, (uint32_t)ul_nl_link_index(ifname)) < 0)
    return -EMSGSIZE;
  return nl_transact(&req);
}

/* Routes are added exclusively and deleted only when they are ours: a route
 * of another device or another protocol is neither taken over nor removed. */
static void test_route_ownership(void)
{
  const char *routes[] = { "198.19.2.0", "2001:2:0:102::" };
  const int plens[] = { 24, 64 };
  const char *probes[] = { "198.19.2.5", "2001:2:0:102::5" };
  char name[16];
  int fd = ul_tun_open(TUN_NAME, 1, name);
  int fd2 = ul_tun_open("ultn1", 1, name);
  size_t i;

  CHECK(fd >= 0 && fd2 >= 0);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 1400, 1), 0);
  CHECK_EQ(ul_nl_link_set("ultn1", 1400, 1), 0);
  for (i = 0; i < 2; i++) {
    struct ul_addr net = addr(routes[i]);
    int plen = plens[i];

    /* ours: added once; a second add, on this or another TUN, is EEXIST */
    CHECK_EQ(ul_nl_route(1, TUN_NAME, &net, plen, NULL, 0), 0);
    CHECK_EQ(ul_nl_route(1, TUN_NAME, &net, plen, NULL, 0), -EEXIST);
    CHECK_EQ(ul_nl_route(1, "ultn1", &net, plen, NULL, 0), -EEXIST);
    /* another device's delete does not remove it */
    CHECK_EQ(ul_nl_route(0, "ultn1", &net, plen, NULL, 0), -ESRCH);
    CHECK_EQ(route_to(probes[i]), 1);
    CHECK_EQ(ul_nl_route(0, TUN_NAME, &net, plen, NULL, 0), 0);
    CHECK_EQ(route_to(probes[i]), -ENETUNREACH);

    /* someone else's (protocol static) on our device: kept, never ours */
    CHECK_EQ(foreign_route(TUN_NAME, &net, plen, RTPROT_STATIC), 0);
    CHECK_EQ(ul_nl_route(1, TUN_NAME, &net, plen, NULL, 0), -EEXIST);
    CHECK_EQ(ul_nl_route(0, TUN_NAME, &net, plen, NULL, 0), -ESRCH);
    CHECK_EQ(route_to(probes[i]), 1);
  }
  close(fd2);
  close(fd);
}

struct dump_seen {
  int count, v4_24, gw, foreign;
};

static int dump_count(const struct ul_route *r, void *ctx)
{
  struct dump_seen *d = ctx;
  struct ul_addr net = addr("198.19.3.0"), gw = addr("198.19.3.1");

  d->count++;
  if (r->protocol != UL_RTPROT)
    d->foreign++;
  if (r->dst.family == 4 && r->prefix_len == 24 &&
      memcmp(r->dst.bytes, net.bytes, 4) == 0)
    d->v4_24++;
  if (r->via.family == 4 && memcmp(r->via.bytes, gw.bytes, 4) == 0)
    d->gw++;
  return 0;
}

static int dump_stop(const struct ul_route *r, void *ctx)
{
  (void)r;
  (*(int *)ctx)++;
  return 42;
}

/* A dump filtered by device and protocol sees exactly our routes: not a
 * foreign one on the same device, not ours on another device. */
static void test_route_dump(void)
{
  struct ul_addr n3 = addr("198.19.3.0"), n4 = addr("198.19.4.0"),
                 n5 = addr("198.19.5.0"), gw = addr("198.19.3.1"),
                 n6 = addr("2001:2:0:106::");
  struct dump_seen all = { 0 }, ours = { 0 }, six = { 0 };
  char name[16];
  int fd = ul_tun_open(TUN_NAME, 1, name), fd2 = ul_tun_open("ultn1", 1, name);
  int idx, calls = 0;

  CHECK(fd >= 0 && fd2 >= 0);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 1400, 1), 0);
  CHECK_EQ(ul_nl_link_set("ultn1", 1400, 1), 0);
  idx = ul_nl_link_index(TUN_NAME);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &n3, 24, &gw, 1), 0);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &n6, 64, NULL, 0), 0);
  CHECK_EQ(foreign_route(TUN_NAME, &n4, 24, RTPROT_STATIC), 0);
  CHECK_EQ(ul_nl_route(1, "ultn1", &n5, 24, NULL, 0), 0);

  CHECK_EQ(ul_nl_route_dump(4, idx, UL_RTPROT, dump_count, &ours), 0);
  CHECK_EQ(ours.count, 1);
  CHECK_EQ(ours.v4_24, 1);
  CHECK_EQ(ours.gw, 1);
  CHECK_EQ(ours.foreign, 0);
  CHECK_EQ(ul_nl_route_dump(4, idx, -1, dump_count, &all), 0);
  CHECK_EQ(all.count, 2); /* ours and the static one */
  CHECK_EQ(all.foreign, 1);
  CHECK_EQ(ul_nl_route_dump(6, idx, UL_RTPROT, dump_count, &six), 0);
  CHECK_EQ(six.count, 1);
  /* fn's non-zero value stops the dump and is returned */
  CHECK_EQ(ul_nl_route_dump(4, 0, UL_RTPROT, dump_stop, &calls), 42);
  CHECK_EQ(calls, 1);
  CHECK_EQ(ul_nl_route_dump(5, 0, -1, dump_count, &all), -EAFNOSUPPORT);
  CHECK_EQ(ul_nl_route_dump(4, 0, -1, NULL, NULL), -EINVAL);
  close(fd2);
  close(fd);
}

static void test_link_addr_route(void)
{
  struct ul_addr v4 = addr("198.19.1.0"), v6 = addr("2001:2:0:101::"),
                 net4 = addr("198.19.2.0"), net6 = addr("2001:2:0:102::"),
                 gw4 = addr("198.19.2.0"), gw6 = addr("2001:2:0:102::");
  char name[16];
  int fd = ul_tun_open(TUN_NAME, 1, name), idx = ul_nl_link_index(TUN_NAME);

  CHECK(fd >= 0 && idx > 0);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 1370, 1), 0);
  CHECK_EQ(ifreq_get(SIOCGIFMTU).ifr_mtu, 1370);
  CHECK(ifreq_get(SIOCGIFFLAGS).ifr_flags & IFF_UP);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 0, 1), 0); /* mtu 0: kept */
  CHECK_EQ(ifreq_get(SIOCGIFMTU).ifr_mtu, 1370);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 10, 1), -EINVAL); /* below the minimum */
  CHECK_EQ(ul_nl_link_set("nosuch0", 1400, 1), -ENODEV);

  /* addresses, both families through one path */
  CHECK_EQ(bind_to("198.19.1.0"), -EADDRNOTAVAIL);
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &v4, 32), 0);
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &v4, 32), 0); /* replace: idempotent */
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &v6, 128), 0);
  CHECK_EQ(bind_to("198.19.1.0"), 0);
  CHECK_EQ(bind_to("2001:2:0:101::"), 0); /* usable at once: no DAD */
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &v4, 33), -EINVAL);

  /* routes: direct, and via a gateway onlink */
  CHECK_EQ(route_to("198.19.2.5"), -ENETUNREACH);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &net4, 24, &gw4, 1), 0);
  CHECK_EQ(route_to("198.19.2.5"), 1);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &net6, 64, &gw6, 1), 0);
  CHECK_EQ(route_to("2001:2:0:102::5"), 1);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &net4, 24, &v6, 1), -EINVAL); /* mixed */

  CHECK_EQ(ul_nl_route(0, TUN_NAME, &net4, 24, NULL, 0), 0);
  CHECK_EQ(ul_nl_route(0, TUN_NAME, &net4, 24, NULL, 0), -ESRCH);
  CHECK_EQ(route_to("198.19.2.5"), -ENETUNREACH);
  CHECK_EQ(ul_nl_route(0, TUN_NAME, &net6, 64, NULL, 0), 0);
  CHECK_EQ(ul_nl_route(0, TUN_NAME, &net6, 64, NULL, 0), -ESRCH);

  CHECK_EQ(ul_nl_addr(0, TUN_NAME, &v4, 32), 0);
  CHECK_EQ(ul_nl_addr(0, TUN_NAME, &v4, 32), -EADDRNOTAVAIL);
  CHECK_EQ(ul_nl_addr(0, TUN_NAME, &v6, 128), 0);
  CHECK_EQ(bind_to("198.19.1.0"), -EADDRNOTAVAIL);

  CHECK_EQ(ul_nl_link_set(TUN_NAME, 0, 0), 0);
  CHECK(!(ifreq_get(SIOCGIFFLAGS).ifr_flags & IFF_UP));
  CHECK_EQ(ul_nl_link_del(TUN_NAME), 0);
  CHECK_EQ(ul_nl_link_index(TUN_NAME), -ENODEV);
  CHECK_EQ(ul_nl_link_del(TUN_NAME), -ENODEV);
  close(fd);
}

/* An IPv4 or IPv6 TCP packet of `len` bytes (20-byte TCP header, payload
 * bytes i & 0xff) from 198.19.2.2 / 2001:2:0:102::2 to 198.19.1.2 / 2001:2:0:101::2. */
static size_t tcp_packet(uint8_t *p, unsigned version, size_t len, uint8_t flags)
{
  size_t l3 = version == 4 ? 20 : 40, i;
  struct ul_addr s = addr(version == 4 ? "198.19.2.2" : "2001:2:0:102::2"),
                 d = addr(version == 4 ? "198.19.1.2" : "2001:2:0:101::2");

  memset(p, 0, l3 + 20);
  if (version == 4) {
    p[0] = 0x45;
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    p[6] = 0x40; /* DF */
    p[8] = 64;
    p[9] = 6;
    memcpy(p + 12, s.bytes, 4);
    memcpy(p + 16, d.bytes, 4);
  } else {
    p[0] = 0x60;
    p[4] = (uint8_t)((len - 40) >> 8);
    p[5] = (uint8_t)(len - 40);
    p[6] = 6;
    p[7] = 64;
    memcpy(p + 8, s.bytes, 16);
    memcpy(p + 24, d.bytes, 16);
  }
  p[l3 + 12] = 5 << 4;
  p[l3 + 13] = flags;
  for (i = l3 + 20; i < len; i++)
    p[i] = (uint8_t)i;
  return l3;
}

static void test_gso_for_rx(void)
{
  static uint8_t pkt[9000];
  unsigned version;

  for (version = 4; version <= 6; version += 2) {
    struct ul_vnet_hdr vh;
    size_t l3 = tcp_packet(pkt, version, 5000, 0x18 /* PSH ACK */);
    size_t alen = version == 4 ? 4 : 16, aoff = version == 4 ? 12 : 8;
    uint32_t pseudo;

    memset(&vh, 0, sizeof(vh));
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 5000, &vh), 0); /* fits */
    CHECK_EQ(vh.gso_type, 0);
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 1400, &vh), 1);
    CHECK_EQ(vh.flags, UL_VNET_F_NEEDS_CSUM);
    CHECK_EQ(vh.gso_type, version == 4 ? 1 : 4);
    CHECK_EQ(vh.gso_size, 1400 - l3 - 20);
    CHECK_EQ(vh.hdr_len, l3 + 20);
    CHECK_EQ(vh.csum_start, l3);
    CHECK_EQ(vh.csum_offset, 16);
    /* the field holds the pseudo-header sum: completing it over the TCP
     * part (what the kernel does per segment) gives a valid checksum */
    pseudo = ul_csum_partial(pkt + aoff, 2 * alen, 6 + (uint32_t)(5000 - l3));
    CHECK_EQ((uint16_t)((pkt[l3 + 16] << 8) | pkt[l3 + 17]),
             (uint16_t)~ul_csum_fold(pseudo));
    {
      uint16_t c = ul_csum_fold(ul_csum_partial(pkt + l3, 5000 - l3, 0));
      pkt[l3 + 16] = (uint8_t)(c >> 8);
      pkt[l3 + 17] = (uint8_t)c;
      CHECK_EQ(ul_csum_fold(ul_csum_partial(pkt + l3, 5000 - l3, pseudo)), 0);
    }

    tcp_packet(pkt, version, 5000, 0x80 | 0x10); /* CWR */
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 1400, &vh), 1);
    CHECK_EQ(vh.gso_type, (version == 4 ? 1 : 4) | 0x80);

    tcp_packet(pkt, version, 5000, 0x10);
    pkt[version == 4 ? 9 : 6] = 17; /* UDP: left alone */
    memset(&vh, 0, sizeof(vh));
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 1400, &vh), 0);
    CHECK_EQ(vh.gso_type, 0);
  }
  tcp_packet(pkt, 4, 5000, 0x10);
  pkt[6] = 0x20; /* MF: a fragment is not segmented */
  {
    struct ul_vnet_hdr vh = { 0 };
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 1400, &vh), 0);
    CHECK_EQ(ul_tun_gso_for_rx(pkt, 5000, 0, &vh), 0); /* MTU unknown */
  }
}

static void test_udp(void)
{
  struct ul_addr lo4 = addr("127.0.0.1"), lo6 = addr("::1");
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int a, b, v6only = 0, fl;

  a = ul_udp_open(4, &lo4, 0);
  CHECK(a >= 0);
  getsockname(a, (struct sockaddr *)&sin, &len);
  b = ul_udp_open(4, &lo4, ntohs(sin.sin_port));
  CHECK_EQ(b, -EADDRINUSE);
  fl = fcntl(a, F_GETFL);
  CHECK(fl & O_NONBLOCK);
  CHECK(fcntl(a, F_GETFD) & FD_CLOEXEC);
  {
    int rcv = 0, snd = 0;
    socklen_t l = sizeof(rcv);
    getsockopt(a, SOL_SOCKET, SO_RCVBUF, &rcv, &l);
    CHECK(rcv >= UL_UDP_RCVBUF); /* root: forced past rmem_max */
    l = sizeof(snd);
    getsockopt(a, SOL_SOCKET, SO_SNDBUF, &snd, &l);
    CHECK(snd >= UL_UDP_SNDBUF);
  }
  close(a);

  a = ul_udp_open(6, &lo6, 0);
  CHECK(a >= 0);
  len = sizeof(v6only);
  getsockopt(a, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
  CHECK_EQ(v6only, 1);
  close(a);
  a = ul_udp_open(6, NULL, 0); /* any IPv6 */
  CHECK(a >= 0);
  close(a);
  CHECK_EQ(ul_udp_open(5, NULL, 0), -EAFNOSUPPORT);
}

int main(void)
{
  test_gso_for_rx(); /* pure: runs everywhere */
  if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
    return CHECK_SKIP("kernel tests need root and /dev/net/tun");
  if (unshare(CLONE_NEWNET) != 0) {
    char why[128];
    snprintf(why, sizeof(why), "unshare(CLONE_NEWNET): %s", strerror(errno));
    return CHECK_SKIP(why);
  }
  CHECK_EQ(ul_nl_link_set("lo", 0, 1), 0);
  test_tun();
  test_link_addr_route();
  test_route_ownership();
  test_route_dump();
  test_udp();
  return CHECK_DONE();
}
