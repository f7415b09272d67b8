/*
 * Underlay UDP socket: non-blocking, close-on-exec, large buffers, bound to
 * the tunnel port.
 *
 * No SO_REUSEADDR: a second agent on the same port must fail with
 * EADDRINUSE instead of silently sharing (and stealing) datagrams.
 *
 * Design note, the receive group (--threads N > 1, ul_udp_open_group): N
 * sockets with SO_REUSEPORT on one port, one rx thread each, the kernel
 * picks the socket by a hash of the 4-tuple, so a peer's flow (one outer
 * source port per inner flow) stays on one thread. SO_REUSEPORT alone would
 * let a second agent (same uid, also asking for SO_REUSEPORT) join the group
 * and take a share of our datagrams. So the group is built under a guard:
 *   1. bind a plain socket G (no SO_REUSEPORT) to the port: EADDRINUSE if
 *      anything holds it, plain or group (a plain bind never joins);
 *   2. only now set SO_REUSEPORT on G. Linux checks the flag of the bound
 *      socket when a later socket binds (udp_lib_lport_inuse), so the N
 *      group sockets join G's group: nobody could bind the port between
 *      the proof and the group (no close/rebind window);
 *   3. close G: the group keeps the port.
 * Every userlay agent goes through step 1, so a second agent gets
 * EADDRINUSE as with one socket. What the guard cannot stop: a foreign
 * process of the same uid that sets SO_REUSEPORT itself can still join
 * (the kernel's rule for reuseport groups is "same effective uid"); a
 * classic-BPF steering program (SO_ATTACH_REUSEPORT_CBPF returning an
 * index < N) would keep such a joiner from receiving and is left for later.
 * If step 2 is refused by the kernel, G is closed before the group binds:
 * then a second agent could slip in between (a window of microseconds).
 * A datagram that arrives while G is in the group may land on G and is
 * lost when G closes (at start only; the peers' TCP or probes resend).
 * test-engine.c checks the kernel behaviour step 2 relies on.
 *
 * Design note, sockets that only send (ul_udp_open_sender): the native
 * engine's per-flow source ports and the js engine's GSO socket are bound
 * to the public address like the receive socket, so anyone on the underlay
 * can send to them, and nothing ever reads them. With the receive buffer of
 * the tunnel socket, each would hold 32 MiB of queued datagrams for good
 * (16 of them per family: 512 MiB, past net.ipv4.udp_mem on a small node,
 * after which the kernel drops UDP everywhere, the tunnel port and DNS
 * included). So a sender gets a classic-BPF filter that accepts nothing,
 * attached before bind: the kernel drops every datagram before it is
 * queued (counted in the socket's drops column of /proc/net/udp), and its
 * receive buffer is not raised. ICMP errors for sent datagrams are
 * not data and are not filtered; without IP_RECVERR an unconnected socket
 * ignores them anyway.
 */
#include "sockaddr.h"

#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

/* Socket buffer sizes asked for (the kernel doubles them for its overhead).
 * Root may exceed net.core.{r,w}mem_max with SO_*BUFFORCE; otherwise the
 * kernel caps the plain option silently.
 *
 * Receive: the queue must hold what arrives while the rx thread is not on a
 * CPU. At 4 MiB, four TCP streams overflowed it about 100 times a second
 * (UdpRcvbufErrors), each drop a whole UDP GRO buffer of up to 44 segments
 * lost and retransmitted (28,000 retransmits in 10 s); the queue peaked at
 * 9.6 MB once it could grow. At 16 MiB: no drops, 140-230 retransmits in 10 s
 * (bench/RESULTS.md). The kernel drops past it (userlay_udp_receive_drops_total).
 * Send: a full send buffer only makes the tx thread wait for POLLOUT; its
 * queue stayed under 64 KiB in the same runs. */
#define UL_UDP_RCVBUF (16 << 20)
#define UL_UDP_SNDBUF (4 << 20)

static void raise_buffer(int fd, int force_opt, int opt, int size)
{
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) == 0)
    return;
  /* Not privileged: best effort, the kernel clamps to the sysctl maximum. */
  (void)setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

