/*
 * engine-rx.c — the receive thread: recvmmsg -> validate/decap -> coalesce
 * -> TUN. The pipeline and the design notes are at the top of engine.c.
 */
#include "engine-internal.h"
#include "sockaddr.h"

#include <stdio.h>

/* ---- receive -------------------------------------------------------------------- */

/* The UDP_GRO segment size of message i, or its length when it carries none
 * (GRO off, or a datagram that was not coalesced). The kernel gives the cmsg
 * only for SKB_GSO_UDP_L4 buffers; a VXLAN tunnel GSO frame from a kernel
 * vxlan neighbour across veth (see tun.c, super-segments) comes whole and
 * without it, so it stays one datagram. */
static size_t rx_seg_size(struct worker *w, uint32_t i)
{
  struct msghdr *h = &w->msgs[i].msg_hdr;
  struct cmsghdr *c;

  for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      return seg < 0 ? 0 : (size_t)seg;
    }
  return w->msgs[i].msg_len;
}

static int rx_recv(struct worker *w)
{
  struct ul_engine *e = w->e;
  uint32_t i, vlen = w->rx_vlen;
  bool big = false;
  int n;

  for (i = 0; i < vlen; i++) {
    struct mmsghdr *m = &w->msgs[i];
    m->msg_hdr.msg_name = &w->slots[i].addr;
    m->msg_hdr.msg_namelen = sizeof(w->slots[i].addr);
    m->msg_hdr.msg_control = w->groups[i].cmsg.buf;
    m->msg_hdr.msg_controllen = sizeof(w->groups[i].cmsg.buf);
    m->msg_hdr.msg_flags = 0;
    m->msg_len = 0;
  }
  do
    n = recvmmsg(w->udp_fd, w->msgs, vlen, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  for (i = 0; i < (uint32_t)(n > 0 ? n : 0); i++)
    big |= w->msgs[i].msg_len >= UL_RX_BIG_MSG;
  if (big) /* "Receive batch" in engine.c */
    w->rx_vlen = e->cfg.batch < UL_RX_GRO_VLEN ? e->cfg.batch : UL_RX_GRO_VLEN;
  else if ((uint32_t)n == vlen)
    w->rx_vlen = e->cfg.batch;
  if (n < 0 && errno != EAGAIN) {
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    count_drop(e, 0, UL_DROP_UDP_RECV);
    nanosleep(&pause, NULL); /* do not spin on a persistent error */
  }
  return n < 0 ? 0 : n;
}

/* The segment size of message i, and, through *inner_gso, the datagram size
 * of a UDP super-frame inside it. The cmsg's size is the outer datagrams'
 * for a run the kernel coalesced. But a VXLAN GSO skb from a kernel vxlan
 * neighbour (across veth) whose inner packet is a UDP GSO packet carries
 * SKB_GSO_UDP_L4 too: the kernel hands it over whole, with the inner
 * datagrams' payload size in the cmsg. The two differ in what the first
 * datagram's headers say: a run's first datagram ends at the segment size,
 * a tunnel frame's runs to the end of the buffer. */
static size_t rx_seg_split(struct worker *w, uint32_t i, const uint8_t *base,
                           size_t *inner_gso)
{
  size_t len = w->msgs[i].msg_len, seg = rx_seg_size(w, i);

  *inner_gso = 0;
  if (seg > 0 && seg < len && ul_frame_len(&w->e->cfg.codec, base, len) == len) {
    *inner_gso = seg;
    return len;
  }
  return seg;
}

/* A datagram that cannot be decapsulated at all (truncated, bad GRO
 * buffer): one drop, charged to the sending peer when it is known. */
static void rx_drop_whole(struct worker *w, const struct ul_fdb *fdb,
                          const struct ul_addr *src, uint32_t *nd)
{
  struct rx_dgram *d = &w->dgrams[(*nd)++];
  const struct ul_fdb_peer *peer = fdb != NULL ? ul_fdb_peer_by_underlay(fdb, src) : NULL;

  memset(d, 0, sizeof(*d));
  d->reason = UL_DROP_UDP_RECV;
  d->peer_slot = peer != NULL ? peer->slot : 0;
}

/* Split each received buffer into its datagrams (UDP GRO) and validate and
 * decapsulate every one; returns the number of datagrams in w->dgrams. */
static uint32_t rx_decap(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  const struct ul_fdb *fdb = fdb_enter(w);
  struct ul_span spans[UL_RX_GRO_SEGS];
  uint32_t i, nd = 0;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    uint8_t *base = s->buf + UL_RX_OFFSET;
    struct ul_addr src;
    size_t inner_gso;
    int k, j;

    ul_sockaddr_get(&s->addr, &src);
    if (w->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      rx_drop_whole(w, fdb, &src, &nd);
      continue;
    }
    k = ul_udp_gro_split(w->msgs[i].msg_len, rx_seg_split(w, i, base, &inner_gso),
                         UL_RX_GRO_SEGS, spans, UL_RX_GRO_SEGS);
    if (k <= 0) { /* zero or lying segment size, or an empty datagram */
      if (w->msgs[i].msg_len == 0) {
        k = 1;
        spans[0].off = spans[0].len = 0; /* too short: counted as such */
      } else {
        rx_drop_whole(w, fdb, &src, &nd);
        continue;
      }
    }
    if (k >= 2) {
      bump(&w->gro_buffers, 1);
      bump(&w->gro_datagrams, (uint64_t)k);
    }
    for (j = 0; j < k; j++) {
      struct rx_dgram *d = &w->dgrams[nd++];
      struct ul_decap_result res = { 0 };

      d->peer_slot = 0;
      d->pkt = NULL;
      d->len = 0;
      d->gso_size = inner_gso;
      if (fdb == NULL) {
        d->reason = UL_DROP_UNKNOWN_PEER;
        continue;
      }
      d->reason = ul_decap(&e->cfg.codec, fdb, base + spans[j].off,
                           spans[j].len, &src, &res);
      if (res.peer != NULL)
        d->peer_slot = res.peer->slot;
      d->pkt = base + spans[j].off + res.pkt_off;
      d->len = res.pkt_len;
    }
  }
  fdb_leave(w);
  return nd;
}

