/*
 * tun-read.c — the one TUN read path, shared by the native engine's tx
 * thread (engine-tx.c) and the js engine's reader (binding/tun-reader.c).
 *
 * Pipeline (ul_tun_read_batch, up to n packets):
 *   1. A super-packet left over from the last call is split on first
 *      (step 5), so a flow's segments keep their order.
 *   2. readv() the next packet: its first UL_TUN_READ_DIRECT bytes into the
 *      next caller buffer at UL_TX_HEADROOM - UL_VNET_HDR_LEN,
 *      [headroom | virtio_net_hdr | IP packet], the rest into a free pool
 *      buffer at the same place ("Where reads land"); until the first
 *      super-packet, read() it whole into the caller buffer. EINTR retries, EAGAIN
 *      ends the batch, another error is counted (UL_DROP_TUN_READ) and ends
 *      it. No free pool buffer left also ends it.
 *   3. Shorter than the virtio-net header plus one byte: a runt, counted as
 *      UL_DROP_TX_MALFORMED (one rule for both engines: they disagreed).
 *   4. gso_type NONE: a tail that went to the pool is copied behind its
 *      head, so the packet is whole in the caller buffer. ul_vnet_apply_tx()
 *      finishes a NEEDS_CSUM checksum; bad offsets are UL_DROP_TX_MALFORMED.
 *      With leave_partial the checksum is left as it is and its place handed
 *      on (ul_tun_pkt.csum_start/csum_offset), as for the segments of step 5:
 *      the caller finishes it unless the peer takes it partial (csum.c).
 *   5. GSO (TSO4/TSO6/USO): the head is copied in front of the tail, so the
 *      super-packet is whole in its pool buffer; ul_tso_parse() checks it
 *      (malformed: counted), then segment i goes into caller buffer k + i
 *      until the batch is full; the next call goes on with the rest
 *      (ul_tun_reader_pending: the caller must not wait for the TUN first,
 *      nothing may come). A segment is its headers and payload copied into
 *      its buffer, or with share_payload (and leave_partial) its headers
 *      only, the payload left in the pool buffer (ul_tun_pkt.payload),
 *      which then stays taken until the next call. So does the buffer of a
 *      super-packet that continues into the next call, which moves it to
 *      pool[0].
 *
 * Design notes
 *   - Where reads land. Read whole into the caller's buffers, a 64 KiB
 *     super-packet lands, over time, in every one of them (the next free
 *     buffer is wherever the last segment ended): all of a 64-buffer batch,
 *     4 MiB, stays resident, and the buffer a read fills has gone cold
 *     since it was last used. Read in two parts, a plain packet of up to
 *     UL_TUN_READ_DIRECT bytes (an MTU-sized packet, an ACK) still lands
 *     where it is sent from, and super-packets land in UL_TUN_POOL buffers
 *     used over and over: a batch touches the pool and the first pages of
 *     each caller buffer. The cost is a copy of the head (at most
 *     UL_TUN_READ_DIRECT bytes) per super-packet, and of the tail of a plain
 *     packet longer than that (a jumbo TUN MTU). A TUN without offloads
 *     never gives a super-packet, so until one comes (the first is copied
 *     into the pool whole, once) every packet is read() in one part as
 *     before: with offloads off, reading in two parts looked 9-15% slower
 *     in two noisy A/B pairs. Measured in bench/RESULTS.md ("Where TUN
 *     reads land").
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
 */
#include "userlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
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
  uint32_t i;

  memset(r, 0, sizeof(*r));
  r->fd = fd;
  r->counters = counters;
  for (i = 0; i < UL_TUN_POOL; i++)
    if ((r->pool[i] = malloc(UL_BUF_SIZE)) == NULL) {
      ul_tun_reader_free(r);
      return -ENOMEM;
    }
  return 0;
}

