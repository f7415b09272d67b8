/*
 * N-API binding of the userlay C core (include/userlay.h).
 *
 * One thin layer: every function checks and converts its arguments, calls the
 * core and turns a negative errno into a JS Error whose `code` is the errno
 * name ("EPERM") and whose message reads "<op> <subject>: <strerror>". Bad
 * arguments throw a TypeError with code "EINVAL". The JS surface is declared
 * in src/dataplane/addon.ts; keep the two in step. This file holds only the
 * module init: the constants and the function table (binding.h lists the
 * files behind it).
 *
 * Handles
 *   - FDB: an external (type-tagged) owning the table; the GC frees it.
 *   - Engine: an external owning the engine and a reference to the counters
 *     BigUint64Array the threads write into. engineDestroy stops and frees at
 *     once; the finalizer does the same when JS forgot to.
 *   - TunReader: a libuv poll on the TUN fd, on the JS thread's loop.
 */
#include "binding.h"

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
  { "udp_recv", UL_DROP_UDP_RECV },     { "too_big", UL_DROP_TOO_BIG },
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
      !set_int(env, c, "FDB_ROUTE_SIZE", sizeof(struct ul_fdb_route)) ||
      !set_int(env, c, "TUN_F_CSUM", UL_TUN_F_CSUM) ||
      !set_int(env, c, "TUN_F_TSO4", UL_TUN_F_TSO4) ||
      !set_int(env, c, "TUN_F_TSO6", UL_TUN_F_TSO6) ||
      !set_int(env, c, "TUN_F_USO4", UL_TUN_F_USO4) ||
      !set_int(env, c, "TUN_F_USO6", UL_TUN_F_USO6))
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
    { "tunOpenQueue", js_tun_open_queue }, { "udpOpenGroup", js_udp_open_group },
    { "close", js_close },            { "mallocTrim", js_malloc_trim },
    { "linkIndex", js_link_index },
    { "tunSetOffloads", js_tun_set_offloads }, { "udpSetGro", js_udp_set_gro },
    { "udpSetSegment", js_udp_set_segment }, { "udpOpenSender", js_udp_open_sender },
    { "linkName", js_link_name },     { "linkSet", js_link_set },       { "linkDel", js_link_del },
    { "addrAdd", js_addr_add },       { "addrDel", js_addr_del },
    { "routeAdd", js_route_add },     { "routeDel", js_route_del },
    { "routeList", js_route_list },
    { "fdbBuild", js_fdb_build },     { "fdbLookup", js_fdb_lookup },
    { "fdbPeerByUnderlay", js_fdb_peer_by_underlay },
    { "codecBuild", js_codec_build },
    { "encap", js_encap },            { "decap", js_decap },
    { "icmpError", js_icmp_error },
    { "tsoSplit", js_tso_split },
    { "groBatch", js_gro_batch },
    { "tunReader", js_tun_reader },   { "tunWrite", js_tun_write },
    { "tunWriteBatch", js_tun_write_batch },
    { "tunWriterSetup", js_tun_writer_setup }, { "tunWriterStats", js_tun_writer_stats },
    { "engineCreate", js_engine_create },
    { "engineSetFdb", js_engine_set_fdb },
    { "engineStart", js_engine_start },
    { "engineStop", js_engine_stop },
    { "engineDestroy", js_engine_destroy },
    { "engineStats", js_engine_stats },
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