enum {
  UDP_REUSEPORT = 1, /* join a SO_REUSEPORT group (ul_udp_open_group) */
  UDP_SEND_ONLY = 2, /* take in nothing (ul_udp_open_sender) */
};

/* Drop every datagram at the socket, before it is queued. */
static int refuse_input(int fd)
{
  struct sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog prog = { .len = 1, .filter = &none };

  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static int udp_open(int family, const struct ul_addr *addr, uint16_t port,
                    int flags)
{
  struct sockaddr_storage ss;
  socklen_t sslen;
  int fd, af;

  if (addr != NULL)
    family = addr->family;
  if (family != 4 && family != 6)
    return -EAFNOSUPPORT;
  af = family == 4 ? AF_INET : AF_INET6;

  sslen = ul_sockaddr_set(&ss, family, addr != NULL ? addr->bytes : NULL, port);

  fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;

  if ((flags & UDP_SEND_ONLY) != 0) {
    if (refuse_input(fd) < 0)
      goto fail;
  } else {
    raise_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, UL_UDP_RCVBUF);
  }
  raise_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, UL_UDP_SNDBUF);

  if (af == AF_INET6) {
    /* One socket per family: an IPv6 socket never sees v4-mapped traffic,
     * so peers are always matched on their real family. */
    int on = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
      goto fail;
  }

  if ((flags & UDP_REUSEPORT) != 0) {
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0)
      goto fail;
  }
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0)
    goto fail;
  return fd;

fail:
  {
    int err = errno;
    close(fd);
    return -err;
  }
}

int ul_udp_open(int family, const struct ul_addr *addr, uint16_t port)
{
  return udp_open(family, addr, port, 0);
}

static int ul_udp_open_reuse(int family, const struct ul_addr *addr, uint16_t port)
{
  return udp_open(family, addr, port, UDP_REUSEPORT);
}

int ul_udp_open_sender(int family, const struct ul_addr *addr)
{
  return udp_open(family, addr, 0, UDP_SEND_ONLY);
}

/*
 * UDP GRO: the kernel may hand a run of datagrams from one sender as one
 * buffer, the segment size in a UDP_GRO cmsg (the receive path splits it,
 * ul_udp_gro_split). Linux >= 5.0; refused with ENOPROTOOPT before.
 */
int ul_udp_set_gro(int fd, int on)
{
  return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) < 0 ? -errno : 0;
}

/*
 * UDP_SEGMENT as a socket option: every later send longer than `size` is cut
 * by the kernel into datagrams of `size` (the last shorter); 0 turns it off.
 * For senders that cannot pass the per-message cmsg (the js engine through
 * dgram). Linux >= 4.18; refused with ENOPROTOOPT before.
 */
int ul_udp_set_segment(int fd, int size)
{
  return setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &size, sizeof(size)) < 0 ? -errno : 0;
}

int ul_udp_open_group(int family, const struct ul_addr *addr, uint16_t port,
                      int *fds, unsigned n)
{
  int guard, on = 1, err = 0;
  unsigned i, made = 0;

  if (n < 1 || n > UL_THREADS_MAX || fds == NULL)
    return -EINVAL;
  guard = ul_udp_open(family, addr, port);
  if (guard < 0)
    return guard; /* -EADDRINUSE: the port is taken */
  if (port == 0) { /* the group shares the port the kernel gave the guard */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(guard, (struct sockaddr *)&ss, &len) < 0) {
      err = -errno;
      goto out;
    }
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  }
  if (setsockopt(guard, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) {
    close(guard);
    guard = -1;
  }
  for (; made < n; made++) {
    int fd = ul_udp_open_reuse(family, addr, port);
    if (fd < 0) {
      err = fd;
      break;
    }
    fds[made] = fd;
  }
out:
  if (guard >= 0)
    close(guard);
  if (err < 0) {
    for (i = 0; i < made; i++)
      close(fds[i]);
    return err;
  }
  return 0;
}