void ul_tun_reader_free(struct ul_tun_reader *r)
{
  uint32_t i;

  for (i = 0; i < UL_TUN_POOL; i++) {
    free(r->pool[i]);
    r->pool[i] = NULL;
  }
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
 * share_payload left where it is. */
static void emit(struct ul_tun_reader *r, const uint8_t *pkt, uint32_t i,
                 struct ul_tun_pkt *p)
{
  uint8_t *at = p->buf + UL_TX_HEADROOM;

  p->payload = NULL;
  p->payload_len = 0;
  if (r->share_payload && r->tso.leave_partial) {
    const uint8_t *payload;
    size_t plen;
    p->len = ul_tso_segment_headers(pkt, &r->tso, i, at, &payload, &plen);
    if (plen > 0) {
      p->payload = payload;
      p->payload_len = plen;
    }
  } else {
    p->len = ul_tso_segment(pkt, &r->tso, i, at);
  }
  mark_partial(r, p);
}

/* Segments of the super-packet being split into out[k..n); returns the new k. */
static uint32_t drain(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t k, uint32_t n)
{
  for (; k < n && r->next_seg < r->tso.nsegs; k++, r->next_seg++) {
    emit(r, r->super, r->next_seg, &out[k]);
    stat_add(&r->segments, 1);
  }
  return k;
}

/* Step 1: the buffer of a super-packet still being split becomes pool[0],
 * the one pool buffer this call starts with taken. */
static void keep_pending(struct ul_tun_reader *r)
{
  uint8_t *held;
  uint32_t i = 0;

  r->pool_used = 0;
  if (!ul_tun_reader_pending(r))
    return;
  held = (uint8_t *)r->super - UL_TX_HEADROOM;
  while (i + 1 < UL_TUN_POOL && r->pool[i] != held) /* it is one of them */
    i++;
  r->pool[i] = r->pool[0];
  r->pool[0] = held;
  r->pool_used = 1;
}

int ul_tun_read_batch(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t n)
{
  const size_t at = UL_TX_HEADROOM - UL_VNET_HDR_LEN;
  const size_t direct = UL_TUN_READ_DIRECT;
  uint32_t k;

  keep_pending(r); /* the caller is done with the last batch */
  k = drain(r, out, 0, n);
  while (k < n && r->pool_used < UL_TUN_POOL) {
    uint8_t *head = out[k].buf + at, *tail = r->pool[r->pool_used] + at;
    struct iovec iov[2] = { { head, direct }, { tail + direct, UL_BUF_SIZE - at - direct } };
    uint8_t *pkt = out[k].buf + UL_TX_HEADROOM;
    struct ul_vnet_hdr vh;
    size_t len;
    ssize_t got = r->gso_seen ? readv(r->fd, iov, 2)
                              : read(r->fd, head, UL_BUF_SIZE - at);

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
    memcpy(&vh, head, sizeof(vh));
    len = (size_t)got - UL_VNET_HDR_LEN;
    if (vh.gso_type == 0) {
      /* left partial only where the field lies inside (else finished or
       * refused by ul_vnet_apply_tx); offset 0 would read as "complete" */
      bool partial = r->leave_partial && (vh.flags & UL_VNET_F_NEEDS_CSUM) != 0 &&
                     vh.csum_offset != 0 &&
                     (size_t)vh.csum_start + vh.csum_offset + 2 <= len;
      if (r->gso_seen && (size_t)got > direct) /* the tail behind the head */
        memcpy(head + direct, tail + direct, (size_t)got - direct);
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
    /* the head in front of the tail: the super-packet whole in the pool
     * (the first one the reader sees came whole into the caller buffer) */
    memcpy(tail, head, !r->gso_seen || (size_t)got < direct ? (size_t)got : direct);
    r->gso_seen = true;
    pkt = tail + UL_VNET_HDR_LEN;
    if (ul_tso_parse(pkt, len, &vh, &r->tso) != UL_OK) {
      count_drop0(r, UL_DROP_TX_MALFORMED);
      continue;
    }
    r->tso.leave_partial = r->leave_partial;
    r->super = pkt;
    r->next_seg = 0;
    stat_add(&r->supers, 1);
    k = drain(r, out, k, n);
    /* payloads handed out, or segments left: the buffer stays taken */
    if ((r->tso.leave_partial && r->share_payload) || ul_tun_reader_pending(r))
      r->pool_used++;
  }
  return (int)k;
}

bool ul_tun_reader_pending(const struct ul_tun_reader *r)
{
  return r->next_seg < r->tso.nsegs;
}
