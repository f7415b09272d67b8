/*
 * The software-segmentation and coalescing core, callable from JS for the
 * micro benchmarks (bench/micro.ts) and tests: a TSO/USO split of one
 * super-packet and the GRO grouping of a batch. Conversion only.
 */
#include "binding.h"

#include <errno.h>
#include <string.h>

/* tsoSplit(pkt, out): pkt = [virtio-net header | super-packet]; every
 * segment is written to out one after another (t.hdr_len + t.gso_size apart).
 * Returns the segment count; throws EINVAL for a packet ul_tso_parse refuses
 * and ENOSPC when out is too small. */
napi_value js_tso_split(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  struct ul_vnet_hdr vh;
  struct ul_tso t;
  uint8_t *pkt, *out;
  size_t len, cap, stride;
  uint32_t i;

  if (!get_args(env, info, 2, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &pkt, &len) || len < UL_VNET_HDR_LEN)
    return throw_type(env, "tsoSplit", "pkt must be a Uint8Array: virtio-net header + packet");
  if (!arg_bytes(env, argv[1], &out, &cap))
    return throw_type(env, "tsoSplit", "out must be a Uint8Array");
  memcpy(&vh, pkt, sizeof(vh));
  if (ul_tso_parse(pkt + UL_VNET_HDR_LEN, len - UL_VNET_HDR_LEN, &vh, &t) != UL_OK)
    return throw_errno(env, EINVAL, "split", "TSO packet");
  stride = t.hdr_len + t.gso_size;
  if ((size_t)t.nsegs * stride > cap)
    return throw_errno(env, ENOSPC, "split", "TSO packet");
  for (i = 0; i < t.nsegs; i++)
    (void)ul_tso_segment(pkt + UL_VNET_HDR_LEN, &t, i, out + (size_t)i * stride);
  return make_int(env, t.nsegs);
}

/* groBatch(buf, stride, n, mtu): n packets at buf + k * stride, each as
 * long as its IPv4/IPv6 header says, grouped by ul_gro_batch (which
 * rewrites the leaders' headers in place). Returns the number of packets
 * written to the TUN as separate writes (leaders). */
napi_value js_gro_batch(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  struct ul_gro_item items[256];
  int64_t stride, n, mtu;
  uint8_t *buf;
  size_t len;
  uint32_t k, leaders = 0;

  if (!get_args(env, info, 4, argv, NULL))
    return NULL;
  if (!arg_bytes(env, argv[0], &buf, &len))
    return throw_type(env, "groBatch", "buf must be a Uint8Array");
  if (!arg_int(env, argv[1], 40, 65535, &stride) || !arg_int(env, argv[2], 1, 256, &n) ||
      !arg_int(env, argv[3], 0, 65535, &mtu))
    return throw_type(env, "groBatch", "stride 40..65535, n 1..256, mtu 0..65535");
  if ((size_t)(stride * n) > len)
    return throw_errno(env, ENOSPC, "group", "GRO batch");
  memset(items, 0, (size_t)n * sizeof(items[0]));
  for (k = 0; k < (uint32_t)n; k++) {
    uint8_t *p = buf + (size_t)k * (size_t)stride;
    size_t ip_len = (p[0] >> 4) == 6 ? 40u + ((size_t)p[4] << 8 | p[5])
                                     : ((size_t)p[2] << 8 | p[3]);
    items[k].pkt = p;
    items[k].len = ip_len <= (size_t)stride ? ip_len : (size_t)stride;
  }
  ul_gro_batch(items, (uint32_t)n, (int)mtu, UL_GRO_TCP | UL_GRO_UDP);
  for (k = 0; k < (uint32_t)n; k++)
    leaders += items[k].count > 0;
  return make_int(env, leaders);
}
