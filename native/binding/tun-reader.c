/*
 * tunReader for the js engine: a uv_poll_t on the JS thread's loop. Each
 * readiness event reads up to `batch` packets with ul_tun_read_batch (the
 * one TUN read path of both engines, native/src/tun-read.c: virtio-net
 * header, checksums, TSO/USO split, drop counters) into per-packet buffers.
 * The batch then crosses into JS as ONE Buffer (a single copy and a single
 * allocation per batch) of which each packet is a subarray laid out
 * [TX_HEADROOM zero bytes | IP packet], so encap can write the outer headers
 * in place. The packets of a batch share that Buffer's memory: it lives
 * until the last of them is collected. A read error other than EAGAIN/EINTR
 * is reported once as onPackets(null, err) and the poll stops; stop() is
 * still needed to free the reader. Drops (runts, bad headers, read errors)
 * are counted by the core in the totals slot of the optional counters
 * BigUint64Array, which the reader keeps referenced.
 *
 * Lifetime: the reader is shared by the uv handle (until its close callback)
 * and the JS stop() and stats() functions (until their finalizers); the
 * last one frees it.
 */
#include "binding.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

struct span {
  uint32_t off, len; /* of [TX_HEADROOM | packet] in the batch Buffer */
};

struct tun_reader {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref counters;  /* the counters BigUint64Array, or NULL */
  napi_async_context async;
  int fd;
  int batch;
  int owners;         /* uv handle + JS stop and stats functions */
  bool polling;
  bool closing;       /* stop() was called */
  bool dispatching;   /* inside the JS callback: defer the teardown */
  struct ul_tun_reader rd;
  struct ul_tun_pkt *pkts; /* batch buffers of UL_BUF_SIZE, reused */
  struct span *spans; /* batch entries: where each packet of a batch lies */
};

static void reader_free(struct tun_reader *r)
{
  int i;

  if (r->pkts != NULL)
    for (i = 0; i < r->batch; i++)
      free(r->pkts[i].buf);
  free(r->pkts);
  ul_tun_reader_free(&r->rd);
  free(r->spans);
  free(r);
}

static void reader_unref(struct tun_reader *r)
{
  if (--r->owners > 0)
    return;
  reader_free(r);
}

static void reader_on_close(uv_handle_t *h)
{
  reader_unref(h->data);
}

static void reader_teardown(struct tun_reader *r)
{
  napi_delete_reference(r->env, r->callback);
  if (r->counters != NULL)
    napi_delete_reference(r->env, r->counters);
  r->counters = NULL;
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

/* Read up to r->batch packets (ul_tun_read_batch) and record their spans in
 * the batch Buffer to come. Returns the number read; *used = bytes that
 * Buffer needs, *err = the errno that ended the batch (0 for EAGAIN or a
 * full batch). */
static uint32_t reader_fill(struct tun_reader *r, size_t *used, int *err)
{
  int n = ul_tun_read_batch(&r->rd, r->pkts, (uint32_t)r->batch), i;
  size_t at = 0;

  *err = n < 0 ? -n : 0;
  for (i = 0; i < n; i++) {
    r->spans[i].off = (uint32_t)at;
    r->spans[i].len = (uint32_t)(UL_TX_HEADROOM + r->pkts[i].len);
    at += (UL_TX_HEADROOM + r->pkts[i].len + 7) & ~(size_t)7;
  }
  *used = at;
  return n < 0 ? 0 : (uint32_t)n;
}

/* The JS array of the batch: one Buffer holding every packet (headroom
 * zeroed: no stale bytes to JS) and one subarray of it per packet. NULL with
 * an exception pending on failure. */
static napi_value reader_packets(struct tun_reader *r, size_t used,
                                 uint32_t count)
{
  napi_env env = r->env;
  napi_value whole, subarray, packets, range[2], pkt;
  uint8_t *data;
  uint32_t i;

  CHECK(napi_create_buffer(env, used, (void **)&data, &whole));
  for (i = 0; i < count; i++) {
    memset(data + r->spans[i].off, 0, UL_TX_HEADROOM);
    memcpy(data + r->spans[i].off + UL_TX_HEADROOM,
           r->pkts[i].buf + UL_TX_HEADROOM, r->pkts[i].len);
  }
  CHECK(napi_get_named_property(env, whole, "subarray", &subarray));
  CHECK(napi_create_array_with_length(env, count, &packets));
  for (i = 0; i < count; i++) {
    CHECK(napi_create_uint32(env, r->spans[i].off, &range[0]));
    CHECK(napi_create_uint32(env, r->spans[i].off + r->spans[i].len, &range[1]));
    CHECK(napi_call_function(env, whole, subarray, 2, range, &pkt));
    CHECK(napi_set_element(env, packets, i, pkt));
  }
  return packets;
}

static void reader_deliver(struct tun_reader *r, napi_value packets, int err)
{
  napi_env env = r->env;
  napi_value cb, recv, argv[2], result;
  napi_status st;
  char subject[24];
  int argc = 1;

  if (napi_get_reference_value(env, r->callback, &cb) != napi_ok || cb == NULL)
    return;
  napi_get_global(env, &recv); /* make_callback needs an object */
  if (err != 0) {
    snprintf(subject, sizeof(subject), "fd %d", r->fd);
    argv[1] = make_errno_error(env, err, "read TUN", subject);
    if (argv[1] == NULL)
      return;
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
  napi_value packets;
  uint32_t count;
  size_t used;
  int err;

  (void)events;
  if (r->closing)
    return;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok)
    return;
  if (status < 0) {
    err = -status;
  } else {
    /* the rest of a super-packet that did not fit the batch comes in the
     * next one at once: the TUN need not be readable for it */
    do {
      count = reader_fill(r, &used, &err);
      if (count == 0)
        break;
      packets = reader_packets(r, used, count);
      if (packets == NULL) { /* out of memory: no JS frame to throw into */
        napi_value ex;
        napi_get_and_clear_last_exception(r->env, &ex);
        napi_fatal_exception(r->env, ex);
        goto out;
      }
      reader_deliver(r, packets, 0);
    } while (err == 0 && !r->closing && ul_tun_reader_pending(&r->rd));
  }
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

/* stats(): { tsoPackets, tsoSegments } split by this reader so far. */
static napi_value js_reader_stats(napi_env env, napi_callback_info info)
{
  struct tun_reader *r;
  size_t argc = 0;
  napi_value out;

  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&r));
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "tsoPackets", (int64_t)r->rd.supers) ||
      !set_int(env, out, "tsoSegments", (int64_t)r->rd.segments))
    return NULL;
  return out;
}

