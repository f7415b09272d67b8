/*
 * tunReader for the js engine: a uv_poll_t on the JS thread's loop. Each
 * readiness event reads up to `batch` packets (EAGAIN ends the batch) into
 * one scratch area, each at its own TX_HEADROOM, and applies their
 * virtio-net headers. The batch then crosses into JS as ONE Buffer (a single
 * copy and a single allocation per batch) of which each packet is a subarray
 * laid out [TX_HEADROOM bytes | IP packet], so encap can write the outer
 * headers in place. The packets of a batch share that Buffer's memory: it
 * lives until the last of them is collected. A read error other than
 * EAGAIN/EINTR is reported once as onPackets(null, err) and the poll stops;
 * stop() is still needed to free the reader.
 *
 * Lifetime: the reader is shared by the uv handle (until its close callback)
 * and the JS stop() function (until its finalizer); the last one frees it.
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

/* Scratch bytes per packet beyond the first: room for a 1500-byte MTU packet
 * and its headroom. A read always has UL_BUF_SIZE bytes of room, so larger
 * packets end the batch early instead of being truncated. */
#define READER_SLOT 2048

struct span {
  uint32_t off, len; /* of [TX_HEADROOM | packet] in the scratch area */
};

struct tun_reader {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int batch;
  int owners;         /* uv handle + JS stop function */
  bool polling;
  bool closing;       /* stop() was called */
  bool dispatching;   /* inside the JS callback: defer the teardown */
  uint8_t *scratch;   /* scratch_cap bytes, reused for every batch */
  size_t scratch_cap;
  struct span *spans; /* batch entries: where each packet of a batch lies */
};

static void reader_free(struct tun_reader *r)
{
  free(r->scratch);
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

/* Read one packet into slot (UL_BUF_SIZE bytes of room): 1 = packet of
 * *pkt_len bytes at slot + UL_TX_HEADROOM, 0 = skipped (runt, GSO), -errno
 * (-EAGAIN: queue empty). */
static int reader_read_one(struct tun_reader *r, uint8_t *slot, size_t *pkt_len)
{
  uint8_t *at = slot + UL_TX_HEADROOM - UL_VNET_HDR_LEN;
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
  if (ul_vnet_apply_tx(slot + UL_TX_HEADROOM, *pkt_len, &vh) != UL_OK)
    return 0; /* GSO or bad checksum offsets: drop */
  memset(slot, 0, UL_TX_HEADROOM); /* no stale bytes of older packets to JS */
  return 1;
}

/* Read up to r->batch packets into the scratch area, recording their spans.
 * Returns the number read; *used = scratch bytes in use, *err = the errno
 * that ended the batch (0 for EAGAIN or a full batch). */
static uint32_t reader_fill(struct tun_reader *r, size_t *used, int *err)
{
  uint32_t count = 0;
  size_t at = 0;
  int i;

  *err = 0;
  for (i = 0; i < r->batch && r->scratch_cap - at >= UL_BUF_SIZE; i++) {
    size_t len = 0;
    int got = reader_read_one(r, r->scratch + at, &len);

    if (got == -EAGAIN || got == -EWOULDBLOCK)
      break;
    if (got < 0) {
      *err = -got;
      break;
    }
    if (got == 0)
      continue;
    r->spans[count].off = (uint32_t)at;
    r->spans[count].len = (uint32_t)(UL_TX_HEADROOM + len);
    count++;
    at += (UL_TX_HEADROOM + len + 7) & ~(size_t)7;
  }
  *used = at;
  return count;
}

/* The JS array of the batch: one Buffer copied from the scratch area and one
 * subarray of it per packet. NULL with an exception pending on failure. */
static napi_value reader_packets(struct tun_reader *r, size_t used,
                                 uint32_t count)
{
  napi_env env = r->env;
  napi_value whole, subarray, packets, range[2], pkt;
  void *data;
  uint32_t i;

  CHECK(napi_create_buffer_copy(env, used, r->scratch, &data, &whole));
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
    count = reader_fill(r, &used, &err);
    if (count > 0) {
      packets = reader_packets(r, used, count);
      if (packets == NULL) { /* out of memory: no JS frame to throw into */
        napi_value ex;
        napi_get_and_clear_last_exception(r->env, &ex);
        napi_fatal_exception(r->env, ex);
        goto out;
      }
      reader_deliver(r, packets, 0);
    }
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

static napi_value js_reader_stop(napi_env env, napi_callback_info info)
{
  struct tun_reader *r;
  size_t argc = 0;

  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&r));
  reader_close(r);
  return make_undefined(env);
}

napi_value js_tun_reader(napi_env env, napi_callback_info info)
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
  if (r != NULL) {
    r->scratch_cap = UL_BUF_SIZE + (size_t)(batch - 1) * READER_SLOT;
    r->scratch = malloc(r->scratch_cap);
    r->spans = calloc((size_t)batch, sizeof(*r->spans));
  }
  if (r == NULL || r->scratch == NULL || r->spans == NULL) {
    if (r != NULL)
      reader_free(r);
    return throw_errno(env, ENOMEM, "poll TUN", "reader");
  }
  r->env = env;
  r->fd = (int)fd;
  r->batch = (int)batch;
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
