/*
 * System calls for the control side: open a TUN or a UDP socket, close an fd,
 * the netlink link/address/route operations (need CAP_NET_ADMIN), and
 * malloc_trim (the agent hands freed heap back after its initial Node list).
 */
#include "binding.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* tunOpen / tunOpenQueue(name, vnetHdr) -> { fd, name }: one conversion,
 * `open` is ul_tun_open or ul_tun_open_queue. */
static napi_value tun_open_common(napi_env env, napi_callback_info info,
                                  const char *fn, const char *what,
                                  int (*open)(const char *, int, char[16]))
{
  napi_value argv[2], out, nv;
  char name[16], actual[16];
  bool vnet;
  int fd;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], name, sizeof(name)))
    return throw_type(env, fn, "name must be a string of < 16 bytes");
  if (!arg_bool(env, argv[1], &vnet))
    return throw_type(env, fn, "vnetHdr must be a boolean");
  fd = open(name, vnet, actual);
  if (fd < 0)
    return throw_errno(env, fd, what, name[0] ? name : "(kernel-named TUN)");
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "fd", fd) ||
      napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &nv) != napi_ok ||
      napi_set_named_property(env, out, "name", nv) != napi_ok) {
    close(fd);
    return NULL;
  }
  return out;
}

napi_value js_tun_open(napi_env env, napi_callback_info info)
{
  return tun_open_common(env, info, "tunOpen", "open /dev/net/tun for", ul_tun_open);
}

napi_value js_tun_open_queue(napi_env env, napi_callback_info info)
{
  return tun_open_common(env, info, "tunOpenQueue", "open a multi-queue TUN queue for",
                         ul_tun_open_queue);
}

/* The address and port arguments of udpOpen / udpOpenGroup: an IP string
 * or "" (any IPv4 address), and 0..65535; udpOpenSender takes the address
 * only (port 0). Throws and returns 0 when bad. */
struct bind_args {
  char str[64];
  struct ul_addr a;
  int64_t port;
};

static int get_bind_addr(napi_env env, const char *fn, napi_value addr,
                         struct bind_args *b)
{
  memset(&b->a, 0, sizeof(b->a));
  b->port = 0;
  if (!arg_string(env, addr, b->str, sizeof(b->str)) ||
      (b->str[0] != '\0' && !parse_addr(b->str, &b->a))) {
    throw_type(env, fn, "address must be an IP string or \"\"");
    return 0;
  }
  return 1;
}

static int get_bind_args(napi_env env, const char *fn, napi_value addr,
                         napi_value port, struct bind_args *b)
{
  if (!get_bind_addr(env, fn, addr, b))
    return 0;
  if (!arg_int(env, port, 0, 65535, &b->port)) {
    throw_type(env, fn, "port must be an integer 0..65535");
    return 0;
  }
  return 1;
}

/* What a bind error names: "addr:port" ("[v6]:port"; "" is 0.0.0.0). */
static void bind_subject(const struct bind_args *b, char *out, size_t cap)
{
  snprintf(out, cap, b->a.family == 6 && b->str[0] ? "[%s]:%u" : "%s:%u",
           b->str[0] ? b->str : "0.0.0.0", (unsigned)b->port);
}

napi_value js_udp_open_group(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  char subject[80];
  struct bind_args b;
  int64_t n;
  int fds[UL_THREADS_MAX], r;
  unsigned i;

  if (!get_args(env, info, 3, argv, NULL) ||
      !get_bind_args(env, "udpOpenGroup", argv[0], argv[1], &b))
    return NULL;
  if (!arg_int(env, argv[2], 1, UL_THREADS_MAX, &n))
    return throw_type(env, "udpOpenGroup", "count must be an integer 1..8");
  r = b.str[0] == '\0' ? ul_udp_open_group(4, NULL, (uint16_t)b.port, fds, (unsigned)n)
                       : ul_udp_open_group(b.a.family, &b.a, (uint16_t)b.port, fds, (unsigned)n);
  if (r < 0) {
    bind_subject(&b, subject, sizeof(subject));
    return throw_errno(env, r, "bind UDP (SO_REUSEPORT group)", subject);
  }
  CHECK(napi_create_array_with_length(env, (size_t)n, &out));
  for (i = 0; i < (unsigned)n; i++) {
    napi_value v = make_int(env, fds[i]);
    if (v == NULL || napi_set_element(env, out, i, v) != napi_ok) {
      for (i = 0; i < (unsigned)n; i++)
        close(fds[i]);
      return NULL;
    }
  }
  return out;
}

