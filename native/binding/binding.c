/*
 * N-API binding of the userlay C core (include/userlay.h).
 *
 * One thin layer: every function checks and converts its arguments, calls the
 * core and turns a negative errno into a JS Error whose `code` is the errno
 * name ("EPERM") and whose message reads "<op> <subject>: <strerror>". Bad
 * arguments throw a TypeError with code "EINVAL". The JS surface is declared
 * in src/dataplane/addon.ts; keep the two in step.
 *
 * Handles
 *   - FDB: an external (type-tagged) owning the table; the GC frees it.
 *   - Engine: an external owning the engine and a reference to the counters
 *     BigUint64Array the threads write into. engineDestroy stops and frees at
 *     once; the finalizer does the same when JS forgot to.
 *   - TunReader: a libuv poll on the TUN fd, on the JS thread's loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif

#include "userlay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>


/* ---- errors and argument helpers ---------------------------------------- */

#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok)                                                    \
      return NULL; /* an exception is pending */                              \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *op,
                              const char *subject)
{
  char msg[256];
  const char *name;

  if (err < 0)
    err = -err;
  name = strerrorname_np(err);
  snprintf(msg, sizeof(msg), "%s %s: %s", op, subject, strerror(err));
  napi_throw_error(env, name != NULL ? name : "EIO", msg);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *fn, const char *what)
{
  char msg[160];

  snprintf(msg, sizeof(msg), "%s: %s", fn, what);
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

static bool is_nullish(napi_env env, napi_value v)
{
  napi_valuetype t;

  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined ||
         t == napi_null;
}

/* Fetch up to `n` arguments (missing ones read as undefined) and `this`. */
static bool get_args(napi_env env, napi_callback_info info, size_t n,
                     napi_value *argv, napi_value *self)
{
  size_t argc = n;

  return napi_get_cb_info(env, info, &argc, argv, self, NULL) == napi_ok;
}

/* A string of at most cap - 1 UTF-8 bytes (longer ones are rejected, not
 * truncated). */
static bool arg_string(napi_env env, napi_value v, char *buf, size_t cap)
{
  size_t len;

  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok ||
      len >= cap)
    return false;
  return napi_get_value_string_utf8(env, v, buf, cap, &len) == napi_ok;
}

static bool arg_int(napi_env env, napi_value v, int64_t lo, int64_t hi,
                    int64_t *out)
{
  napi_valuetype t;
  double d;

  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok)
    return false;
  if (d != (double)(int64_t)d || d < (double)lo || d > (double)hi)
    return false;
  *out = (int64_t)d;
  return true;
}

static bool arg_bool(napi_env env, napi_value v, bool *out)
{
  if (is_nullish(env, v)) {
    *out = false;
    return true;
  }
  return napi_get_value_bool(env, v, out) == napi_ok;
}

/* A Uint8Array (Buffer included): its bytes and length. */
static bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len)
{
  napi_typedarray_type type;
  bool is_ta;
  void *p;

  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta)
    return false;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok ||
      type != napi_uint8_array)
    return false;
  *data = p;
  return true;
}

/* "198.18.0.1" or "fd00::1"; the family follows from the presence of ':'. */
static bool parse_addr(const char *s, struct ul_addr *a)
{
  memset(a, 0, sizeof(*a));
  a->family = strchr(s, ':') != NULL ? 6 : 4;
  return inet_pton(a->family == 6 ? AF_INET6 : AF_INET, s, a->bytes) == 1;
}

static bool arg_addr(napi_env env, napi_value v, char str[64],
                     struct ul_addr *a)
{
  return arg_string(env, v, str, 64) && parse_addr(str, a);
}

static napi_value make_int(napi_env env, int64_t v)
{
  napi_value out;

  CHECK(napi_create_int64(env, (int64_t)v, &out));
  return out;
}

static napi_value make_undefined(napi_env env)
{
  napi_value out;

  CHECK(napi_get_undefined(env, &out));
  return out;
}

static bool set_int(napi_env env, napi_value obj, const char *key, int64_t v)
{
  napi_value n;

  return napi_create_int64(env, v, &n) == napi_ok &&
         napi_set_named_property(env, obj, key, n) == napi_ok;
}

/* ---- system: TUN, UDP, netlink ------------------------------------------ */

static napi_value js_tun_open(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out, nv;
  char name[16], actual[16];
  bool vnet;
  int fd;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], name, sizeof(name)))
    return throw_type(env, "tunOpen", "name must be a string of < 16 bytes");
  if (!arg_bool(env, argv[1], &vnet))
    return throw_type(env, "tunOpen", "vnetHdr must be a boolean");
  fd = ul_tun_open(name, vnet, actual);
  if (fd < 0)
    return throw_errno(env, fd, "open /dev/net/tun for",
                       name[0] ? name : "(kernel-named TUN)");
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "fd", fd) ||
      napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &nv) != napi_ok ||
      napi_set_named_property(env, out, "name", nv) != napi_ok) {
    close(fd);
    return NULL;
  }
  return out;
}

