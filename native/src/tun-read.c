/*
 * tun-read.c — the one TUN read path, shared by the native engine's tx
 * thread (engine-tx.c) and the js engine's reader (binding/tun-reader.c).
 *
 * Pipeline (ul_tun_read_batch, up to n packets):
 *   1. A super-packet left over from the last call is split on first
 *      (step 5), so a flow's segments keep their order.
 *   2. read() into the next caller buffer at UL_TX_HEADROOM - UL_VNET_HDR_LEN:
 *      [headroom | virtio_net_hdr | IP packet]. EINTR retries, EAGAIN ends
 *      the batch, another error is counted (UL_DROP_TUN_READ) and ends it.
 *   3. Shorter than the virtio-net header plus one byte: a runt, counted as
 *      UL_DROP_TX_MALFORMED (one rule for both engines: they disagreed).
 *   4. gso_type NONE: ul_vnet_apply_tx() finishes a NEEDS_CSUM checksum; bad
 *      offsets are UL_DROP_TX_MALFORMED. The packet stays where it was read.
 *      With leave_partial the checksum is left as it is and its place handed
 *      on (ul_tun_pkt.csum_start/csum_offset), as for the segments of step 5:
 *      the caller finishes it unless the peer takes it partial (csum.c).
 *   5. GSO (TSO4/TSO6/USO): ul_tso_parse() checks it (malformed: counted),
 *      then segment i goes into buffer k + i. When all segments fit in the
 *      buffers left, segments 1.. are written first and segment 0 last, in
 *      place. Otherwise the caller's buffer is exchanged with the reader's
 *      spare, which keeps the super-packet, and segments are written until
 *      the batch is full; the next call goes on (ul_tun_reader_pending: the
 *      caller must not wait for the TUN first, nothing may come).
 *      A segment is its headers and payload copied into its buffer, or with
 *      share_payload (and leave_partial) its headers only, the payload left
 *      where the super-packet lies (ul_tun_pkt.payload; segment 0 in place
 *      is whole anyway). A call that lent the spare so reads nothing more:
 *      exchanging the spare again would overwrite what it lent.
 *
 * Design notes
 *   - A segment with its own buffer and headroom keeps encapsulation in
 *     place; the send path groups segments into UDP_SEGMENT messages as any
 *     other datagram run, one iovec each, or two (headers, payload) for a
 *     shared one. Sharing needs the checksum to stay partial: a complete one
 *     is a pass over the payload, which the copy then rides along with
 *     (tx_checksum gathers first for a peer that needs it complete).
 *     Measured in one bench run (2 nodes, pairs of rows interleaved, median
 *     of 3 x 5 s, partial checksums between the userlay nodes): copying
 *     6.19 / 6.58 Gbit/s at 0.264 / 0.255 CPU s/Gbit, shared 7.29 / 7.27 at
 *     0.229 / 0.233 (+14% single stream, -11% CPU per Gbit). Before partial
 *     checksums the copy cost nothing beside the checksum pass and was kept
 *     (bench/RESULTS.md, "Throughput with offloads").
 *   - The exchange keeps every buffer a UL_BUF_SIZE malloc(): the set of
 *     buffers is constant, only who holds which changes.
 */