/* udpOpen(address, port) and udpOpenSender(address): the fd. */
static napi_value udp_open_common(napi_env env, napi_callback_info info, bool sender)
{
  const char *fn = sender ? "udpOpenSender" : "udpOpen";
  napi_value argv[2];
  char subject[80];
  struct bind_args b;
  const struct ul_addr *addr;
  int family, fd;

  if (!get_args(env, info, sender ? 1 : 2, argv, NULL) ||
      !(sender ? get_bind_addr(env, fn, argv[0], &b)
               : get_bind_args(env, fn, argv[0], argv[1], &b)))
    return NULL;
  family = b.str[0] == '\0' ? 4 : b.a.family;
  addr = b.str[0] == '\0' ? NULL : &b.a;
  fd = sender ? ul_udp_open_sender(family, addr)
              : ul_udp_open(family, addr, (uint16_t)b.port);
  if (fd < 0) {
    bind_subject(&b, subject, sizeof(subject));
    return throw_errno(env, fd, sender ? "bind UDP (send only)" : "bind UDP", subject);
  }
  return make_int(env, fd);
}

napi_value js_udp_open(napi_env env, napi_callback_info info)
{
  return udp_open_common(env, info, false);
}

napi_value js_udp_open_sender(napi_env env, napi_callback_info info)
{
  return udp_open_common(env, info, true);
}

napi_value js_close(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  char subject[24];
  int64_t fd;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "close", "fd must be a non-negative integer");
  /* Linux releases the fd even when close() reports EINTR: never retry. */
  if (close((int)fd) < 0 && errno != EINTR) {
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, errno, "close", subject);
  }
  return make_undefined(env);
}

napi_value js_malloc_trim(napi_env env, napi_callback_info info)
{
  napi_value out;

  (void)info;
  /* glibc: returns free memory of every arena to the kernel (madvise), not only the top. */
  CHECK(napi_get_boolean(env, malloc_trim(0) != 0, &out));
  return out;
}

napi_value js_link_index(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  char ifname[16];
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], ifname, sizeof(ifname)))
    return throw_type(env, "linkIndex", "ifname must be a string of < 16 bytes");
  r = ul_nl_link_index(ifname);
  if (r < 0)
    return throw_errno(env, r, "link index", ifname);
  return make_int(env, r);
}

napi_value js_link_name(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  char ifname[IF_NAMESIZE];
  int64_t index;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 1, INT32_MAX, &index))
    return throw_type(env, "linkName", "ifindex must be a positive integer");
  if (if_indextoname((unsigned)index, ifname) != NULL)
    CHECK(napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &out));
  else if (errno == ENXIO) /* no such link */
    CHECK(napi_get_null(env, &out));
  else
    return throw_errno(env, -errno, "link name of index", "");
  return out;
}

napi_value js_link_set(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  char ifname[16];
  int64_t mtu;
  bool up;
  int r;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], ifname, sizeof(ifname)))
    return throw_type(env, "linkSet", "ifname must be a string of < 16 bytes");
  if (!arg_int(env, argv[1], INT32_MIN, INT32_MAX, &mtu))
    return throw_type(env, "linkSet", "mtu must be an integer");
  if (!arg_bool(env, argv[2], &up))
    return throw_type(env, "linkSet", "up must be a boolean");
  r = ul_nl_link_set(ifname, (int)mtu, up);
  if (r < 0)
    return throw_errno(env, r, "set link", ifname);
  return make_undefined(env);
}

napi_value js_link_del(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  char ifname[16];
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], ifname, sizeof(ifname)))
    return throw_type(env, "linkDel", "ifname must be a string of < 16 bytes");
  r = ul_nl_link_del(ifname);
  if (r < 0)
    return throw_errno(env, r, "delete link", ifname);
  return make_undefined(env);
}

