/*
 * TUN writes for the js engine: tunWrite (one packet, e.g. an ICMP error) and
 * tunWriteBatch — the native engine's receive write-out for packets that JS
 * received and decapsulated: coalesce (ul_gro_batch) and write
 * (ul_tun_write_received: with the GSO refusal fallback of tun.c), in
 * place in the callers' buffers. One writer per thread (the JS thread).
 */
#include "binding.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The TUN writer (ul_tun_writer: MTU cache, GSO writes on or off) of the fd
 * last written, one per thread (the JS thread in practice). NULL when out
 * of memory. A write to another fd, or fresh, starts a new writer.
 */
static struct ul_tun_writer *writer_for(int fd, bool fresh)
{
  static __thread struct ul_tun_writer *w;

  if (w != NULL && w->fd == fd && !fresh)
    return w;
  if (w == NULL) {
    if ((w = calloc(1, sizeof(*w))) == NULL)
      return NULL;
  } else {
    ul_tun_writer_free(w);
  }
  if (ul_tun_writer_init(w, fd) < 0) {
    free(w);
    w = NULL;
  }
  return w;
}

/*
 * tunWriterSetup(fd, probe, refuseGso): start the writer of fd afresh;
 * probe = write the GSO probe (offloads auto); refuseGso = test hook, every
 * GSO write counts as refused. Returns whether GSO writes are in use.
 */