static napi_value js_udp_open(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  char str[64], subject[80];
  struct ul_addr a;
  int64_t port;
  int fd;

  memset(&a, 0, sizeof(a));
  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_string(env, argv[0], str, sizeof(str)) ||
      (str[0] != '\0' && !parse_addr(str, &a)))
    return throw_type(env, "udpOpen", "address must be an IP string or \"\"");
  if (!arg_int(env, argv[1], 0, 65535, &port))
    return throw_type(env, "udpOpen", "port must be an integer 0..65535");
  fd = str[0] == '\0' ? ul_udp_open(4, NULL, (uint16_t)port)
                      : ul_udp_open(a.family, &a, (uint16_t)port);
  if (fd < 0) {
    snprintf(subject, sizeof(subject), a.family == 6 && str[0] ? "[%s]:%u" : "%s:%u",
             str[0] ? str : "0.0.0.0", (unsigned)port);
    return throw_errno(env, fd, "bind UDP", subject);
  }
  return make_int(env, fd);
}

static napi_value js_close(napi_env env, napi_callback_info info)
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

static napi_value js_link_index(napi_env env, napi_callback_info info)
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

static napi_value js_link_set(napi_env env, napi_callback_info info)
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

static napi_value js_link_del(napi_env env, napi_callback_info info)
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

static napi_value js_addr_add(napi_env env, napi_callback_info info)
{
  return addr_common(env, info, 1);
}

static napi_value js_addr_del(napi_env env, napi_callback_info info)
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

static napi_value js_route_add(napi_env env, napi_callback_info info)
{
  return route_common(env, info, 1);
}

static napi_value js_route_del(napi_env env, napi_callback_info info)
{
  return route_common(env, info, 0);
}

/* ---- FDB and codec ------------------------------------------------------- */

static const napi_type_tag fdb_tag = { 0x75736572666462ULL, 0x6c61792d66646231ULL };
static const napi_type_tag engine_tag = { 0x75736572656e67ULL, 0x6c61792d656e6731ULL };

/*
 * The table hands out peer pointers; JS speaks in snapshot peer indexes. The
 * handle keeps the snapshot's peers and a sorted pointer -> index map built
 * once from ul_fdb_peer_by_underlay (a peer's own underlay IP finds it).
 */
struct fdb_handle {
  struct ul_fdb *fdb;
  size_t n_peers;
  struct ul_fdb_peer *peers; /* copy of the snapshot's peer array */
  struct peer_ptr {
    const struct ul_fdb_peer *ptr;
    int32_t index;
  } *map; /* sorted by ptr */
  size_t n_map;
  int64_t mem; /* reported to the GC as external memory */
};

static int cmp_peer_ptr(const void *a, const void *b)
{
  const struct peer_ptr *x = a, *y = b;

  return x->ptr < y->ptr ? -1 : x->ptr > y->ptr;
}

static void fdb_handle_free(struct fdb_handle *h)
{
  if (h == NULL)
    return;
  ul_fdb_free(h->fdb);
  free(h->peers);
  free(h->map);
  free(h);
}

static void fdb_finalize(napi_env env, void *data, void *hint)
{
  struct fdb_handle *h = data;
  int64_t left;

  (void)hint;
  napi_adjust_external_memory(env, -h->mem, &left);
  fdb_handle_free(h);
}

#define HDR_SIZE sizeof(struct ul_fdb_snapshot_hdr)

static bool peer_equal(const struct ul_fdb_peer *p, const struct ul_fdb_peer *q)
{
  return q->family == p->family && q->port == p->port && q->slot == p->slot &&
         q->vni == p->vni && memcmp(q->ip, p->ip, 16) == 0 &&
         memcmp(q->mac, p->mac, 6) == 0;
}

static int fdb_handle_build(const uint8_t *snap, size_t len,
                            struct fdb_handle **out)
{
  uint32_t n;
  struct fdb_handle *h;
  size_t i;
  int r;

  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return -ENOMEM;
  r = ul_fdb_build(snap, len, &h->fdb);
  if (r < 0) {
    free(h);
    return r;
  }
  /* the build validated the sizes; the snapshot may be unaligned */
  memcpy(&n, snap + offsetof(struct ul_fdb_snapshot_hdr, n_peers), sizeof(n));
  h->n_peers = n;
  if (len < HDR_SIZE + h->n_peers * sizeof(struct ul_fdb_peer)) {
    fdb_handle_free(h);
    return -EINVAL;
  }
  h->peers = calloc(h->n_peers + 1, sizeof(*h->peers));
  h->map = calloc(h->n_peers + 1, sizeof(*h->map));
  if (h->peers == NULL || h->map == NULL) {
    fdb_handle_free(h);
    return -ENOMEM;
  }
  memcpy(h->peers, snap + HDR_SIZE, h->n_peers * sizeof(*h->peers));
  for (i = 0; i < h->n_peers; i++) {
    struct ul_addr a = { .family = h->peers[i].family };
    memcpy(a.bytes, h->peers[i].ip, 16);
    const struct ul_fdb_peer *p = ul_fdb_peer_by_underlay(h->fdb, &a);
    if (p != NULL && peer_equal(p, &h->peers[i])) {
      h->map[h->n_map].ptr = p;
      h->map[h->n_map].index = (int32_t)i;
      h->n_map++;
    }
  }
  qsort(h->map, h->n_map, sizeof(*h->map), cmp_peer_ptr);
  *out = h;
  return 0;
}