#include "userlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A statistic of the reader: one writer (the reading thread), any reader. */
static void stat_add(uint64_t *c, uint64_t v)
{
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static void count_drop0(struct ul_tun_reader *r, int reason)
{
  uint64_t *c;

  if (r->counters == NULL)
    return;
  c = &r->counters[UL_C_DROPS + reason];
  __atomic_fetch_add(c, 1, __ATOMIC_RELAXED); /* several readers may share it */
}

int ul_tun_reader_init(struct ul_tun_reader *r, int fd, uint64_t *counters)
{
  memset(r, 0, sizeof(*r));
  r->fd = fd;
  r->counters = counters;
  r->spare = malloc(UL_BUF_SIZE);
  return r->spare == NULL ? -ENOMEM : 0;
}

void ul_tun_reader_free(struct ul_tun_reader *r)
{
  free(r->spare);
  r->spare = NULL;
}

/* Where a segment of the super-packet in r->tso has its checksum, when the
 * split left it partial (r->leave_partial); else it is complete. The split
 * wrote the pseudo-header sum and the lengths itself, so the segment may
 * travel partial unless IPv6 extension headers sit before TCP/UDP (which a
 * receiver does not look behind: ul_csum_partial_travels). */
static void mark_partial(const struct ul_tun_reader *r, struct ul_tun_pkt *p)
{
  bool partial = r->tso.leave_partial;

  p->csum_start = partial ? (uint16_t)r->tso.l3 : 0;
  p->csum_offset = !partial ? 0 : r->tso.proto == 6 ? 16 : 6;
  p->csum_travels = partial && (r->tso.version == 4 || r->tso.l3 == 40);
}

/* Segment i of the super-packet at pkt into p, its payload copied, or with
 * share_payload left where it is (segment 0 split in place is whole then). */
static void emit(struct ul_tun_reader *r, const uint8_t *pkt, uint32_t i,
                 struct ul_tun_pkt *p)
{
  uint8_t *at = p->buf + UL_TX_HEADROOM;

  p->payload = NULL;
  p->payload_len = 0;
  if (r->share_payload && r->tso.leave_partial) {
    const uint8_t *payload;
    size_t plen;
    size_t h = ul_tso_segment_headers(pkt, &r->tso, i, at, &payload, &plen);
    if (payload == at + h) {
      p->len = h + plen;
    } else {
      p->len = h;
      p->payload = payload;
      p->payload_len = plen;
    }
  } else {
    p->len = ul_tso_segment(pkt, &r->tso, i, at);
  }
  mark_partial(r, p);
}

/* Segments of the pending super-packet into out[k..n); returns the new k. */
static uint32_t drain(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t k, uint32_t n)
{
  const uint8_t *pkt = r->spare + UL_TX_HEADROOM;

  for (; k < n && r->next_seg < r->tso.nsegs; k++, r->next_seg++) {
    emit(r, pkt, r->next_seg, &out[k]);
    if (out[k].payload != NULL)
      r->spare_lent = true;
    stat_add(&r->segments, 1);
  }
  return k;
}

/* Step 5 for the super-packet just read into out[k]; returns the new k. */
static uint32_t split(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t k, uint32_t n)
{
  uint8_t *pkt = out[k].buf + UL_TX_HEADROOM;
  uint32_t i;

  stat_add(&r->supers, 1);
  if (r->tso.nsegs <= n - k) {
    for (i = r->tso.nsegs; i-- > 0;)
      emit(r, pkt, i, &out[k + i]);
    stat_add(&r->segments, r->tso.nsegs);
    r->next_seg = r->tso.nsegs;
    return k + r->tso.nsegs;
  }
  {
    uint8_t *held = out[k].buf;
    out[k].buf = r->spare;
    r->spare = held;
  }
  r->next_seg = 0;
  return drain(r, out, k, n);
}

int ul_tun_read_batch(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t n)
{
  const size_t at = UL_TX_HEADROOM - UL_VNET_HDR_LEN;
  uint32_t k;

  r->spare_lent = false; /* the caller is done with the last batch */
  k = drain(r, out, 0, n);
  while (k < n && !r->spare_lent) {
    uint8_t *pkt = out[k].buf + UL_TX_HEADROOM;
    struct ul_vnet_hdr vh;
    size_t len;
    ssize_t got = read(r->fd, out[k].buf + at, UL_BUF_SIZE - at);

    if (got < 0) {
      int err = errno;
      if (err == EINTR)
        continue;
      if (err == EAGAIN || err == EWOULDBLOCK)
        break;
      count_drop0(r, UL_DROP_TUN_READ);
      return k > 0 ? (int)k : -err;
    }
    if (got <= UL_VNET_HDR_LEN) {
      count_drop0(r, UL_DROP_TX_MALFORMED);
      continue;
    }
    memcpy(&vh, out[k].buf + at, sizeof(vh));
    len = (size_t)got - UL_VNET_HDR_LEN;
    if (vh.gso_type == 0) {
      /* left partial only where the field lies inside (else finished or
       * refused by ul_vnet_apply_tx); offset 0 would read as "complete" */
      bool partial = r->leave_partial && (vh.flags & UL_VNET_F_NEEDS_CSUM) != 0 &&
                     vh.csum_offset != 0 &&
                     (size_t)vh.csum_start + vh.csum_offset + 2 <= len;
      if (!partial && ul_vnet_apply_tx(pkt, len, &vh) != UL_OK) {
        count_drop0(r, UL_DROP_TX_MALFORMED);
        continue;
      }
      out[k].csum_start = partial ? vh.csum_start : 0;
      out[k].csum_offset = partial ? vh.csum_offset : 0;
      out[k].csum_travels = partial &&
                            ul_csum_partial_travels(pkt, len, vh.csum_start, vh.csum_offset);
      out[k].payload = NULL;
      out[k].payload_len = 0;
      out[k++].len = len;
      continue;
    }
    if (ul_tso_parse(pkt, len, &vh, &r->tso) != UL_OK) {
      count_drop0(r, UL_DROP_TX_MALFORMED);
      continue;
    }
    r->tso.leave_partial = r->leave_partial;
    r->pend_len = len;
    k = split(r, out, k, n);
  }
  return (int)k;
}

bool ul_tun_reader_pending(const struct ul_tun_reader *r)
{
  return r->next_seg < r->tso.nsegs;
}
