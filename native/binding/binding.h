/*
 * Private header of the N-API binding: the helpers every binding file uses
 * and the JS-callable functions binding.c registers.
 *
 *   binding.c   module init: constants and the function table
 *   errors.c    errno -> JS Error with `code`, TypeError for bad arguments
 *   args.c      argument conversion (ints, strings, bytes, addresses, codec)
 *   sys.c       TUN/UDP open, close, netlink link/addr/route
 *   codec.c     NativeFdb/NativeCodec handles, lookup, encap/decap, vnet header, ICMP
 *   tun-reader.c  tunReader (batched reads on the libuv loop)
 *   tun-write.c   tunWrite and tunWriteBatch (coalesced writes)
 *   engine.c    the native engine handle
 */
#ifndef USERLAY_BINDING_H
#define USERLAY_BINDING_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np; binding.gyp defines it too */
#endif
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif

#include "userlay.h"

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* Return NULL from a napi_value function when a napi call fails: an
 * exception is then pending. */
#define CHECK(call)                                                           \
  do {                                                                        \
    if ((call) != napi_ok)                                                    \
      return NULL;                                                            \
  } while (0)

/* ---- errors.c ------------------------------------------------------------ */

/* Throw Error "<op> <subject>: <strerror>" with code = errno name (err may be
 * negative). Returns NULL for `return throw_errno(...)`. */
napi_value throw_errno(napi_env env, int err, const char *op,
                       const char *subject);
/* Throw TypeError "<fn>: <what>" with code "EINVAL". Returns NULL. */
napi_value throw_type(napi_env env, const char *fn, const char *what);
/* The Error throw_errno would throw, as a value (NULL on failure). */
napi_value make_errno_error(napi_env env, int err, const char *op,
                            const char *subject);

/* ---- args.c -------------------------------------------------------------- */

bool is_nullish(napi_env env, napi_value v);
/* Up to n arguments (missing ones read as undefined) and `this`. */
bool get_args(napi_env env, napi_callback_info info, size_t n,
              napi_value *argv, napi_value *self);
/* A string of at most cap - 1 UTF-8 bytes (longer is rejected). */
bool arg_string(napi_env env, napi_value v, char *buf, size_t cap);
/* A JS number that is an integer within [lo, hi]. */
bool arg_int(napi_env env, napi_value v, int64_t lo, int64_t hi, int64_t *out);
/* A boolean; undefined/null read as false. */
bool arg_bool(napi_env env, napi_value v, bool *out);
/* An external made by this addon with type tag `tag`: its data. */
bool arg_tagged(napi_env env, napi_value v, const napi_type_tag *tag, void **data);
/* A Uint8Array (Buffer included): its bytes and length. */
bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len);
/* "198.18.0.1" or "fd00::1"; the family follows from the presence of ':'. */
bool parse_addr(const char *s, struct ul_addr *a);
/* An address string (kept in str for messages) and its parsed form. */
bool arg_addr(napi_env env, napi_value v, char str[64], struct ul_addr *a);
/* Optional address property: absent or "" gives family 0. */
bool prop_addr(napi_env env, napi_value obj, const char *key,
               struct ul_addr *a);
/* Integer property in [lo, hi]; absent gives dflt when dflt >= lo. */
bool prop_int(napi_env env, napi_value obj, const char *key, int64_t lo,
              int64_t hi, int64_t dflt, int64_t *out);
/* { mode: 'vxlan'|'udp', vni, mac } -> struct ul_codec_cfg */
bool arg_codec(napi_env env, napi_value v, struct ul_codec_cfg *c);
napi_value make_int(napi_env env, int64_t v);
napi_value make_undefined(napi_env env);
bool set_int(napi_env env, napi_value obj, const char *key, int64_t v);

/* ---- JS-callable functions ---------------------------------------------- */

/* sys.c */
napi_value js_tun_open(napi_env env, napi_callback_info info);
napi_value js_udp_open(napi_env env, napi_callback_info info);
napi_value js_udp_open_sender(napi_env env, napi_callback_info info);
napi_value js_tun_open_queue(napi_env env, napi_callback_info info);
napi_value js_udp_open_group(napi_env env, napi_callback_info info);
napi_value js_close(napi_env env, napi_callback_info info);
napi_value js_tun_set_offloads(napi_env env, napi_callback_info info);
napi_value js_udp_set_gro(napi_env env, napi_callback_info info);
napi_value js_udp_set_segment(napi_env env, napi_callback_info info);
napi_value js_malloc_trim(napi_env env, napi_callback_info info);
napi_value js_link_index(napi_env env, napi_callback_info info);
napi_value js_link_name(napi_env env, napi_callback_info info);
napi_value js_link_set(napi_env env, napi_callback_info info);
napi_value js_link_del(napi_env env, napi_callback_info info);
napi_value js_addr_add(napi_env env, napi_callback_info info);
napi_value js_addr_del(napi_env env, napi_callback_info info);
napi_value js_route_add(napi_env env, napi_callback_info info);
napi_value js_route_del(napi_env env, napi_callback_info info);
napi_value js_route_list(napi_env env, napi_callback_info info);

/* codec.c */
napi_value js_fdb_build(napi_env env, napi_callback_info info);
napi_value js_fdb_lookup(napi_env env, napi_callback_info info);
napi_value js_fdb_peer_by_underlay(napi_env env, napi_callback_info info);
napi_value js_codec_build(napi_env env, napi_callback_info info);
napi_value js_encap(napi_env env, napi_callback_info info);
napi_value js_decap(napi_env env, napi_callback_info info);
napi_value js_icmp_error(napi_env env, napi_callback_info info);
napi_value js_tso_split(napi_env env, napi_callback_info info);
napi_value js_gro_batch(napi_env env, napi_callback_info info);

/* tun-reader.c */
napi_value js_tun_reader(napi_env env, napi_callback_info info);

/* tun-write.c */
napi_value js_tun_write(napi_env env, napi_callback_info info);
napi_value js_tun_write_batch(napi_env env, napi_callback_info info);
napi_value js_tun_writer_setup(napi_env env, napi_callback_info info);
napi_value js_tun_writer_stats(napi_env env, napi_callback_info info);

/* engine.c */
napi_value js_engine_create(napi_env env, napi_callback_info info);
napi_value js_engine_set_fdb(napi_env env, napi_callback_info info);
napi_value js_engine_start(napi_env env, napi_callback_info info);
napi_value js_engine_stop(napi_env env, napi_callback_info info);
napi_value js_engine_destroy(napi_env env, napi_callback_info info);
napi_value js_engine_stats(napi_env env, napi_callback_info info);

#endif