/* Snapshot index of a peer the table returned, -1 for NULL. */
static int32_t fdb_peer_index(const struct fdb_handle *h,
                              const struct ul_fdb_peer *p)
{
  struct peer_ptr key = { .ptr = p }, *hit;
  size_t i;

  if (p == NULL)
    return -1;
  hit = bsearch(&key, h->map, h->n_map, sizeof(*h->map), cmp_peer_ptr);
  if (hit != NULL)
    return hit->index;
  /* two peers sharing an underlay IP: fall back to comparing fields */
  for (i = 0; i < h->n_peers; i++) {
    if (peer_equal(p, &h->peers[i]))
      return (int32_t)i;
  }
  return -1;
}

static bool arg_fdb(napi_env env, napi_value v, struct fdb_handle **h)
{
  bool ok;

  if (napi_check_object_type_tag(env, v, &fdb_tag, &ok) != napi_ok || !ok)
    return false;
  return napi_get_value_external(env, v, (void **)h) == napi_ok;
}

static napi_value js_fdb_build(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  struct fdb_handle *h;
  uint8_t *snap;
  size_t len;
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &snap, &len))
    return throw_type(env, "fdbBuild", "snapshot must be a Uint8Array");
  r = fdb_handle_build(snap, len, &h);
  if (r < 0)
    return throw_errno(env, r, "build FDB from", "snapshot");
  if (napi_create_external(env, h, fdb_finalize, NULL, &out) != napi_ok) {
    fdb_handle_free(h);
    return NULL;
  }
  /* a table costs a few KiB plus about twice its snapshot; tell the GC, so
   * replaced tables do not pile up between collections */
  h->mem = 4096 + 2 * (int64_t)len;
  {
    int64_t total;
    napi_adjust_external_memory(env, h->mem, &total);
  }
  CHECK(napi_type_tag_object(env, out, &fdb_tag));
  return out;
}

/* fdbLookup / fdbPeerByUnderlay (fdb, address) -> peer index or -1 */
static napi_value fdb_query(napi_env env, napi_callback_info info, int by_underlay)
{
  const char *fn = by_underlay ? "fdbPeerByUnderlay" : "fdbLookup";
  napi_value argv[2];
  struct fdb_handle *h;
  struct ul_addr a;
  char str[64];

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_fdb(env, argv[0], &h))
    return throw_type(env, fn, "fdb must be a NativeFdb");
  if (!arg_addr(env, argv[1], str, &a))
    return throw_type(env, fn, "address must be an IPv4 or IPv6 string");
  return make_int(env, fdb_peer_index(h, by_underlay ? ul_fdb_peer_by_underlay(h->fdb, &a)
                                                     : ul_fdb_lookup(h->fdb, &a)));
}

static napi_value js_fdb_lookup(napi_env env, napi_callback_info info)
{
  return fdb_query(env, info, 0);
}

static napi_value js_fdb_peer_by_underlay(napi_env env, napi_callback_info info)
{
  return fdb_query(env, info, 1);
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
  unsigned b[6];
  char tail;
  int i;

  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
             &b[4], &b[5], &tail) != 6)
    return false;
  for (i = 0; i < 6; i++)
    mac[i] = (uint8_t)b[i];
  return true;
}

/* { mode: 'vxlan'|'udp', vni, mac } -> struct ul_codec_cfg */
static bool arg_codec(napi_env env, napi_value v, struct ul_codec_cfg *c)
{
  napi_value mode, vni, mac;
  char str[32];
  int64_t n;

  memset(c, 0, sizeof(*c));
  if (is_nullish(env, v) ||
      napi_get_named_property(env, v, "mode", &mode) != napi_ok ||
      napi_get_named_property(env, v, "vni", &vni) != napi_ok ||
      napi_get_named_property(env, v, "mac", &mac) != napi_ok)
    return false;
  if (!arg_string(env, mode, str, sizeof(str)))
    return false;
  if (strcmp(str, "vxlan") == 0)
    c->mode = UL_MODE_VXLAN;
  else if (strcmp(str, "udp") == 0)
    c->mode = UL_MODE_UDP;
  else
    return false;
  if (c->mode == UL_MODE_UDP && is_nullish(env, vni))
    n = 0;
  else if (!arg_int(env, vni, 0, 0xffffff, &n))
    return false;
  c->vni = (uint32_t)n;
  if (c->mode == UL_MODE_UDP) /* the MAC is not used */
    return true;
  return arg_string(env, mac, str, sizeof(str)) && parse_mac(str, c->mac);
}

