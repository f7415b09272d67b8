/*
 * The native engine handle: a type-tagged external owning the engine and a
 * reference to the counters BigUint64Array its threads write into, so the GC
 * keeps that memory alive while they run. engineDestroy (or the finalizer,
 * when JS forgot) stops the threads first, then drops the reference.
 */
#include "binding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const napi_type_tag engine_tag = { 0x75736572656e67ULL, 0x6c61792d656e6731ULL };

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
  return arg_tagged(env, v, &engine_tag, (void **)h);
}

/* obj[key]: absent (n = 0) or an array of at most max non-negative fds. */
static bool prop_fds(napi_env env, napi_value obj, const char *key, uint32_t max,
                     int *fds, uint32_t *n)
{
  napi_value v, el;
  uint32_t k, len;
  int64_t fd;
  bool is;

  *n = 0;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok)
    return false;
  if (is_nullish(env, v))
    return true;
  if (napi_is_array(env, v, &is) != napi_ok || !is ||
      napi_get_array_length(env, v, &len) != napi_ok || len > max)
    return false;
  for (k = 0; k < len; k++) {
    if (napi_get_element(env, v, k, &el) != napi_ok || !arg_int(env, el, 0, INT32_MAX, &fd))
      return false;
    fds[k] = (int)fd;
  }
  *n = len;
  return true;
}

napi_value js_engine_create(napi_env env, napi_callback_info info)
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
  cfg.udp[0].udp_fd = (int)n;
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
  if (!prop_fds(env, argv[0], "txFds", UL_TX_FDS_MAX, cfg.udp[0].tx_fds, &cfg.udp[0].n_tx_fds))
    return throw_type(env, "engineCreate", "txFds must be an array of at most 64 non-negative fds");
  if (napi_get_named_property(env, argv[0], "queues", &v) != napi_ok)
    return NULL;
  cfg.threads = 1;
  if (!is_nullish(env, v)) {
    uint32_t k, len32;
    bool is;
    if (napi_is_array(env, v, &is) != napi_ok || !is ||
        napi_get_array_length(env, v, &len32) != napi_ok || len32 > UL_THREADS_MAX - 1)
      return throw_type(env, "engineCreate", "queues must be an array of at most 7 { tunFd, udpFd }");
    for (k = 0; k < len32; k++) {
      napi_value el;
      int64_t t, u;
      if (napi_get_element(env, v, k, &el) != napi_ok || is_nullish(env, el) ||
          !prop_int(env, el, "tunFd", 0, INT32_MAX, -1, &t) ||
          !prop_int(env, el, "udpFd", 0, INT32_MAX, -1, &u) || t < 0 || u < 0)
        return throw_type(env, "engineCreate", "queues[] must be { tunFd, udpFd } of non-negative integers");
      cfg.tun_fds[k + 1] = (int)t;
      cfg.udp[0].udp_fds[k + 1] = (int)u;
    }
    cfg.threads = 1 + len32;
  }
  cfg.n_udp = 1;
  if (napi_get_named_property(env, argv[0], "otherFamily", &v) != napi_ok)
    return NULL;
  if (!is_nullish(env, v)) { /* dual stack: the sockets of the second family */
    struct ul_engine_udp *u = &cfg.udp[1];
    uint32_t nq;
    if (!prop_int(env, v, "udpFd", 0, INT32_MAX, -1, &n) || n < 0 ||
        !prop_fds(env, v, "txFds", UL_TX_FDS_MAX, u->tx_fds, &u->n_tx_fds) ||
        !prop_fds(env, v, "queueFds", UL_THREADS_MAX - 1, u->udp_fds + 1, &nq) ||
        nq != cfg.threads - 1)
      return throw_type(env, "engineCreate", "otherFamily must be { udpFd, txFds?, queueFds? } with one queueFd per extra queue");
    u->udp_fd = (int)n;
    cfg.n_udp = 2;
  }
  if (!prop_int(env, argv[0], "probeTunGso", 0, 1, 0, &n))
    return throw_type(env, "engineCreate", "probeTunGso must be 0/1 or absent");
  cfg.probe_tun_gso = (int)n;
  if (!prop_int(env, argv[0], "testRefuseTunGso", 0, 1, 0, &n))
    return throw_type(env, "engineCreate", "testRefuseTunGso must be 0/1 or absent");
  cfg.test_refuse_tun_gso = (int)n;
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

napi_value js_engine_set_fdb(napi_env env, napi_callback_info info)
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

napi_value js_engine_start(napi_env env, napi_callback_info info)
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

napi_value js_engine_stop(napi_env env, napi_callback_info info)
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

napi_value js_engine_destroy(napi_env env, napi_callback_info info)
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


/* engineStats(engine): the offload statistics (struct ul_engine_stats). */
napi_value js_engine_stats(napi_env env, napi_callback_info info)
{
  struct ul_engine_stats st;
  napi_value argv[1], out, b;
  struct ul_engine *e;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if ((e = engine_arg(env, argv[0], "engineStats")) == NULL)
    return NULL;
  ul_engine_stats(e, &st);
  CHECK(napi_create_object(env, &out));
  CHECK(napi_get_boolean(env, st.tun_gso != 0, &b));
  CHECK(napi_set_named_property(env, out, "tunGso", b));
  CHECK(napi_get_boolean(env, st.tun_uso != 0, &b));
  CHECK(napi_set_named_property(env, out, "tunUso", b));
  if (!set_int(env, out, "tsoPackets", (int64_t)st.tso_packets) ||
      !set_int(env, out, "tsoSegments", (int64_t)st.tso_segments) ||
      !set_int(env, out, "groBuffers", (int64_t)st.gro_buffers) ||
      !set_int(env, out, "groDatagrams", (int64_t)st.gro_datagrams) ||
      !set_int(env, out, "tunGsoRefused", (int64_t)st.tun_gso_refused) ||
      !set_int(env, out, "tunSoftSegments", (int64_t)st.tun_soft_segments) ||
      !set_int(env, out, "tunTcpRuns", (int64_t)st.tun_runs[0]) ||
      !set_int(env, out, "tunTcpRunPackets", (int64_t)st.tun_run_packets[0]) ||
      !set_int(env, out, "tunUdpRuns", (int64_t)st.tun_runs[1]) ||
      !set_int(env, out, "tunUdpRunPackets", (int64_t)st.tun_run_packets[1]) ||
      !set_int(env, out, "partialCsumPackets", (int64_t)st.partial_csum))
    return NULL;
  return out;
}