/* addrAdd/addrDel(ifname, address, prefixLen) */
static napi_value addr_common(napi_env env, napi_callback_info info, int add)
{
  const char *fn = add ? "addrAdd" : "addrDel";
  napi_value argv[3];
  char ifname[16], str[64], subject[96];
  struct ul_addr a;
  int64_t plen;
  int r;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], ifname, sizeof(ifname)))
    return throw_type(env, fn, "ifname must be a string of < 16 bytes");
  if (!arg_addr(env, argv[1], str, &a))
    return throw_type(env, fn, "address must be an IPv4 or IPv6 string");
  if (!arg_int(env, argv[2], 0, a.family == 4 ? 32 : 128, &plen))
    return throw_type(env, fn, "prefixLen out of range for the family");
  r = ul_nl_addr(add, ifname, &a, (int)plen);
  if (r < 0) {
    snprintf(subject, sizeof(subject), "%s/%d on %s", str, (int)plen, ifname);
    return throw_errno(env, r, add ? "add address" : "delete address", subject);
  }
  return make_undefined(env);
}

napi_value js_addr_add(napi_env env, napi_callback_info info)
{
  return addr_common(env, info, 1);
}

napi_value js_addr_del(napi_env env, napi_callback_info info)
{
  return addr_common(env, info, 0);
}

/* routeAdd(ifname, dst, prefixLen, via?, onlink?) / routeDel(ifname, dst, prefixLen) */
static napi_value route_common(napi_env env, napi_callback_info info, int add)
{
  const char *fn = add ? "routeAdd" : "routeDel";
  napi_value argv[5];
  char ifname[16], str[64], vstr[64], subject[160];
  struct ul_addr dst, via;
  bool has_via, onlink = false;
  int64_t plen;
  int r;

  if (!get_args(env, info, 5, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], ifname, sizeof(ifname)))
    return throw_type(env, fn, "ifname must be a string of < 16 bytes");
  if (!arg_addr(env, argv[1], str, &dst))
    return throw_type(env, fn, "dst must be an IPv4 or IPv6 string");
  if (!arg_int(env, argv[2], 0, dst.family == 4 ? 32 : 128, &plen))
    return throw_type(env, fn, "prefixLen out of range for the family");
  has_via = add && !is_nullish(env, argv[3]);
  if (has_via && (!arg_addr(env, argv[3], vstr, &via) || via.family != dst.family))
    return throw_type(env, fn, "via must be an address of the dst's family");
  if (add && !arg_bool(env, argv[4], &onlink))
    return throw_type(env, fn, "onlink must be a boolean");
  r = ul_nl_route(add, ifname, &dst, (int)plen, has_via ? &via : NULL, onlink);
  if (r < 0) {
    snprintf(subject, sizeof(subject), "%s/%d%s%s dev %s", str, (int)plen,
             has_via ? " via " : "", has_via ? vstr : "", ifname);
    return throw_errno(env, r, add ? "add route" : "delete route", subject);
  }
  return make_undefined(env);
}

napi_value js_route_add(napi_env env, napi_callback_info info)
{
  return route_common(env, info, 1);
}

napi_value js_route_del(napi_env env, napi_callback_info info)
{
  return route_common(env, info, 0);
}

struct route_list {
  napi_env env;
  napi_value array;
  uint32_t n;
};

static bool set_addr(napi_env env, napi_value obj, const char *key,
                     const struct ul_addr *a)
{
  char text[INET6_ADDRSTRLEN];
  napi_value v;

  if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, text,
                sizeof(text)) == NULL)
    return false;
  return napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v) == napi_ok &&
         napi_set_named_property(env, obj, key, v) == napi_ok;
}