static napi_value js_encap(napi_env env, napi_callback_info info)
{
  napi_value argv[5], out;
  struct ul_codec_cfg codec;
  struct ul_encap_result res;
  struct fdb_handle *h;
  int64_t off, len;
  uint8_t *buf;
  size_t cap;
  int r;

  if (!get_args(env, info, 5, argv, NULL))
    return NULL;
  if (!arg_codec(env, argv[0], &codec))
    return throw_type(env, "encap", "codec must be { mode: 'vxlan'|'udp', vni, mac }");
  if (!arg_fdb(env, argv[1], &h))
    return throw_type(env, "encap", "fdb must be a NativeFdb");
  if (!arg_bytes(env, argv[2], &buf, &cap))
    return throw_type(env, "encap", "buf must be a Uint8Array");
  if (!arg_int(env, argv[3], UL_VXLAN_ENCAP_LEN, (int64_t)cap, &off) ||
      !arg_int(env, argv[4], 0, (int64_t)cap - off, &len))
    return throw_type(env, "encap", "pktOff/pktLen outside buf or headroom < VXLAN_ENCAP_LEN");
  memset(&res, 0, sizeof(res));
  r = ul_encap(&codec, h->fdb, buf, (size_t)off, (size_t)len, &res);
  if (r != UL_OK)
    return make_int(env, r);
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "peer", fdb_peer_index(h, res.peer)) ||
      !set_int(env, out, "frameOff", (int64_t)res.frame_off) ||
      !set_int(env, out, "frameLen", (int64_t)res.frame_len))
    return NULL;
  return out;
}

static napi_value js_decap(napi_env env, napi_callback_info info)
{
  napi_value argv[5], out;
  struct ul_codec_cfg codec;
  struct ul_decap_result res;
  struct fdb_handle *h;
  struct ul_addr src;
  char str[64];
  int64_t len;
  uint8_t *buf;
  size_t cap;
  int r;

  if (!get_args(env, info, 5, argv, NULL))
    return NULL;
  if (!arg_codec(env, argv[0], &codec))
    return throw_type(env, "decap", "codec must be { mode: 'vxlan'|'udp', vni, mac }");
  if (!arg_fdb(env, argv[1], &h))
    return throw_type(env, "decap", "fdb must be a NativeFdb");
  if (!arg_bytes(env, argv[2], &buf, &cap))
    return throw_type(env, "decap", "buf must be a Uint8Array");
  if (!arg_int(env, argv[3], 0, (int64_t)cap, &len))
    return throw_type(env, "decap", "len must be an integer within buf");
  if (!arg_addr(env, argv[4], str, &src))
    return throw_type(env, "decap", "srcAddress must be an IPv4 or IPv6 string");
  memset(&res, 0, sizeof(res));
  r = ul_decap(&codec, h->fdb, buf, (size_t)len, &src, &res);
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "reason", r) ||
      !set_int(env, out, "peer", fdb_peer_index(h, res.peer)) ||
      !set_int(env, out, "pktOff", r == UL_OK ? (int64_t)res.pkt_off : 0) ||
      !set_int(env, out, "pktLen", r == UL_OK ? (int64_t)res.pkt_len : 0))
    return NULL;
  return out;
}

static napi_value js_vnet_hdr_for_rx(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  struct ul_vnet_hdr vh;
  int64_t off, len;
  uint8_t *pkt;
  void *data;
  size_t cap;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &pkt, &cap))
    return throw_type(env, "vnetHdrForRx", "pkt must be a Uint8Array");
  if (!arg_int(env, argv[1], 0, (int64_t)cap, &off) ||
      !arg_int(env, argv[2], 0, (int64_t)cap - off, &len))
    return throw_type(env, "vnetHdrForRx", "off/len outside pkt");
  memset(&vh, 0, sizeof(vh));
  ul_vnet_hdr_for_rx(pkt + off, (size_t)len, &vh);
  CHECK(napi_create_buffer_copy(env, UL_VNET_HDR_LEN, &vh, &data, &out));
  return out;
}

static napi_value js_icmp_unreach(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  uint8_t msg[1280], *orig;
  struct ul_addr src;
  char str[64];
  size_t len;
  void *data;
  int r;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &orig, &len))
    return throw_type(env, "icmpUnreach", "orig must be a Uint8Array");
  if (!arg_addr(env, argv[1], str, &src))
    return throw_type(env, "icmpUnreach", "src must be an IPv4 or IPv6 string");
  r = ul_icmp_unreach(orig, len, &src, msg, sizeof(msg));
  if (r < 0)
    return throw_errno(env, r, "build ICMP unreachable from", str);
  if (r == 0)
    CHECK(napi_get_null(env, &out));
  else
    CHECK(napi_create_buffer_copy(env, (size_t)r, msg, &data, &out));
  return out;
}

/* ---- TUN I/O for the js engine ------------------------------------------- */

/*
 * tunReader: a uv_poll_t on the JS thread's loop. Each readiness event reads
 * up to `batch` packets (EAGAIN ends the batch), applies their virtio-net
 * header and hands them to JS in one call, as Buffers laid out
 * [TX_HEADROOM bytes | IP packet] so encap can write the outer headers in
 * place. A read error other than EAGAIN/EINTR is reported once as
 * onPackets(null, err) and the poll stops; stop() is still needed to free it.
 *
 * Lifetime: the reader is shared by the uv handle (until its close callback)
 * and the JS stop() function (until its finalizer); the last one frees it.
 */
struct tun_reader {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int batch;
  int owners;       /* uv handle + JS stop function */
  bool polling;
  bool closing;     /* stop() was called */
  bool dispatching; /* inside the JS callback: defer the teardown */
  uint8_t *buf;     /* UL_BUF_SIZE, reused for every read */
};

