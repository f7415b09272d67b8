/*
 * rtnetlink: links, addresses and routes, without shelling out to ip(8).
 *
 * Every request carries NLM_F_ACK and a fresh sequence number; we read until
 * the NLMSG_ERROR that answers it and return its error (0 or -errno). One
 * short-lived NETLINK_ROUTE socket per call keeps the functions reentrant and
 * thread-agnostic; they act on the network namespace of the calling thread.
 *
 * IPv4 and IPv6 share one code path: the family only chooses AF_INET/AF_INET6
 * and the address length (4 or 16 bytes).
 *
 * Design notes
 *   - Routes are tagged with protocol UL_RTPROT (85, "userlay"), a value that
 *     neither linux/rtnetlink.h nor iproute2's rt_protos assigns, so an
 *     operator can list or flush them: `ip route show proto 85`. The kernel
 *     does not interpret protocols >= RTPROT_STATIC.
 *   - Routes are added exclusively (NLM_F_CREATE|NLM_F_EXCL, never
 *     NLM_F_REPLACE): a route for the same destination that someone else
 *     owns — the operator's, another agent's on another TUN — is never taken
 *     over. The kernel answers EEXIST and the caller says whose it is.
 *   - Deletes match destination, prefix, output interface *and* protocol
 *     UL_RTPROT, so only a route this program added is ever removed; the
 *     kernel compares the protocol on delete for IPv4 and IPv6 alike.
 *   - A route dump (RTM_GETROUTE, NLM_F_DUMP) is how a restarted agent finds
 *     the protocol-85 routes a crashed run left on a device that outlives
 *     it (the underlay's; a TUN's routes die with the TUN). The filter runs
 *     here, on every message, so callers see only the routes they asked for.
 *   - Addresses are added with NLM_F_REPLACE so a restarted agent succeeds on
 *     an address it set before. IPv6 addresses get IFA_F_NODAD: the address is
 *     ours by construction and must be usable at once.
 */
#include "userlay.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define NL_REQ_SIZE 512
#define NL_RECV_SIZE 8192

struct nl_req {
  struct nlmsghdr hdr;
  /* family-specific header and attributes follow, NLMSG_ALIGNed */
  uint8_t body[NL_REQ_SIZE];
};

static uint32_t nl_next_seq(void)
{
  static uint32_t seq;
  uint32_t s = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
  /* mix in the time so two processes' sockets are told apart in traces */
  return s ^ ((uint32_t)time(NULL) << 12);
}

static void *nl_init(struct nl_req *req, uint16_t type, uint16_t flags,
                     size_t hdrlen)
{
  memset(req, 0, sizeof(*req));
  req->hdr.nlmsg_len = NLMSG_LENGTH(hdrlen);
  req->hdr.nlmsg_type = type;
  req->hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  req->hdr.nlmsg_seq = nl_next_seq();
  return NLMSG_DATA(&req->hdr);
}

static int nl_put(struct nl_req *req, uint16_t type, const void *data,
                  size_t len)
{
  size_t off = NLMSG_ALIGN(req->hdr.nlmsg_len);
  struct rtattr *rta;

  if (off + RTA_SPACE(len) > sizeof(*req))
    return -EMSGSIZE;
  rta = (struct rtattr *)((uint8_t *)req + off);
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  req->hdr.nlmsg_len = off + RTA_SPACE(len);
  return 0;
}

static int nl_put_u32(struct nl_req *req, uint16_t type, uint32_t v)
{
  return nl_put(req, type, &v, sizeof(v));
}

/* Scan one received buffer for the ACK of `seq`. Returns 1 and sets *err
 * when found, 0 to keep reading. */
static int nl_find_ack(const uint8_t *buf, size_t len, uint32_t seq, int *err)
{
  const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
  size_t left = len;

  for (; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
      continue;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
      *err = -EPROTO;
      return 1;
    }
    *err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
    return 1;
  }
  return 0;
}

/* Send the request and wait for its ACK: 0 or -errno. */
static int nl_transact(struct nl_req *req)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  uint8_t buf[NL_RECV_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
  int fd, err = 0, one = 1;

  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return -errno;
  /* ACKs need not echo the whole request back */
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));

  if (sendto(fd, req, req->hdr.nlmsg_len, 0, (struct sockaddr *)&kernel,
             sizeof(kernel)) < 0) {
    err = -errno;
    goto out;
  }

  for (;;) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                         &fromlen);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = -errno;
      break;
    }
    if (from.nl_pid != 0) /* not from the kernel */
      continue;
    if (nl_find_ack(buf, (size_t)n, req->hdr.nlmsg_seq, &err))
      break;
  }