/* One dumped route -> { dst, prefixLen, via (absent: none), ifindex, protocol } */
static int route_list_add(const struct ul_route *r, void *ctx)
{
  struct route_list *l = ctx;
  napi_value obj;

  if (napi_create_object(l->env, &obj) != napi_ok ||
      !set_addr(l->env, obj, "dst", &r->dst) ||
      !set_int(l->env, obj, "prefixLen", r->prefix_len) ||
      (r->via.family != 0 && !set_addr(l->env, obj, "via", &r->via)) ||
      !set_int(l->env, obj, "ifindex", r->oif) ||
      !set_int(l->env, obj, "protocol", r->protocol) ||
      napi_set_element(l->env, l->array, l->n++, obj) != napi_ok)
    return -ENOMEM;
  return 0;
}

/* routeList(family, ifname | null, protocol): main-table unicast routes of
 * that family out of ifname (null: any) with that protocol (-1: any). */
napi_value js_route_list(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  char ifname[16] = "";
  struct route_list l = { .env = env, .n = 0 };
  int64_t family, protocol;
  int oif = 0, r;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 4, 6, &family) || (family != 4 && family != 6))
    return throw_type(env, "routeList", "family must be 4 or 6");
  if (!is_nullish(env, argv[1])) {
    if (!arg_string(env, argv[1], ifname, sizeof(ifname)))
      return throw_type(env, "routeList", "ifname must be null or a string of < 16 bytes");
    oif = ul_nl_link_index(ifname);
    if (oif < 0)
      return throw_errno(env, oif, "list routes of", ifname);
  }
  if (!arg_int(env, argv[2], -1, 255, &protocol))
    return throw_type(env, "routeList", "protocol must be -1..255");
  CHECK(napi_create_array(env, &l.array));
  r = ul_nl_route_dump((int)family, oif, (int)protocol, route_list_add, &l);
  if (r < 0) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
      return NULL;
    return throw_errno(env, r, "list routes of", ifname[0] ? ifname : "(any device)");
  }
  return l.array;
}


/* tunSetOffloads(fd, want, refuse): ul_tun_set_offloads; returns the flags
 * in force (refuse: flags to treat as refused, a test hook). */
napi_value js_tun_set_offloads(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  int64_t fd, want, refuse;
  char subject[24];
  unsigned got;
  int r;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunSetOffloads", "fd must be a non-negative integer");
  if (!arg_int(env, argv[1], 0, 0xff, &want) || !arg_int(env, argv[2], 0, 0xff, &refuse))
    return throw_type(env, "tunSetOffloads", "want/refuse must be flag masks 0..255");
  r = ul_tun_set_offloads((int)fd, (unsigned)want, (unsigned)refuse, &got);
  if (r < 0) {
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, r, "TUNSETOFFLOAD", subject);
  }
  return make_int(env, got);
}

/* udpSetGro(fd, on): ul_udp_set_gro; throws the errno (ENOPROTOOPT: old kernel). */
/* fn(fd, value): set the UDP socket option `opt` ("UDP_GRO") with set(fd,
 * value); value is a boolean when max is 1, else an integer 0..max. */
static napi_value udp_set_option(napi_env env, napi_callback_info info, const char *fn,
                                 const char *opt, int64_t max, int (*set)(int, int))
{
  napi_value argv[2];
  char op[32], subject[24];
  int64_t fd, v;
  bool on;
  int r;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, fn, "fd must be a non-negative integer");
  if (max == 1) {
    if (napi_get_value_bool(env, argv[1], &on) != napi_ok)
      return throw_type(env, fn, "on must be a boolean");
    v = on;
  } else if (!arg_int(env, argv[1], 0, max, &v)) {
    return throw_type(env, fn, "size must be an integer 0..65535");
  }
  r = set((int)fd, (int)v);
  if (r < 0) {
    snprintf(op, sizeof(op), "set %s on", opt);
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, r, op, subject);
  }
  return make_undefined(env);
}

napi_value js_udp_set_gro(napi_env env, napi_callback_info info)
{
  return udp_set_option(env, info, "udpSetGro", "UDP_GRO", 1, ul_udp_set_gro);
}

napi_value js_udp_set_segment(napi_env env, napi_callback_info info)
{
  return udp_set_option(env, info, "udpSetSegment", "UDP_SEGMENT", UINT16_MAX, ul_udp_set_segment);
}