/*
 * Coalesce the datagrams and write them to the TUN (ul_tun_write_batch,
 * tun.c), at most UL_BATCH_MAX at a time, then count each: received,
 * dropped by decap, or lost in a write.
 */
static void rx_write_chunk(struct worker *w, struct rx_dgram *dg, uint32_t n)
{
  struct ul_engine *e = w->e;
  uint8_t failed[UL_BATCH_MAX];
  uint32_t i;

  for (i = 0; i < n; i++) {
    w->gro[i].pkt = dg[i].reason == UL_OK ? dg[i].pkt : NULL;
    w->gro[i].len = dg[i].len;
    w->gro[i].gso_size = dg[i].gso_size;
  }
  ul_tun_write_received(&w->writer, w->gro, n, failed);

  for (i = 0; i < n; i++) {
    if (dg[i].reason != UL_OK) {
      count_drop(e, dg[i].peer_slot, dg[i].reason);
    } else if (failed[i]) {
      count_drop(e, dg[i].peer_slot, UL_DROP_TUN_WRITE);
    } else {
      count(e, dg[i].peer_slot, UL_C_RX_PACKETS, 1);
      count(e, dg[i].peer_slot, UL_C_RX_BYTES, dg[i].len);
    }
  }
}

static void rx_write(struct worker *w, uint32_t nd)
{
  uint32_t at;

  for (at = 0; at < nd; at += UL_BATCH_MAX)
    rx_write_chunk(w, w->dgrams + at, nd - at < UL_BATCH_MAX ? nd - at : UL_BATCH_MAX);
}

void *engine_rx_main(void *arg)
{
  struct worker *w = arg;
  struct ul_engine *e = w->e;
  char name[16];

  if (e->cfg.n_udp > 1) /* one rx thread per pair and underlay family */
    snprintf(name, sizeof(name), "userlay-rx%u-v%d", w->index, w->family);
  else
    snprintf(name, sizeof(name), "userlay-rx%u", w->index);
  pthread_setname_np(pthread_self(), name);
  while (engine_wait_fd(e, w->udp_fd, POLLIN)) {
    int n = rx_recv(w);
    uint32_t nd;
    if (n == 0)
      continue;
    nd = rx_decap(w, (uint32_t)n);
    rx_write(w, nd);
    if (nd <= UL_RX_HANDOFF_MAX)
      engine_tx_after_rx(e, w->index);
  }
  return NULL;
}