static napi_value js_reader_stop(napi_env env, napi_callback_info info)
{
  struct tun_reader *r;
  size_t argc = 0;

  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&r));
  reader_close(r);
  return make_undefined(env);
}

/* tunReader(fd, batch, onPackets, counters?) */
napi_value js_tun_reader(napi_env env, napi_callback_info info)
{
  napi_value argv[4], out, stop, stats, name;
  napi_typedarray_type ctype;
  uint64_t *counters = NULL;
  struct tun_reader *r;
  napi_valuetype t;
  int64_t fd, batch;
  uv_loop_t *loop;
  size_t clen;
  void *cdata;
  int rc, i;

  if (!get_args(env, info, 4, argv, NULL))
    return NULL;
  if (!arg_int(env, argv[0], 0, INT32_MAX, &fd))
    return throw_type(env, "tunReader", "fd must be a non-negative integer");
  if (!arg_int(env, argv[1], 1, 256, &batch))
    return throw_type(env, "tunReader", "batch must be an integer 1..256");
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function)
    return throw_type(env, "tunReader", "onPackets must be a function");
  if (!is_nullish(env, argv[3])) {
    if (napi_get_typedarray_info(env, argv[3], &ctype, &clen, &cdata, NULL, NULL) != napi_ok ||
        ctype != napi_biguint64_array || clen < UL_C_SLOT_WIDTH)
      return throw_type(env, "tunReader", "counters must be a BigUint64Array of at least one slot");
    counters = cdata;
  }
  CHECK(napi_get_uv_event_loop(env, &loop));

  r = calloc(1, sizeof(*r));
  if (r != NULL) {
    r->batch = (int)batch;
    r->pkts = calloc((size_t)batch, sizeof(*r->pkts));
    r->spans = calloc((size_t)batch, sizeof(*r->spans));
    rc = ul_tun_reader_init(&r->rd, (int)fd, counters);
    for (i = 0; r->pkts != NULL && i < r->batch && rc == 0; i++)
      if ((r->pkts[i].buf = malloc(UL_BUF_SIZE)) == NULL)
        rc = -ENOMEM;
  }
  if (r == NULL || r->pkts == NULL || r->spans == NULL || rc < 0) {
    if (r != NULL)
      reader_free(r);
    return throw_errno(env, ENOMEM, "poll TUN", "reader");
  }
  r->env = env;
  r->fd = (int)fd;
  rc = uv_poll_init(loop, &r->poll, r->fd);
  if (rc < 0) {
    char subject[24];
    reader_free(r);
    snprintf(subject, sizeof(subject), "fd %d", (int)fd);
    return throw_errno(env, -rc, "poll TUN", subject);
  }
  r->poll.data = r;
  r->owners = 1; /* the uv handle */
  if (napi_create_object(env, &out) != napi_ok ||
      napi_create_string_utf8(env, "userlay:tunReader", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_function(env, "stop", NAPI_AUTO_LENGTH, js_reader_stop, r, &stop) != napi_ok ||
      napi_set_named_property(env, out, "stop", stop) != napi_ok ||
      napi_create_function(env, "stats", NAPI_AUTO_LENGTH, js_reader_stats, r, &stats) != napi_ok ||
      napi_set_named_property(env, out, "stats", stats) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->callback) != napi_ok ||
      (counters != NULL &&
       napi_create_reference(env, argv[3], 1, &r->counters) != napi_ok)) {
    r->closing = true;
    uv_close((uv_handle_t *)&r->poll, reader_on_close);
    return NULL;
  }
  if (napi_async_init(env, out, name, &r->async) != napi_ok) {
    r->closing = true;
    napi_delete_reference(env, r->callback);
    if (r->counters != NULL)
      napi_delete_reference(env, r->counters);
    uv_close((uv_handle_t *)&r->poll, reader_on_close);
    return NULL;
  }
  if (napi_add_finalizer(env, stop, r, reader_fn_finalize, NULL, NULL) != napi_ok) {
    reader_close(r); /* the stop function must not outlive r: never returned */
    return NULL;
  }
  r->owners++; /* the stop function */
  if (napi_add_finalizer(env, stats, r, reader_fn_finalize, NULL, NULL) != napi_ok) {
    reader_close(r); /* likewise for the stats function */
    return NULL;
  }
  r->owners++; /* the stats function */
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
