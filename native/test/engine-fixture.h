/*
 * engine-fixture.h — the fixture of test-engine.c: inside the test's private
 * network namespace, TUN "ult0" 198.19.1.0/32 with route 198.19.0.0/16,
 * the engine's UDP socket and a peer's on 127.0.0.1, an FDB sending
 * 198.19.2.0/24 to that peer (slot 1), a started engine, and an app socket
 * the rx cases deliver to; plus the small socket, counter and VXLAN frame
 * helpers the cases use.
 *
 * Include after the engine, netlink, tun and udp sources and check.h.
 */
#ifndef USERLAY_ENGINE_FIXTURE_H
#define USERLAY_ENGINE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>

#include "snap.h"


#define TUN_NAME "ult0"
#define VNI 1
static const uint8_t our_mac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t peer_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };

static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  int n = 0;

  if (d == NULL)
    return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

static uint16_t local_port(int fd)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);

  getsockname(fd, (struct sockaddr *)&sin, &len);
  return ntohs(sin.sin_port);
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

  inet_pton(AF_INET, ip, &sin.sin_addr);
  return sin;
}

/* recv with a timeout; returns the length or -errno (-ETIMEDOUT). */
static ssize_t recv_wait(int fd, void *buf, size_t cap, int ms)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  ssize_t n;

  if (poll(&p, 1, ms) <= 0)
    return -ETIMEDOUT;
  n = recv(fd, buf, cap, MSG_DONTWAIT);
  return n < 0 ? -errno : n;
}

static uint64_t ctr(const uint64_t *c, uint32_t slot, int idx)
{
  return __atomic_load_n(&c[slot * UL_C_SLOT_WIDTH + idx], __ATOMIC_RELAXED);
}

/* Wait up to 2 s for a counter to reach `want`. */
static uint64_t ctr_wait(const uint64_t *c, uint32_t slot, int idx, uint64_t want)
{
  struct timespec nap = { 0, 10 * 1000 * 1000 };
  int i;

  for (i = 0; i < 200 && ctr(c, slot, idx) < want; i++)
    nanosleep(&nap, NULL);
  return ctr(c, slot, idx);
}

/* A VXLAN frame carrying IPv4/UDP src -> 198.19.1.0:dport with `payload`. */
static size_t vxlan_frame(uint8_t *f, uint32_t vni, const char *src,
                          uint16_t dport, const char *payload)
{
  size_t plen = strlen(payload), iplen = 20 + 8 + plen;
  uint8_t *ip = f + UL_VXLAN_ENCAP_LEN, *udp = ip + 20;
  struct ul_addr s = addr(src), d = addr("198.19.1.0");

  memset(f, 0, UL_VXLAN_ENCAP_LEN + iplen);
  f[0] = UL_VXLAN_FLAG_I;
  f[4] = (uint8_t)(vni >> 16);
  f[5] = (uint8_t)(vni >> 8);
  f[6] = (uint8_t)vni;
  memcpy(f + 8, our_mac, 6);
  memcpy(f + 14, peer_mac, 6);
  f[20] = 0x08; /* IPv4 */
  ip[0] = 0x45;
  ip[2] = (uint8_t)(iplen >> 8);
  ip[3] = (uint8_t)iplen;
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  memcpy(ip + 12, s.bytes, 4);
  memcpy(ip + 16, d.bytes, 4);
  {
    uint16_t cs = ul_csum_fold(ul_csum_partial(ip, 20, 0));
    ip[10] = (uint8_t)(cs >> 8);
    ip[11] = (uint8_t)cs;
  }
  udp[0] = 0x15; /* source port 5555 */
  udp[1] = 0xb3;
  udp[2] = (uint8_t)(dport >> 8);
  udp[3] = (uint8_t)dport;
  udp[4] = (uint8_t)((8 + plen) >> 8);
  udp[5] = (uint8_t)(8 + plen);
  memcpy(udp + 8, payload, plen); /* UDP checksum 0: none (IPv4) */
  return UL_VXLAN_ENCAP_LEN + iplen;
}

struct fixture {
  int tun, udp, peer, app; /* app: the socket on 198.19.1.0:app_port */
  uint16_t udp_port, peer_port, app_port;
  uint64_t counters[2 * UL_C_SLOT_WIDTH];
  struct ul_engine *engine;
};

static struct ul_fdb *make_fdb(uint16_t peer_port)
{
  struct snap s;
  struct ul_fdb *fdb;
  uint32_t p;

  snap_init(&s, 1, 1);
  p = snap_peer(&s, "127.0.0.1", 0x02, VNI);
  snap_peer_at(&s, p)->port = peer_port;
  snap_route(&s, "198.19.2.0", 24, p);
  fdb = snap_build(&s);
  snap_free(&s);
  return fdb;
}

static int setup(struct fixture *f)
{
  struct ul_addr lo = addr("127.0.0.1"), tun_ip = addr("198.19.1.0"),
                 net = addr("198.19.0.0");
  struct sockaddr_in any = sin4("0.0.0.0", 0);
  struct ul_engine_cfg cfg;
  char name[16];
  socklen_t len = sizeof(any);

  memset(f, 0, sizeof(*f));
  f->tun = ul_tun_open(TUN_NAME, 1, name);
  CHECK(f->tun >= 0);
  CHECK(strcmp(name, TUN_NAME) == 0);
  CHECK_EQ(ul_nl_link_set(TUN_NAME, 1400, 1), 0);
  CHECK_EQ(ul_nl_addr(1, TUN_NAME, &tun_ip, 32), 0);
  CHECK_EQ(ul_nl_route(1, TUN_NAME, &net, 16, NULL, 0), 0);
  f->udp = ul_udp_open(4, &lo, 0);
  f->peer = ul_udp_open(4, &lo, 0);
  CHECK(f->udp >= 0 && f->peer >= 0);
  f->udp_port = local_port(f->udp);
  f->peer_port = local_port(f->peer);
  CHECK_EQ(ul_udp_open(4, &lo, f->udp_port), -EADDRINUSE);

  f->app = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(bind(f->app, (struct sockaddr *)&any, sizeof(any)) == 0);
  getsockname(f->app, (struct sockaddr *)&any, &len);
  f->app_port = ntohs(any.sin_port);

  memset(&cfg, 0, sizeof(cfg));
  cfg.tun_fd = f->tun;
  cfg.udp[0].udp_fd = f->udp;
  cfg.codec.mode = UL_MODE_VXLAN;
  cfg.codec.vni = VNI;
  memcpy(cfg.codec.mac, our_mac, 6);
  /* not a local address: the kernel drops ICMP from its own addresses */
  cfg.icmp_src4 = addr("198.19.0.1");
  cfg.counters = f->counters;
  cfg.max_slot = 1;
  cfg.batch = 16;
  CHECK_EQ(ul_engine_create(&cfg, &f->engine), 0);
  ul_engine_set_fdb(f->engine, make_fdb(f->peer_port));
  CHECK_EQ(ul_engine_start(f->engine), 0);
  CHECK_EQ(ul_engine_start(f->engine), -EALREADY);
  return f->engine != NULL;
}

#endif /* USERLAY_ENGINE_FIXTURE_H */
