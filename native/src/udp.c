/*
 * Underlay UDP socket: non-blocking, close-on-exec, large buffers, bound to
 * the tunnel port.
 *
 * No SO_REUSEADDR/SO_REUSEPORT: a second agent on the same port must fail
 * with EADDRINUSE instead of silently sharing (and stealing) datagrams.
 */
#include "sockaddr.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

/* Socket buffer size asked for. Root may exceed net.core.{r,w}mem_max with
 * SO_*BUFFORCE; otherwise the kernel caps the plain option silently. */
#define UL_UDP_SOCKBUF (4 << 20)

static void raise_buffer(int fd, int force_opt, int opt)
{
  int size = UL_UDP_SOCKBUF;

  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) == 0)
    return;
  /* Not privileged: best effort, the kernel clamps to the sysctl maximum. */
  (void)setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

int ul_udp_open(int family, const struct ul_addr *addr, uint16_t port)
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

  raise_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  raise_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);

  if (af == AF_INET6) {
    /* One socket per family: an IPv6 socket never sees v4-mapped traffic,
     * so peers are always matched on their real family. */
    int on = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
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

/*
 * UDP GRO: the kernel may hand a run of datagrams from one sender as one
 * buffer, the segment size in a UDP_GRO cmsg (the receive path splits it,
 * ul_udp_gro_split). Linux >= 5.0; refused with ENOPROTOOPT before.
 */
int ul_udp_set_gro(int fd, int on)
{
  return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) < 0 ? -errno : 0;
}
