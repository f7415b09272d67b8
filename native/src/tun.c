/*
 * TUN device: open /dev/net/tun and attach it to a (new or existing) layer-3
 * interface.
 *
 * The device is not made persistent, so it disappears when the last fd that
 * holds it is closed; a crashed agent therefore leaves no TUN behind.
 *
 * Also here: offloads (TUNSETOFFLOAD), the MTU cache, received TCP
 * super-segments, and the receive writer of both engines (coalesced and
 * GSO writes, with the software fallback for kernels that refuse them).
 * Reading the TUN is tun-read.c.
 */
#include "userlay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/*
 * TUN devices start with a 500-packet queue. The engine's tx thread drains it
 * one read() per packet and shares two cores with the pods, so a scheduling
 * hiccup fills it and the kernel drops there (TCP backs off). Measured in the
 * 2-node lab with receive coalescing on (lab --seconds 5, 3 runs each):
 *   1000: 2.05-2.38 Gbit/s, 12.5k-18.5k retransmits
 *   2000: 2.63-2.85 Gbit/s, 0.2k-1.7k retransmits
 *   4000: 2.68-2.81 Gbit/s, 0 retransmits
 * 2000 keeps worst-case queueing near 9 ms at that rate (4000 doubles it for
 * no more throughput). Best effort: the device works without it.
 */
#define UL_TUN_TXQLEN 2000

static void set_txqueuelen(const char *ifname)
{
  struct ifreq ifr;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (s < 0)
    return;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
  ifr.ifr_qlen = UL_TUN_TXQLEN;
  (void)ioctl(s, SIOCSIFTXQLEN, &ifr);
  close(s);
}

static int tun_open(const char *name, int vnet_hdr, int multi_queue,
                    char name_out[16])
{
  struct ifreq ifr;
  int fd;

  if (name == NULL || strlen(name) >= IFNAMSIZ)
    return -EINVAL;

  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return -errno;

  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name, strlen(name));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (multi_queue)
    ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (vnet_hdr)
    ifr.ifr_flags |= IFF_VNET_HDR;

  if (ioctl(fd, TUNSETIFF, &ifr) < 0)
    goto fail;

  if (vnet_hdr) {
    /* 10 is the kernel default, but say it explicitly: every offset in the
     * engine depends on it (UL_VNET_HDR_LEN). Set on every queue's fd. */
    int sz = UL_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
      goto fail;
  }

  set_txqueuelen(ifr.ifr_name);
  memcpy(name_out, ifr.ifr_name, IFNAMSIZ);
  name_out[IFNAMSIZ - 1] = '\0';
  return fd;

fail:
  {
    int err = errno;
    close(fd);
    return -err;
  }
}

int ul_tun_open(const char *name, int vnet_hdr, char name_out[16])
{
  return tun_open(name, vnet_hdr, 0, name_out);
}

int ul_tun_open_queue(const char *name, int vnet_hdr, char name_out[16])
{
  return tun_open(name, vnet_hdr, 1, name_out);
}

/*
 * Offloads. TUNSETOFFLOAD replaces the whole set, and a kernel that does
 * not know one flag refuses the call with EINVAL, leaving the old set. So
 * the base set goes first and USO is tried on top of it: a kernel without
 * USO keeps TSO. A base set refused with EINVAL leaves the TUN without
 * offloads (got = 0), which is the path of offloads off.
 */
static int set_offload(int fd, unsigned flags)
{
  return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}

int ul_tun_set_offloads(int fd, unsigned want, unsigned refuse, unsigned *got)
{
  const unsigned base = want & (UL_TUN_F_CSUM | UL_TUN_F_TSO4 | UL_TUN_F_TSO6);
  const unsigned uso = want & (UL_TUN_F_USO4 | UL_TUN_F_USO6);
  int r;

  *got = 0;
  if (base == 0)
    return set_offload(fd, 0);
  if ((base & refuse) != 0) {
    r = -EINVAL;
  } else {
    r = set_offload(fd, base);
  }
  if (r == -EINVAL)
    return set_offload(fd, 0);
  if (r < 0)
    return r;
  *got = base;
  if (uso == 0 || (uso & refuse) != 0)
    return 0;
  if (set_offload(fd, base | uso) == 0)
    *got = base | uso;
  return 0;
}

