/*
 * NativeFdb and NativeCodec handles and the codec: lookup, encap/decap, the
 * virtio-net header for rx and ICMP unreachable.
 *
 * A NativeFdb is a type-tagged external owning one table; the GC frees it.
 * The table hands out peer pointers, JS speaks in snapshot peer indexes:
 * ul_fdb_peer_index converts.
 */
#include "binding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const napi_type_tag fdb_tag = { 0x75736572666462ULL, 0x6c61792d66646231ULL };

struct fdb_handle {
  struct ul_fdb *fdb;
  int64_t mem; /* reported to the GC as external memory */
};

static void fdb_finalize(napi_env env, void *data, void *hint)
{
  struct fdb_handle *h = data;
  int64_t left;

  (void)hint;
  napi_adjust_external_memory(env, -h->mem, &left);
  ul_fdb_free(h->fdb);
  free(h);
}

static bool arg_fdb(napi_env env, napi_value v, struct fdb_handle **h)
{
  return arg_tagged(env, v, &fdb_tag, (void **)h);
}

napi_value js_fdb_build(napi_env env, napi_callback_info info)
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
  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return throw_errno(env, ENOMEM, "build FDB from", "snapshot");
  r = ul_fdb_build(snap, len, &h->fdb);
  if (r < 0) {
    free(h);
    return throw_errno(env, r, "build FDB from", "snapshot");
  }
  /* a table costs a few KiB plus about twice its snapshot; tell the GC, so
   * replaced tables do not pile up between collections */
  h->mem = 4096 + 2 * (int64_t)len;
  if (napi_create_external(env, h, fdb_finalize, NULL, &out) != napi_ok) {
    ul_fdb_free(h->fdb);
    free(h);
    return NULL;
  }
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
  const struct ul_fdb_peer *p;
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
  p = by_underlay ? ul_fdb_peer_by_underlay(h->fdb, &a) : ul_fdb_lookup(h->fdb, &a);
  return make_int(env, ul_fdb_peer_index(h->fdb, p));
}

napi_value js_fdb_lookup(napi_env env, napi_callback_info info)
{
  return fdb_query(env, info, 0);
}

napi_value js_fdb_peer_by_underlay(napi_env env, napi_callback_info info)
{
  return fdb_query(env, info, 1);
}

/* A NativeCodec: the codec configuration parsed once (codecBuild), so the
 * per-packet calls below read no properties and parse no strings. */
static const napi_type_tag codec_tag = { 0x7573657263646563ULL, 0x6c61792d636f6431ULL };

static void codec_finalize(napi_env env, void *data, void *hint)
{
  (void)env;
  (void)hint;
  free(data);
}

static bool arg_native_codec(napi_env env, napi_value v, struct ul_codec_cfg **c)
{
  return arg_tagged(env, v, &codec_tag, (void **)c);
}

/* An Int32Array of at least n elements, the per-packet calls' results. */
static bool arg_results(napi_env env, napi_value v, size_t n, int32_t **out)
{
  napi_typedarray_type type;
  size_t len;
  bool is_ta;
  void *p;

  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &len, &p, NULL, NULL) != napi_ok ||
      type != napi_int32_array || len < n)
    return false;
  *out = p;
  return true;
}

napi_value js_codec_build(napi_env env, napi_callback_info info)
{
  struct ul_codec_cfg *c;
  napi_value argv[1], out;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return throw_errno(env, ENOMEM, "build", "codec");
  if (!arg_codec(env, argv[0], c)) {
    free(c);
    return throw_type(env, "codecBuild", "codec must be { mode: 'vxlan'|'udp', vni, mac }");
  }
  if (napi_create_external(env, c, codec_finalize, NULL, &out) != napi_ok) {
    free(c);
    return NULL;
  }
  CHECK(napi_type_tag_object(env, out, &codec_tag));
  return out;
}

/* encap(codec, fdb, buf, pktOff, pktLen, out) -> 0 or a drop reason;
 * out = [peer, frameOff, frameLen, peer MTU] (peer and MTU also for too_big) */