static void reader_unref(struct tun_reader *r)
{
  if (--r->owners > 0)
    return;
  free(r->buf);
  free(r);
}

static void reader_on_close(uv_handle_t *h)
{
  reader_unref(h->data);
}

static void reader_teardown(struct tun_reader *r)
{
  napi_delete_reference(r->env, r->callback);
  napi_async_destroy(r->env, r->async);
  uv_close((uv_handle_t *)&r->poll, reader_on_close);
}

static void reader_close(struct tun_reader *r)
{
  if (r->closing)
    return;
  r->closing = true;
  if (r->polling)
    uv_poll_stop(&r->poll);
  r->polling = false;
  if (!r->dispatching) /* else reader_on_poll finishes after the callback */
    reader_teardown(r);
}

static void reader_fn_finalize(napi_env env, void *data, void *hint)
{
  (void)env;
  (void)hint;
  reader_unref(data);
}

/* Read one packet into r->buf: 1 = packet of *pkt_len bytes at
 * UL_TX_HEADROOM, 0 = skipped (runt, GSO), -errno (-EAGAIN: queue empty). */
static int reader_read_one(struct tun_reader *r, size_t *pkt_len)
{
  uint8_t *at = r->buf + UL_TX_HEADROOM - UL_VNET_HDR_LEN;
  struct ul_vnet_hdr vh;
  ssize_t n;

  for (;;) {
    n = read(r->fd, at, UL_BUF_SIZE - (UL_TX_HEADROOM - UL_VNET_HDR_LEN));
    if (n >= 0)
      break;
    if (errno != EINTR)
      return -errno;
  }
  if (n < UL_VNET_HDR_LEN)
    return 0; /* nothing usable: skip */
  memcpy(&vh, at, sizeof(vh));
  *pkt_len = (size_t)n - UL_VNET_HDR_LEN;
  if (ul_vnet_apply_tx(r->buf + UL_TX_HEADROOM, *pkt_len, &vh) != UL_OK)
    return 0; /* GSO or bad checksum offsets: drop */
  return 1;
}

static void reader_deliver(struct tun_reader *r, napi_value packets, int err)
{
  napi_env env = r->env;
  napi_value cb, recv, argv[2], result;
  napi_status st;
  int argc = 1;

  if (napi_get_reference_value(env, r->callback, &cb) != napi_ok || cb == NULL)
    return;
  napi_get_global(env, &recv); /* make_callback needs an object */
  if (err != 0) {
    char subject[24], msg[160];
    napi_value code, text;
    const char *name = strerrorname_np(err);
    snprintf(subject, sizeof(subject), "fd %d", r->fd);
    snprintf(msg, sizeof(msg), "read TUN %s: %s", subject, strerror(err));
    napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, code, text, &argv[1]);
    napi_get_null(env, &argv[0]);
    argc = 2;
  } else {
    argv[0] = packets;
  }
  r->dispatching = true;
  st = napi_make_callback(env, r->async, recv, cb, argc, argv, &result);
  r->dispatching = false;
  if (st == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex); /* 'uncaughtException', as for sockets */
  }
}

static void reader_on_poll(uv_poll_t *h, int status, int events)
{
  struct tun_reader *r = h->data;
  napi_handle_scope scope;
  napi_value packets = NULL;
  uint32_t count = 0;
  int i, err = 0;

  (void)events;
  if (r->closing)
    return;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok)
    return;
  if (status < 0) {
    err = -status;
    goto report;
  }
  if (napi_create_array(r->env, &packets) != napi_ok)
    goto out;
  for (i = 0; i < r->batch; i++) {
    napi_value b;
    size_t len = 0;
    void *data;
    int got = reader_read_one(r, &len);

    if (got == -EAGAIN || got == -EWOULDBLOCK)
      break;
    if (got < 0) {
      err = -got;
      break;
    }
    if (got == 0)
      continue;
    if (napi_create_buffer(r->env, UL_TX_HEADROOM + len, &data, &b) != napi_ok)
      goto out;
    memcpy((uint8_t *)data + UL_TX_HEADROOM, r->buf + UL_TX_HEADROOM, len);
    if (napi_set_element(r->env, packets, count++, b) != napi_ok)
      goto out;
  }
  if (count > 0)
    reader_deliver(r, packets, 0);
report:
  if (err != 0 && !r->closing) {
    uv_poll_stop(&r->poll);
    r->polling = false;
    reader_deliver(r, NULL, err);
  }
out:
  napi_close_handle_scope(r->env, scope);
  if (r->closing) /* stop() ran inside the callback */
    reader_teardown(r);
}

static napi_value js_reader_stop(napi_env env, napi_callback_info info)
{
  struct tun_reader *r;
  size_t argc = 0;

  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&r));
  reader_close(r);
  return make_undefined(env);
}