/*
 * MTU of the interface behind a TUN fd (TUNGETIFF, then SIOCGIFMTU), or
 * -errno.
 */
int ul_tun_mtu(int fd)
{
  struct ifreq ifr;
  int s, err = 0;

  memset(&ifr, 0, sizeof(ifr));
  if (ioctl(fd, TUNGETIFF, &ifr) < 0)
    return -errno;
  s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -errno;
  if (ioctl(s, SIOCGIFMTU, &ifr) < 0)
    err = -errno;
  close(s);
  return err < 0 ? err : ifr.ifr_mtu;
}

int ul_tun_mtu_cached(int fd, struct ul_tun_mtu_cache *c, size_t longest)
{
  struct timespec now;
  int mtu;

  if (longest <= (size_t)c->mtu)
    return c->mtu;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec != c->checked) {
    c->checked = now.tv_sec;
    mtu = ul_tun_mtu(fd);
    c->mtu = mtu > 0 ? mtu : 0;
  }
  return c->mtu;
}

/*
 * Received TCP super-segments.
 *
 * A VXLAN GSO skb that crosses veth (the kernel vxlan device of a neighbour
 * in the same host, or a lab) reaches a plain UDP socket unsegmented: the
 * kernel only splits UDP_L4/fraglist GSO for sockets that did not ask for it
 * (udp_unexpected_gso), not SKB_GSO_UDP_TUNNEL. So a datagram may carry an
 * inner TCP packet of many MSS. Written to the TUN as is, it is larger than
 * the next hop's MTU and dropped. Instead we hand it to the kernel as a GSO
 * packet: the virtio-net header asks for TCP segmentation at
 * mss = mtu - IP header - TCP header (the size the sender's MSS was derived
 * from, as pod MTU = TUN MTU), with the TCP checksum left partial (the field
 * set to the pseudo-header sum over the whole length, as the kernel's TSO
 * path expects). TUN accepts GSO from user space whatever TUNSETOFFLOAD says.
 *
 * Returns 1 and overwrites *vh (and the TCP checksum field) when the packet
 * is an IPv4 or IPv6 (no extension headers) TCP packet longer than mtu;
 * 0 and leaves both alone otherwise. The header itself comes from
 * ul_tun_tcp_gso(), which receive coalescing (gro.c) uses too.
 */
#define VIRTIO_GSO_TCPV4 1
#define VIRTIO_GSO_TCPV6 4
#define VIRTIO_GSO_UDP_L4 5
#define VIRTIO_GSO_ECN 0x80
#define TCP_PROTO 6
#define UDP_PROTO 17

int ul_tun_tcp_gso(uint8_t *pkt, size_t l3, size_t thl, size_t len,
                   size_t gso_size, struct ul_vnet_hdr *vh)
{
  unsigned version = pkt[0] >> 4;
  /* pseudo header: addresses, protocol, TCP length; folded, not inverted */
  uint16_t partial = (uint16_t)~ul_csum_fold(ul_csum_pseudo(pkt, TCP_PROTO, len - l3));

  pkt[l3 + 16] = (uint8_t)(partial >> 8);
  pkt[l3 + 17] = (uint8_t)partial;

  memset(vh, 0, sizeof(*vh));
  vh->flags = UL_VNET_F_NEEDS_CSUM;
  vh->gso_type = version == 4 ? VIRTIO_GSO_TCPV4 : VIRTIO_GSO_TCPV6;
  if (pkt[l3 + 13] & 0x80) /* CWR: the kernel clears it after the first */
    vh->gso_type |= VIRTIO_GSO_ECN;
  vh->hdr_len = (uint16_t)(l3 + thl);
  vh->gso_size = (uint16_t)gso_size;
  vh->csum_start = (uint16_t)l3;
  vh->csum_offset = 16;
  return 1;
}

int ul_tun_udp_gso(uint8_t *pkt, size_t l3, size_t len, size_t gso_size,
                   struct ul_vnet_hdr *vh)
{
  uint16_t partial = (uint16_t)~ul_csum_fold(ul_csum_pseudo(pkt, UDP_PROTO, len - l3));

  pkt[l3 + 6] = (uint8_t)(partial >> 8);
  pkt[l3 + 7] = (uint8_t)partial;