out:
  close(fd);
  return err;
}

static int family_af(uint8_t family, size_t *addrlen)
{
  if (family == 4) {
    *addrlen = 4;
    return AF_INET;
  }
  if (family == 6) {
    *addrlen = 16;
    return AF_INET6;
  }
  return -EAFNOSUPPORT;
}

int ul_nl_link_index(const char *ifname)
{
  unsigned idx;

  if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ)
    return -EINVAL;
  idx = if_nametoindex(ifname);
  if (idx == 0)
    return -errno;
  return (int)idx;
}

int ul_nl_link_set(const char *ifname, int mtu, int up)
{
  struct nl_req req;
  struct ifinfomsg *ifi;
  int idx = ul_nl_link_index(ifname);

  if (idx < 0)
    return idx;
  ifi = nl_init(&req, RTM_NEWLINK, 0, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = idx;
  ifi->ifi_flags = up ? IFF_UP : 0;
  ifi->ifi_change = IFF_UP;
  if (mtu > 0 && nl_put_u32(&req, IFLA_MTU, (uint32_t)mtu) < 0)
    return -EMSGSIZE;
  return nl_transact(&req);
}

int ul_nl_link_del(const char *ifname)
{
  struct nl_req req;
  struct ifinfomsg *ifi;
  int idx = ul_nl_link_index(ifname);

  if (idx < 0)
    return idx;
  ifi = nl_init(&req, RTM_DELLINK, 0, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = idx;
  return nl_transact(&req);
}

int ul_nl_addr(int add, const char *ifname, const struct ul_addr *addr,
               int prefix_len)
{
  struct nl_req req;
  struct ifaddrmsg *ifa;
  size_t alen;
  int af, idx;

  if (addr == NULL)
    return -EINVAL;
  af = family_af(addr->family, &alen);
  if (af < 0)
    return af;
  if (prefix_len < 0 || (size_t)prefix_len > alen * 8)
    return -EINVAL;
  idx = ul_nl_link_index(ifname);
  if (idx < 0)
    return idx;

  ifa = nl_init(&req, add ? RTM_NEWADDR : RTM_DELADDR,
                add ? NLM_F_CREATE | NLM_F_REPLACE : 0, sizeof(*ifa));
  ifa->ifa_family = (uint8_t)af;
  ifa->ifa_prefixlen = (uint8_t)prefix_len;
  ifa->ifa_flags = af == AF_INET6 ? IFA_F_NODAD : 0;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = (uint32_t)idx;
  if (nl_put(&req, IFA_LOCAL, addr->bytes, alen) < 0 ||
      nl_put(&req, IFA_ADDRESS, addr->bytes, alen) < 0)
    return -EMSGSIZE;
  return nl_transact(&req);
}

int ul_nl_route(int add, const char *ifname, const struct ul_addr *dst,
                int prefix_len, const struct ul_addr *via, int onlink)
{
  struct nl_req req;
  struct rtmsg *rtm;
  size_t alen;
  int af, idx;

  if (dst == NULL)
    return -EINVAL;
  af = family_af(dst->family, &alen);
  if (af < 0)
    return af;
  if (prefix_len < 0 || (size_t)prefix_len > alen * 8)
    return -EINVAL;
  if (via != NULL && via->family != dst->family)
    return -EINVAL;
  idx = ul_nl_link_index(ifname);
  if (idx < 0)
    return idx;

  rtm = nl_init(&req, add ? RTM_NEWROUTE : RTM_DELROUTE,
                add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(*rtm));
  rtm->rtm_family = (uint8_t)af;
  rtm->rtm_dst_len = (uint8_t)prefix_len;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = UL_RTPROT; /* add: our tag; delete: only ours match */
  rtm->rtm_type = RTN_UNICAST;
  if (add) {
    /* as ip(8): a directly connected IPv4 route has link scope; IPv6 routes
     * are always universe */
    rtm->rtm_scope = (via == NULL && af == AF_INET) ? RT_SCOPE_LINK
                                                   : RT_SCOPE_UNIVERSE;
    if (via != NULL && onlink)
      rtm->rtm_flags |= RTNH_F_ONLINK;
  } else {
    rtm->rtm_scope = RT_SCOPE_NOWHERE; /* any */
  }

  if (nl_put(&req, RTA_DST, dst->bytes, alen) < 0 ||
      nl_put_u32(&req, RTA_OIF, (uint32_t)idx) < 0)
    return -EMSGSIZE;
  if (add && via != NULL && nl_put(&req, RTA_GATEWAY, via->bytes, alen) < 0)
    return -EMSGSIZE;
  return nl_transact(&req);
}

/* Fill `r` from one RTM_NEWROUTE message; 0 when it is a main-table unicast
 * route of `af`, 1 to skip it. */
static int nl_parse_route(const struct nlmsghdr *h, int af, size_t alen,
                          struct ul_route *r)
{
  const struct rtmsg *rtm = NLMSG_DATA(h);
  const struct rtattr *rta;
  uint32_t table;
  int len;

  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)) || rtm->rtm_family != af ||
      rtm->rtm_type != RTN_UNICAST)
    return 1;
  memset(r, 0, sizeof(*r));
  r->dst.family = (uint8_t)(af == AF_INET ? 4 : 6);
  r->prefix_len = rtm->rtm_dst_len;
  r->protocol = rtm->rtm_protocol;
  table = rtm->rtm_table;
  len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rtm)));
  for (rta = RTM_RTA(rtm); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    size_t plen = RTA_PAYLOAD(rta);
    switch (rta->rta_type) {
    case RTA_DST:
      if (plen == alen)
        memcpy(r->dst.bytes, RTA_DATA(rta), alen);
      break;
    case RTA_GATEWAY:
      if (plen == alen) {
        r->via.family = r->dst.family;
        memcpy(r->via.bytes, RTA_DATA(rta), alen);
      }
      break;
    case RTA_OIF:
      if (plen == sizeof(uint32_t))
        r->oif = (int)*(const uint32_t *)RTA_DATA(rta);
      break;
    case RTA_TABLE:
      if (plen == sizeof(uint32_t))
        table = *(const uint32_t *)RTA_DATA(rta);
      break;
    default:
      break;
    }
  }
  return table == RT_TABLE_MAIN ? 0 : 1;
}