static napi_value js_tun_reader(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out, stop, name;
  struct tun_reader *r;
  napi_valuetype t;
  int64_t fd, batch;
  uv_loop_t *loop;
  int rc;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunReader", "fd must be a non-negative integer");
  if (!arg_int(env, argv[1], 1, 256, &batch))
    return throw_type(env, "tunReader", "batch must be an integer 1..256");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function)
    return throw_type(env, "tunReader", "onPackets must be a function");
  CHECK(napi_get_uv_event_loop(env, &loop));

  r = calloc(1, sizeof(*r));
  if (r == NULL || (r->buf = malloc(UL_BUF_SIZE)) == NULL) {
    free(r);
    return throw_errno(env, ENOMEM, "poll TUN", "reader");
  }
  r->env = env;
  r->fd = (int)fd;
  r->batch = (int)batch;
  rc = uv_poll_init(loop, &r->poll, r->fd);
  if (rc < 0) {
    char subject[24];
    free(r->buf);
    free(r);
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, -rc, "poll TUN", subject);
  }
  r->poll.data = r;
  r->owners = 1; /* the uv handle */
  if (napi_create_object(env, &out) != napi_ok ||
      napi_create_string_utf8(env, "userlay:tunReader", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_function(env, "stop", NAPI_AUTO_LENGTH, js_reader_stop, r, &stop) != napi_ok ||
      napi_set_named_property(env, out, "stop", stop) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->callback) != napi_ok) {
    r->closing = true;
    uv_close((uv_handle_t *)&r->poll, reader_on_close);
    return NULL;
  }
  if (napi_async_init(env, out, name, &r->async) != napi_ok) {
    r->closing = true;
    napi_delete_reference(env, r->callback);
    uv_close((uv_handle_t *)&r->poll, reader_on_close);
    return NULL;
  }
  if (napi_add_finalizer(env, stop, r, reader_fn_finalize, NULL, NULL) != napi_ok) {
    reader_close(r); /* the stop function must not outlive r: never returned */
    return NULL;
  }
  r->owners++; /* the stop function */
  rc = uv_poll_start(&r->poll, UV_READABLE, reader_on_poll);
  if (rc < 0) {
    char subject[24];
    reader_close(r);
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, -rc, "poll TUN", subject);
  }
  r->polling = true;
  return out;
}

/*
 * MTU of the TUN behind fd, cached per thread: re-read only when a packet
 * exceeds the cached value, at most once a second per fd. 0 = unknown (the
 * fd is not a TUN, e.g. in tests).
 */
static int tun_mtu_cached(int fd, size_t len)
{
  static __thread struct { int fd, mtu; time_t checked; } c = { -1, 0, 0 };
  time_t now;

  if (c.fd == fd && len <= (size_t)c.mtu)
    return c.mtu;
  now = time(NULL);
  if (c.fd != fd || now != c.checked) {
    int mtu = ul_tun_mtu(fd);
    c.fd = fd;
    c.mtu = mtu > 0 ? mtu : 0;
    c.checked = now;
  }
  return c.mtu;
}

/*
 * tunWrite(fd, pkt, off, len): writev([vnet hdr, packet]). A TCP packet
 * longer than the TUN MTU (a sender's super-segment, see tun.c) goes as GSO;
 * its TCP checksum field in `pkt` is then rewritten to the partial sum.
 */