  memset(vh, 0, sizeof(*vh));
  vh->flags = UL_VNET_F_NEEDS_CSUM;
  vh->gso_type = VIRTIO_GSO_UDP_L4;
  vh->hdr_len = (uint16_t)(l3 + 8);
  vh->gso_size = (uint16_t)gso_size;
  vh->csum_start = (uint16_t)l3;
  vh->csum_offset = 6;
  return 1;
}

/* The IP header length of pkt[0..len) (len >= 20) when it is an IPv4
 * packet that is not a fragment, or IPv6 without extension headers, and
 * carries proto; 0 otherwise. */
static size_t l3_carrying(const uint8_t *pkt, size_t len, unsigned proto)
{
  size_t l3;

  switch (pkt[0] >> 4) {
  case 4:
    l3 = (size_t)(pkt[0] & 0x0f) * 4;
    if (l3 < 20 || pkt[9] != proto ||
        (((pkt[6] << 8) | pkt[7]) & 0x3fff) != 0) /* MF or offset: fragment */
      return 0;
    return l3;
  case 6:
    return len >= 40 && pkt[6] == proto ? 40 : 0;
  default:
    return 0;
  }
}

int ul_tun_gso_for_rx(uint8_t *pkt, size_t len, int mtu, struct ul_vnet_hdr *vh)
{
  size_t l3, thl;

  if (mtu <= 0 || len <= (size_t)mtu || len > UL_MAX_PACKET || len < 20)
    return 0;
  if ((l3 = l3_carrying(pkt, len, TCP_PROTO)) == 0 || len < l3 + 20)
    return 0;
  thl = (size_t)(pkt[l3 + 12] >> 4) * 4;
  if (thl < 20 || l3 + thl >= len || (size_t)mtu <= l3 + thl)
    return 0;
  return ul_tun_tcp_gso(pkt, l3, thl, len, (size_t)mtu - l3 - thl, vh);
}

int ul_tun_udp_gso_for_rx(uint8_t *pkt, size_t len, int mtu, size_t gso_size,
                          struct ul_vnet_hdr *vh)
{
  size_t l3;

  if (len < 28 || gso_size == 0 || (l3 = l3_carrying(pkt, len, UDP_PROTO)) == 0 ||
      len <= l3 + 8 + gso_size)
    return 0; /* not UDP, or one datagram: as it is */
  if (mtu <= 0 || len > UL_MAX_PACKET ||
      ((size_t)pkt[l3 + 4] << 8 | pkt[l3 + 5]) != len - l3 || /* UDP length */
      l3 + 8 + gso_size > (size_t)mtu)
    return -1;
  if (!ul_csum_partial_travels(pkt, len, l3, 6))
    return -1; /* not what a GSO sender leaves: nothing proves these bytes */
  return ul_tun_udp_gso(pkt, l3, len, gso_size, vh);
}

/*
 * Writing a received batch (the rx path of both engines).
 *
 * The virtio-net header goes in its own iovec, so callers need no headroom
 * before the packets (the js engine's are dgram's Buffers). A super-packet's
 * followers contribute only their payloads; its members are at most the n
 * items of the batch, so WRITE_IOV_MAX iovecs always suffice.
 *
 * GSO writes that the kernel refuses. Some kernels (a 6.1/6.6 LTS range)
 * reject GSO writes to a TUN with EINVAL. ul_tun_writer_probe() writes one
 * small GSO packet at start (to 0.0.0.0 from 0.0.0.0: the stack drops it as
 * martian once the TUN has taken it), and a GSO write refused with EINVAL or
 * EIO at run time does the same: GSO writes are off for good (counted in
 * gso_refused), receive coalescing stops, and every packet that would have
 * gone as GSO (a coalesced run, a super-frame longer than the MTU) is cut
 * into segments in software (ul_tso_segment, segment.c) and written one by
 * one with complete checksums, the refused one included.
 *
 * UDP GSO writes (coalesced UDP runs, gro.c) are a second, separate switch:
 * the probe writes a UDP GSO packet too, and only when the TUN takes it are
 * UDP runs coalesced at all (TUN writes take VIRTIO_NET_HDR_GSO_UDP_L4
 * since Linux 6.2; before, the probe is refused and counted, and UDP goes
 * one datagram per write as before). A refusal at run time turns UDP GSO
 * writes off alone: TCP keeps its own.
 */
#define WRITE_BATCH_MAX 256
#define WRITE_IOV_MAX (WRITE_BATCH_MAX + 1)
#define SCRATCH_GATHER 0
#define SCRATCH_SEGMENT (UL_MAX_PACKET + 1)