napi_value js_encap(napi_env env, napi_callback_info info)
{
  struct ul_codec_cfg *codec;
  struct ul_encap_result res;
  struct fdb_handle *h;
  napi_value argv[6];
  int64_t off, len;
  int32_t *out;
  uint8_t *buf;
  size_t cap;
  int r;

  if (!get_args(env, info, 6, argv, NULL))
    return NULL;
  if (!arg_native_codec(env, argv[0], &codec))
    return throw_type(env, "encap", "codec must be a NativeCodec");
  if (!arg_fdb(env, argv[1], &h))
    return throw_type(env, "encap", "fdb must be a NativeFdb");
  if (!arg_bytes(env, argv[2], &buf, &cap))
    return throw_type(env, "encap", "buf must be a Uint8Array");
  if (!arg_int(env, argv[3], UL_VXLAN_ENCAP_LEN, (int64_t)cap, &off) ||
      !arg_int(env, argv[4], 0, (int64_t)cap - off, &len))
    return throw_type(env, "encap", "pktOff/pktLen outside buf or headroom < VXLAN_ENCAP_LEN");
  if (!arg_results(env, argv[5], 4, &out))
    return throw_type(env, "encap", "out must be an Int32Array of 4 or more");
  memset(&res, 0, sizeof(res));
  r = ul_encap(codec, h->fdb, buf, (size_t)off, (size_t)len, &res);
  out[0] = ul_fdb_peer_index(h->fdb, res.peer);
  out[1] = r == UL_OK ? (int32_t)res.frame_off : 0;
  out[2] = r == UL_OK ? (int32_t)res.frame_len : 0;
  out[3] = res.peer != NULL ? (int32_t)res.peer->mtu : 0;
  return make_int(env, r);
}

/* decap(codec, fdb, buf, off, len, srcAddress, out) -> 0 or a drop reason for
 * the datagram buf[off, off+len); out = [peer (-1: unknown), pktOff (in buf),
 * pktLen, frameLen (0: unreadable)] */
napi_value js_decap(napi_env env, napi_callback_info info)
{
  struct ul_codec_cfg *codec;
  struct ul_decap_result res;
  struct fdb_handle *h;
  napi_value argv[7];
  struct ul_addr src;
  int64_t off, len;
  char str[64];
  int32_t *out;
  uint8_t *buf;
  size_t cap;
  int r;

  if (!get_args(env, info, 7, argv, NULL))
    return NULL;
  if (!arg_native_codec(env, argv[0], &codec))
    return throw_type(env, "decap", "codec must be a NativeCodec");
  if (!arg_fdb(env, argv[1], &h))
    return throw_type(env, "decap", "fdb must be a NativeFdb");
  if (!arg_bytes(env, argv[2], &buf, &cap))
    return throw_type(env, "decap", "buf must be a Uint8Array");
  if (!arg_int(env, argv[3], 0, (int64_t)cap, &off) ||
      !arg_int(env, argv[4], 0, (int64_t)cap - off, &len))
    return throw_type(env, "decap", "off/len outside buf");
  if (!arg_addr(env, argv[5], str, &src))
    return throw_type(env, "decap", "srcAddress must be an IPv4 or IPv6 string");
  if (!arg_results(env, argv[6], 4, &out))
    return throw_type(env, "decap", "out must be an Int32Array of 4 or more");
  memset(&res, 0, sizeof(res));
  r = ul_decap(codec, h->fdb, buf + off, (size_t)len, &src, &res);
  out[0] = ul_fdb_peer_index(h->fdb, res.peer);
  out[1] = r == UL_OK ? (int32_t)(off + (int64_t)res.pkt_off) : 0;
  out[2] = r == UL_OK ? (int32_t)res.pkt_len : 0;
  out[3] = (int32_t)res.frame_len;
  return make_int(env, r);
}

napi_value js_icmp_error(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  uint8_t msg[1280], *orig;
  struct ul_addr src;
  char str[64];
  int64_t mtu;
  size_t len;
  void *data;
  int r;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &orig, &len))
    return throw_type(env, "icmpError", "orig must be a Uint8Array");
  if (!arg_addr(env, argv[1], str, &src))
    return throw_type(env, "icmpError", "src must be an IPv4 or IPv6 string");
  if (!arg_int(env, argv[2], 0, UINT32_MAX, &mtu))
    return throw_type(env, "icmpError", "mtu must be an integer 0..2^32-1");
  r = ul_icmp_error(orig, len, &src, mtu == 0 ? UL_ICMP_NO_ROUTE : UL_ICMP_TOO_BIG,
                    (uint32_t)mtu, msg, sizeof(msg));
  if (r < 0)
    return throw_errno(env, r, "build ICMP error from", str);
  if (r == 0)
    CHECK(napi_get_null(env, &out));
  else
    CHECK(napi_create_buffer_copy(env, (size_t)r, msg, &data, &out));
  return out;
}