static napi_value js_tun_write(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  struct ul_vnet_hdr vh;
  struct iovec iov[2];
  int64_t fd, off, len;
  uint8_t *pkt;
  size_t cap;
  ssize_t n;

  if (!get_args(env, info, 4, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunWrite", "fd must be a non-negative integer");
  if (!arg_bytes(env, argv[1], &pkt, &cap))
    return throw_type(env, "tunWrite", "pkt must be a Uint8Array");
  if (!arg_int(env, argv[2], 0, (int64_t)cap, &off) ||
      !arg_int(env, argv[3], 1, (int64_t)cap - off, &len))
    return throw_type(env, "tunWrite", "off/len outside pkt");
  memset(&vh, 0, sizeof(vh));
  ul_vnet_hdr_for_rx(pkt + off, (size_t)len, &vh);
  if (len > 576) /* a TCP super-segment larger than the MTU: let the kernel segment */
    ul_tun_gso_for_rx(pkt + off, (size_t)len, tun_mtu_cached((int)fd, (size_t)len), &vh);
  iov[0].iov_base = &vh;
  iov[0].iov_len = UL_VNET_HDR_LEN;
  iov[1].iov_base = pkt + off;
  iov[1].iov_len = (size_t)len;
  do
    n = writev((int)fd, iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    char subject[24];
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, errno, "write TUN", subject);
  }
  return make_undefined(env);
}

/* ---- native engine -------------------------------------------------------- */

/*
 * Engine handle. The counters array is referenced so the GC keeps its memory
 * alive while the threads write into it; destroy (or the finalizer) stops the
 * threads first, then drops the reference.
 */
struct engine_handle {
  struct ul_engine *engine; /* NULL once destroyed */
  napi_ref counters;
};

static void engine_handle_release(napi_env env, struct engine_handle *h)
{
  if (h->engine == NULL)
    return;
  ul_engine_destroy(h->engine); /* joins the threads */
  h->engine = NULL;
  napi_delete_reference(env, h->counters);
  h->counters = NULL;
}

static void engine_finalize(napi_env env, void *data, void *hint)
{
  (void)hint;
  engine_handle_release(env, data);
  free(data);
}

static bool arg_engine(napi_env env, napi_value v, struct engine_handle **h)
{
  bool ok;

  if (napi_check_object_type_tag(env, v, &engine_tag, &ok) != napi_ok || !ok)
    return false;
  return napi_get_value_external(env, v, (void **)h) == napi_ok;
}

/* Optional address property: absent/"" -> family 0. */
static bool prop_addr(napi_env env, napi_value obj, const char *key,
                      struct ul_addr *a)
{
  napi_value v;
  char str[64];

  memset(a, 0, sizeof(*a));
  if (napi_get_named_property(env, obj, key, &v) != napi_ok)
    return false;
  if (is_nullish(env, v))
    return true;
  if (!arg_string(env, v, str, sizeof(str)))
    return false;
  return str[0] == '\0' || parse_addr(str, a);
}

static bool prop_int(napi_env env, napi_value obj, const char *key,
                     int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
  napi_value v;

  if (napi_get_named_property(env, obj, key, &v) != napi_ok)
    return false;
  if (is_nullish(env, v) && dflt >= lo) {
    *out = dflt;
    return true;
  }
  return arg_int(env, v, lo, hi, out);
}

static napi_value js_engine_create(napi_env env, napi_callback_info info)
{
  napi_value argv[1], v, out;
  napi_typedarray_type type;
  struct ul_engine_cfg cfg;
  struct engine_handle *h;
  int64_t n;
  size_t len;
  void *data;
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (is_nullish(env, argv[0]))
    return throw_type(env, "engineCreate", "cfg must be an object");
  memset(&cfg, 0, sizeof(cfg));
  if (!prop_int(env, argv[0], "tunFd", 0, INT32_MAX, -1, &n))
    return throw_type(env, "engineCreate", "tunFd must be a non-negative integer");
  cfg.tun_fd = (int)n;
  if (!prop_int(env, argv[0], "udpFd", 0, INT32_MAX, -1, &n))
    return throw_type(env, "engineCreate", "udpFd must be a non-negative integer");
  cfg.udp_fd = (int)n;
  if (napi_get_named_property(env, argv[0], "codec", &v) != napi_ok ||
      !arg_codec(env, v, &cfg.codec))
    return throw_type(env, "engineCreate", "codec must be { mode: 'vxlan'|'udp', vni, mac }");
  if (!prop_addr(env, argv[0], "icmpSrc4", &cfg.icmp_src4) ||
      (cfg.icmp_src4.family != 0 && cfg.icmp_src4.family != 4))
    return throw_type(env, "engineCreate", "icmpSrc4 must be an IPv4 address");
  if (!prop_addr(env, argv[0], "icmpSrc6", &cfg.icmp_src6) ||
      (cfg.icmp_src6.family != 0 && cfg.icmp_src6.family != 6))
    return throw_type(env, "engineCreate", "icmpSrc6 must be an IPv6 address");
  if (!prop_int(env, argv[0], "maxSlot", 0, 0xffffff, -1, &n))
    return throw_type(env, "engineCreate", "maxSlot must be an integer >= 0");
  cfg.max_slot = (uint32_t)n;
  if (!prop_int(env, argv[0], "batch", 1, 256, 64, &n))
    return throw_type(env, "engineCreate", "batch must be an integer 1..256");
  cfg.batch = (uint32_t)n;
  if (napi_get_named_property(env, argv[0], "counters", &v) != napi_ok ||
      napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok ||
      type != napi_biguint64_array)
    return throw_type(env, "engineCreate", "counters must be a BigUint64Array");
  if (len < ((size_t)cfg.max_slot + 1) * UL_C_SLOT_WIDTH)
    return throw_type(env, "engineCreate", "counters shorter than (maxSlot + 1) * SLOT_WIDTH");
  cfg.counters = data;

  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return throw_errno(env, ENOMEM, "create", "engine");
  r = ul_engine_create(&cfg, &h->engine);
  if (r < 0) {
    free(h);
    return throw_errno(env, r, "create", "engine");
  }
  if (napi_create_reference(env, v, 1, &h->counters) != napi_ok) {
    ul_engine_destroy(h->engine);
    free(h);
    return NULL;
  }
  if (napi_create_external(env, h, engine_finalize, NULL, &out) != napi_ok) {
    engine_handle_release(env, h);
    free(h);
    return NULL;
  }
  CHECK(napi_type_tag_object(env, out, &engine_tag));
  return out;
}

/* The live engine of argv[0], or NULL with a TypeError pending. */
static struct ul_engine *engine_arg(napi_env env, napi_value v, const char *fn)
{
  struct engine_handle *h;

  if (!arg_engine(env, v, &h)) {
    throw_type(env, fn, "engine must be a NativeEngine");
    return NULL;
  }
  if (h->engine == NULL) {
    throw_type(env, fn, "engine was destroyed");
    return NULL;
  }
  return h->engine;
}

static napi_value js_engine_set_fdb(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  struct ul_engine *e;
  struct ul_fdb *fdb;
  uint8_t *snap;
  size_t len;
  int r;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if ((e = engine_arg(env, argv[0], "engineSetFdb")) == NULL)
    return NULL;
  if (!arg_bytes(env, argv[1], &snap, &len))
    return throw_type(env, "engineSetFdb", "snapshot must be a Uint8Array");
  r = ul_fdb_build(snap, len, &fdb);
  if (r < 0)
    return throw_errno(env, r, "build FDB from", "snapshot");
  ul_engine_set_fdb(e, fdb);
  return make_undefined(env);
}

static napi_value js_engine_start(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  struct ul_engine *e;
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if ((e = engine_arg(env, argv[0], "engineStart")) == NULL)
    return NULL;
  r = ul_engine_start(e);
  if (r < 0)
    return throw_errno(env, r, "start", "engine threads");
  return make_undefined(env);
}

static napi_value js_engine_stop(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  struct ul_engine *e;
  int r;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if ((e = engine_arg(env, argv[0], "engineStop")) == NULL)
    return NULL;
  r = ul_engine_stop(e);
  if (r < 0)
    return throw_errno(env, r, "stop", "engine threads");
  return make_undefined(env);
}

static napi_value js_engine_destroy(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  struct engine_handle *h;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_engine(env, argv[0], &h))
    return throw_type(env, "engineDestroy", "engine must be a NativeEngine");
  engine_handle_release(env, h); /* idempotent */
  return make_undefined(env);
}