int ul_tun_writer_init(struct ul_tun_writer *w, int fd)
{
  memset(w, 0, sizeof(*w));
  w->fd = fd;
  w->gso = 1;
  w->mtu = (struct ul_tun_mtu_cache)UL_TUN_MTU_CACHE_INIT;
  w->scratch = malloc(2 * (UL_MAX_PACKET + 1));
  return w->scratch == NULL ? -ENOMEM : 0;
}

void ul_tun_writer_free(struct ul_tun_writer *w)
{
  free(w->scratch);
  w->scratch = NULL;
}

static ssize_t write_iov(int fd, const struct iovec *iov, int cnt)
{
  ssize_t r;

  do
    r = writev(fd, iov, cnt);
  while (r < 0 && errno == EINTR);
  return r;
}

static bool gso_refused_errno(int err)
{
  return err == EINVAL || err == EIO;
}

/* A GSO write of [vh | iov[1..cnt)]: 0 or -errno; the test hook refuses. */
static int write_gso(struct ul_tun_writer *w, struct iovec *iov, int cnt)
{
  if (w->test_refuse_gso)
    return -EINVAL;
  return write_iov(w->fd, iov, cnt) < 0 ? -errno : 0;
}

/* Turn one kind of GSO write off for good: &w->gso or &w->uso. */
static void gso_off(struct ul_tun_writer *w, int *which)
{
  __atomic_store_n(which, 0, __ATOMIC_RELAXED); /* stats read it elsewhere */
  __atomic_store_n(&w->gso_refused, w->gso_refused + 1, __ATOMIC_RELAXED);
}

/* The software fallback: gather iov[1..cnt) (headers, then payloads) and
 * write it segment by segment. 0 or -errno of the first failed write. */
static int write_soft(struct ul_tun_writer *w, const struct ul_vnet_hdr *vh,
                      const struct iovec *iov, int cnt)
{
  uint8_t *pkt = w->scratch + SCRATCH_GATHER, *seg = w->scratch + SCRATCH_SEGMENT;
  struct ul_vnet_hdr none;
  struct ul_tso t;
  size_t len = 0;
  uint32_t i;
  int k;

  for (k = 1; k < cnt; k++) {
    if (len + iov[k].iov_len > UL_MAX_PACKET)
      return -EMSGSIZE;
    memcpy(pkt + len, iov[k].iov_base, iov[k].iov_len);
    len += iov[k].iov_len;
  }
  if (ul_tso_parse(pkt, len, vh, &t) != UL_OK)
    return -EINVAL;
  memset(&none, 0, sizeof(none));
  for (i = 0; i < t.nsegs; i++) {
    struct iovec out[2] = { { &none, UL_VNET_HDR_LEN }, { seg, 0 } };
    out[1].iov_len = ul_tso_segment(pkt, &t, i, seg);
    if (write_iov(w->fd, out, 2) < 0)
      return -errno;
    __atomic_store_n(&w->soft_segments, w->soft_segments + 1, __ATOMIC_RELAXED);
  }
  return 0;
}

/* A small GSO packet to 0.0.0.0 from 0.0.0.0 (the stack drops it as martian
 * once the TUN has taken it): two segments of 8 payload bytes, TCP or UDP. */
static int probe_write(struct ul_tun_writer *w, unsigned proto)
{
  uint8_t pkt[56] = { 0x45, 0, 0, 56, 0, 0, 0x40, 0, 64, (uint8_t)proto };
  size_t len = proto == TCP_PROTO ? 56 : 44;
  struct ul_vnet_hdr vh;
  struct iovec iov[2] = { { &vh, UL_VNET_HDR_LEN }, { pkt, len } };
  uint16_t c;

  pkt[3] = (uint8_t)len;
  c = ul_csum_fold(ul_csum_partial(pkt, 20, 0));
  pkt[10] = (uint8_t)(c >> 8);
  pkt[11] = (uint8_t)c;
  if (proto == TCP_PROTO) {
    pkt[20 + 12] = 0x50;
    pkt[20 + 13] = 0x10; /* ACK */
    ul_tun_tcp_gso(pkt, 20, 20, len, 8, &vh);
  } else {
    pkt[20 + 5] = (uint8_t)(len - 20); /* UDP length */
    ul_tun_udp_gso(pkt, 20, len, 8, &vh);
  }
  return write_gso(w, iov, 2);
}