int ul_nl_route_dump(int family, int oif, int protocol, ul_route_fn fn,
                     void *ctx)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  uint8_t buf[NL_RECV_SIZE * 4] __attribute__((aligned(NLMSG_ALIGNTO)));
  struct nl_req req;
  struct rtmsg *rtm;
  size_t alen;
  int af, fd, err = 0, done = 0;

  if (fn == NULL)
    return -EINVAL;
  af = family_af((uint8_t)family, &alen);
  if (af < 0)
    return af;
  rtm = nl_init(&req, RTM_GETROUTE, NLM_F_DUMP, sizeof(*rtm));
  req.hdr.nlmsg_flags &= (uint16_t)~NLM_F_ACK; /* a dump ends with NLMSG_DONE */
  rtm->rtm_family = (uint8_t)af;
  rtm->rtm_table = RT_TABLE_MAIN;

  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return -errno;
  if (sendto(fd, &req, req.hdr.nlmsg_len, 0, (struct sockaddr *)&kernel,
             sizeof(kernel)) < 0) {
    err = -errno;
    goto out;
  }
  while (!done && err == 0) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof(from);
    const struct nlmsghdr *h;
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                         &fromlen);
    size_t left;

    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = -errno;
      break;
    }
    if (from.nl_pid != 0)
      continue;
    left = (size_t)n;
    for (h = (const struct nlmsghdr *)buf; NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      struct ul_route r;

      if (h->nlmsg_seq != req.hdr.nlmsg_seq)
        continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        err = h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))
                  ? ((const struct nlmsgerr *)NLMSG_DATA(h))->error
                  : -EPROTO;
        break;
      }
      if (h->nlmsg_type != RTM_NEWROUTE || nl_parse_route(h, af, alen, &r))
        continue;
      if ((oif != 0 && r.oif != oif) ||
          (protocol >= 0 && r.protocol != (uint8_t)protocol))
        continue;
      err = fn(&r, ctx);
      if (err != 0)
        break;
    }
  }
out:
  close(fd);
  return err;
}