/* ---- module -------------------------------------------------------------- */

static const struct {
  const char *name;
  int value;
} drop_names[] = {
  { "short", UL_DROP_SHORT },           { "bad_flags", UL_DROP_BAD_FLAGS },
  { "bad_vni", UL_DROP_BAD_VNI },       { "bad_mac", UL_DROP_BAD_MAC },
  { "malformed", UL_DROP_MALFORMED },   { "unknown_peer", UL_DROP_UNKNOWN_PEER },
  { "spoofed", UL_DROP_SPOOFED },       { "tun_write", UL_DROP_TUN_WRITE },
  { "no_route", UL_DROP_NO_ROUTE },     { "tx_malformed", UL_DROP_TX_MALFORMED },
  { "udp_send", UL_DROP_UDP_SEND },     { "tun_read", UL_DROP_TUN_READ },
  { "udp_recv", UL_DROP_UDP_RECV },
};

static napi_value make_constants(napi_env env)
{
  napi_value c, drops;
  size_t i;

  CHECK(napi_create_object(env, &c));
  CHECK(napi_create_object(env, &drops));
  if (!set_int(env, c, "VNET_HDR_LEN", UL_VNET_HDR_LEN) ||
      !set_int(env, c, "TX_HEADROOM", UL_TX_HEADROOM) ||
      !set_int(env, c, "RX_OFFSET", UL_RX_OFFSET) ||
      !set_int(env, c, "BUF_SIZE", UL_BUF_SIZE) ||
      !set_int(env, c, "VXLAN_ENCAP_LEN", UL_VXLAN_ENCAP_LEN) ||
      !set_int(env, c, "SLOT_WIDTH", UL_C_SLOT_WIDTH) ||
      !set_int(env, c, "DROP_COUNT", UL_DROP__COUNT) ||
      !set_int(env, c, "FDB_MAGIC", UL_FDB_MAGIC) ||
      !set_int(env, c, "FDB_HDR_SIZE", sizeof(struct ul_fdb_snapshot_hdr)) ||
      !set_int(env, c, "FDB_PEER_SIZE", sizeof(struct ul_fdb_peer)) ||
      !set_int(env, c, "FDB_ROUTE_SIZE", sizeof(struct ul_fdb_route)))
    return NULL;
  for (i = 0; i < sizeof(drop_names) / sizeof(drop_names[0]); i++)
    if (!set_int(env, drops, drop_names[i].name, drop_names[i].value))
      return NULL;
  CHECK(napi_object_freeze(env, drops));
  CHECK(napi_set_named_property(env, c, "drops", drops));
  CHECK(napi_object_freeze(env, c));
  return c;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
    { "tunOpen", js_tun_open },       { "udpOpen", js_udp_open },
    { "close", js_close },            { "linkIndex", js_link_index },
    { "linkSet", js_link_set },       { "linkDel", js_link_del },
    { "addrAdd", js_addr_add },       { "addrDel", js_addr_del },
    { "routeAdd", js_route_add },     { "routeDel", js_route_del },
    { "fdbBuild", js_fdb_build },     { "fdbLookup", js_fdb_lookup },
    { "fdbPeerByUnderlay", js_fdb_peer_by_underlay },
    { "encap", js_encap },            { "decap", js_decap },
    { "vnetHdrForRx", js_vnet_hdr_for_rx },
    { "icmpUnreach", js_icmp_unreach },
    { "tunReader", js_tun_reader },   { "tunWrite", js_tun_write },
    { "engineCreate", js_engine_create },
    { "engineSetFdb", js_engine_set_fdb },
    { "engineStart", js_engine_start },
    { "engineStop", js_engine_stop },
    { "engineDestroy", js_engine_destroy },
  };
  napi_value fn, constants;
  size_t i;

  for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn,
                               NULL, &fn));
    CHECK(napi_set_named_property(env, exports, fns[i].name, fn));
  }
  constants = make_constants(env);
  if (constants == NULL)
    return NULL;
  CHECK(napi_set_named_property(env, exports, "constants", constants));
  return exports;
}