int ul_tun_writer_probe(struct ul_tun_writer *w)
{
  int r = probe_write(w, TCP_PROTO), u;

  if (r != 0 && gso_refused_errno(-r))
    gso_off(w, &w->gso);
  u = probe_write(w, UDP_PROTO);
  if (u == 0)
    __atomic_store_n(&w->uso, 1, __ATOMIC_RELAXED);
  else if (gso_refused_errno(-u))
    gso_off(w, &w->uso);
  if (r == 0)
    return 1;
  return gso_refused_errno(-r) ? 0 : r;
}

/* Write the packet or super-packet led by items[lead]; 0 or -errno. */
static int write_leader(struct ul_tun_writer *w, const struct ul_gro_item *items,
                        uint32_t lead, int mtu)
{
  const struct ul_gro_item *it = &items[lead];
  struct iovec iov[WRITE_IOV_MAX];
  struct ul_vnet_hdr vh;
  uint32_t i;
  int k = 2, r, *on, udp;

  if (it->count >= 2) {
    vh = it->vh;
    for (i = it->next; i != UL_GRO_END && k < WRITE_IOV_MAX; i = items[i].next, k++) {
      iov[k].iov_base = items[i].pkt + vh.hdr_len;
      iov[k].iov_len = items[i].len - vh.hdr_len;
    }
  } else {
    memset(&vh, 0, sizeof(vh));
    ul_vnet_hdr_for_rx(it->pkt, it->len, &vh);
    if (it->gso_size > 0) {
      if (ul_tun_udp_gso_for_rx(it->pkt, it->len, mtu, it->gso_size, &vh) < 0) {
        errno = EINVAL; /* written whole, its datagrams would become one */
        return -EINVAL;
      }
    } else
      ul_tun_gso_for_rx(it->pkt, it->len, mtu, &vh); /* len > mtu only */
  }
  iov[0].iov_base = &vh;
  iov[0].iov_len = UL_VNET_HDR_LEN;
  iov[1].iov_base = it->pkt;
  iov[1].iov_len = it->len;
  if (vh.gso_type == 0)
    return write_iov(w->fd, iov, k) < 0 ? -errno : 0;
  udp = vh.gso_type == VIRTIO_GSO_UDP_L4;
  on = udp ? &w->uso : &w->gso;
  if (*on) {
    r = write_gso(w, iov, k);
    if (r == 0 && it->count >= 2) {
      __atomic_store_n(&w->runs[udp], w->runs[udp] + 1, __ATOMIC_RELAXED);
      __atomic_store_n(&w->run_packets[udp], w->run_packets[udp] + it->count, __ATOMIC_RELAXED);
    }
    if (r == 0 || !gso_refused_errno(-r))
      return r;
    gso_off(w, on);
  }
  return write_soft(w, &vh, iov, k);
}

uint32_t ul_tun_write_batch(struct ul_tun_writer *w, const struct ul_gro_item *items,
                            uint32_t n, int mtu, uint8_t *failed)
{
  uint32_t i, j, lost = 0;

  if (failed != NULL)
    memset(failed, 0, n);
  for (i = 0; i < n; i++) {
    if (items[i].pkt == NULL || items[i].count == 0)
      continue; /* absent, or a follower written with its leader */
    if (write_leader(w, items, i, mtu) == 0)
      continue;
    for (j = i; j != UL_GRO_END; j = items[j].next) {
      lost++;
      if (failed != NULL)
        failed[j] = 1;
    }
  }
  return lost;
}

uint32_t ul_tun_write_received(struct ul_tun_writer *w, struct ul_gro_item *items,
                               uint32_t n, uint8_t *failed)
{
  size_t longest = 0;
  uint32_t i;
  int mtu;

  for (i = 0; i < n; i++)
    if (items[i].pkt != NULL && items[i].len > longest)
      longest = items[i].len;
  mtu = ul_tun_mtu_cached(w->fd, &w->mtu, longest);
  ul_gro_batch(items, n, mtu, /* no GSO: nothing to coalesce for */
               (w->gso ? UL_GRO_TCP : 0) | (w->uso ? UL_GRO_UDP : 0));
  return ul_tun_write_batch(w, items, n, mtu, failed);
}