napi_value js_tun_writer_setup(napi_env env, napi_callback_info info)
{
  struct ul_tun_writer *w;
  napi_value argv[3], out;
  bool probe, refuse;
  int64_t fd;

  if (!get_args(env, info, 3, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunWriterSetup", "fd must be a non-negative integer");
  if (napi_get_value_bool(env, argv[1], &probe) != napi_ok ||
      napi_get_value_bool(env, argv[2], &refuse) != napi_ok)
    return throw_type(env, "tunWriterSetup", "probe/refuseGso must be booleans");
  if ((w = writer_for((int)fd, true)) == NULL)
    return throw_errno(env, ENOMEM, "set up", "TUN writer");
  w->test_refuse_gso = refuse;
  if (probe)
    (void)ul_tun_writer_probe(w); /* refused: GSO off, counted */
  CHECK(napi_get_boolean(env, w->gso != 0, &out));
  return out;
}

/* tunWriterStats(fd): { gso, uso, gsoRefused, softSegments, tcpRuns,
 * tcpRunPackets, udpRuns, udpRunPackets } of fd's writer. */
napi_value js_tun_writer_stats(napi_env env, napi_callback_info info)
{
  struct ul_tun_writer *w;
  napi_value argv[1], out;
  int64_t fd;

  if (!get_args(env, info, 1, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunWriterStats", "fd must be a non-negative integer");
  if ((w = writer_for((int)fd, false)) == NULL)
    return throw_errno(env, ENOMEM, "set up", "TUN writer");
  CHECK(napi_create_object(env, &out));
  {
    napi_value b;
    CHECK(napi_get_boolean(env, w->gso != 0, &b));
    CHECK(napi_set_named_property(env, out, "gso", b));
    CHECK(napi_get_boolean(env, w->uso != 0, &b));
    CHECK(napi_set_named_property(env, out, "uso", b));
  }
  if (!set_int(env, out, "gsoRefused", (int64_t)w->gso_refused) ||
      !set_int(env, out, "softSegments", (int64_t)w->soft_segments) ||
      !set_int(env, out, "tcpRuns", (int64_t)w->runs[0]) ||
      !set_int(env, out, "tcpRunPackets", (int64_t)w->run_packets[0]) ||
      !set_int(env, out, "udpRuns", (int64_t)w->runs[1]) ||
      !set_int(env, out, "udpRunPackets", (int64_t)w->run_packets[1]))
    return NULL;
  return out;
}

/*
 * tunWrite(fd, pkt, off, len): one packet, written as ul_tun_write_batch
 * writes a packet that stands alone. A TCP packet longer than the TUN MTU (a
 * sender's super-segment, see tun.c) goes as GSO; its TCP checksum field in
 * `pkt` is then rewritten to the partial sum.
 */
napi_value js_tun_write(napi_env env, napi_callback_info info)
{
  struct ul_tun_writer *w;
  struct ul_gro_item item;
  napi_value argv[4];
  int64_t fd, off, len;
  uint8_t *pkt;
  size_t cap;

  if (!get_args(env, info, 4, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunWrite", "fd must be a non-negative integer");
  if (!arg_bytes(env, argv[1], &pkt, &cap))
    return throw_type(env, "tunWrite", "pkt must be a Uint8Array");
  if (!arg_int(env, argv[2], 0, (int64_t)cap, &off) ||
      !arg_int(env, argv[3], 1, (int64_t)cap - off, &len))
    return throw_type(env, "tunWrite", "off/len outside pkt");
  memset(&item, 0, sizeof(item));
  item.pkt = pkt + off;
  item.len = (size_t)len;
  item.count = 1;
  item.next = UL_GRO_END;
  if ((w = writer_for((int)fd, false)) == NULL)
    return throw_errno(env, ENOMEM, "set up", "TUN writer");
  if (ul_tun_write_batch(w, &item, 1, ul_tun_mtu_cached(w->fd, &w->mtu, item.len),
                         NULL) != 0) {
    char subject[24];
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, errno, "write TUN", subject);
  }
  return make_undefined(env);
}

/* Packets per tunWriteBatch call (ul_gro_batch's limit). */
#define WRITE_BATCH_MAX 256

/* A list of uint32: a Uint32Array or an array of numbers. */
struct u32_list {
  napi_env env;
  napi_value value;
  uint32_t *typed; /* the Uint32Array's elements when is_typed */
  bool is_typed;
  uint32_t len;
};

static bool u32_list_init(napi_env env, napi_value v, struct u32_list *l)
{
  napi_typedarray_type type;
  size_t len;
  void *data;
  bool is;

  l->env = env;
  l->value = v;
  l->typed = NULL;
  l->is_typed = napi_is_typedarray(env, v, &is) == napi_ok && is;
  if (l->is_typed) {
    if (napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok ||
        type != napi_uint32_array || len > UINT32_MAX)
      return false;
    l->typed = data;
    l->len = (uint32_t)len;
    return true;
  }
  return napi_is_array(env, v, &is) == napi_ok && is &&
         napi_get_array_length(env, v, &l->len) == napi_ok;
}

static bool u32_list_get(const struct u32_list *l, uint32_t i, int64_t *out)
{
  napi_value e;

  if (l->is_typed) {
    *out = l->typed[i];
    return true;
  }
  return napi_get_element(l->env, l->value, i, &e) == napi_ok &&
         arg_int(l->env, e, 0, UINT32_MAX, out);
}

static bool u32_list_clear(const struct u32_list *l, uint32_t i)
{
  napi_value zero;

  if (l->is_typed) {
    l->typed[i] = 0;
    return true;
  }
  return napi_create_uint32(l->env, 0, &zero) == napi_ok &&
         napi_set_element(l->env, l->value, i, zero) == napi_ok;
}

/*
 * tunWriteBatch(fd, bufs, offs, lens): packet i is bufs[i][offs[i],
 * offs[i] + lens[i]), at most WRITE_BATCH_MAX of them. In-order TCP segments
 * of one flow are coalesced (their headers rewritten in the buffers) and
 * every packet is written as the native engine's receive path writes it.
 * lens[i] becomes 0 for each packet whose write failed; returns how many
 * did.
 */
napi_value js_tun_write_batch(napi_env env, napi_callback_info info)
{
  static const char fn[] = "tunWriteBatch";
  struct ul_gro_item items[WRITE_BATCH_MAX];
  uint8_t failed[WRITE_BATCH_MAX];
  struct u32_list offs, lens;
  napi_value argv[4], buf;
  struct ul_tun_writer *w;
  uint32_t n, i, lost;
  int64_t fd;
  bool is;

  if (!get_args(env, info, 4, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, fn, "fd must be a non-negative integer");
  if (napi_is_array(env, argv[1], &is) != napi_ok || !is ||
      napi_get_array_length(env, argv[1], &n) != napi_ok || n > WRITE_BATCH_MAX)
    return throw_type(env, fn, "bufs must be an array of at most 256 Uint8Arrays");
  if (!u32_list_init(env, argv[2], &offs) || !u32_list_init(env, argv[3], &lens) ||
      offs.len < n || lens.len < n)
    return throw_type(env, fn, "offs/lens must be Uint32Arrays or arrays of numbers, an entry per buffer");
  memset(items, 0, n * sizeof(items[0]));
  for (i = 0; i < n; i++) {
    int64_t off, len;
    uint8_t *data;
    size_t cap;

    if (napi_get_element(env, argv[1], i, &buf) != napi_ok ||
        !arg_bytes(env, buf, &data, &cap))
      return throw_type(env, fn, "bufs must hold Uint8Arrays");
    if (!u32_list_get(&offs, i, &off) || !u32_list_get(&lens, i, &len) ||
        off > (int64_t)cap || len < 1 || len > (int64_t)cap - off)
      return throw_type(env, fn, "offs/lens outside a buffer");
    items[i].pkt = data + off;
    items[i].len = (size_t)len;
  }
  if ((w = writer_for((int)fd, false)) == NULL)
    return throw_errno(env, ENOMEM, "set up", "TUN writer");
  lost = ul_tun_write_received(w, items, n, failed);
  for (i = 0; lost > 0 && i < n; i++)
    if (failed[i] && !u32_list_clear(&lens, i))
      return NULL;
  return make_int(env, lost);
}
