/*
 * engine-rx.c — the receive thread: recvmmsg -> validate/decap -> coalesce
 * -> TUN. The pipeline and the design notes are at the top of engine.c.
 */
#include "engine-internal.h"
#include "sockaddr.h"

/* ---- receive -------------------------------------------------------------------- */

static int rx_recv(struct worker *w)
{
  struct ul_engine *e = w->e;
  uint32_t i;
  int n;

  for (i = 0; i < e->cfg.batch; i++) {
    struct mmsghdr *m = &w->msgs[i];
    m->msg_hdr.msg_name = &w->slots[i].addr;
    m->msg_hdr.msg_namelen = sizeof(w->slots[i].addr);
    m->msg_hdr.msg_flags = 0;
    m->msg_len = 0;
  }
  do
    n = recvmmsg(e->cfg.udp_fd, w->msgs, e->cfg.batch, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) {
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    count_drop(e, 0, UL_DROP_UDP_RECV);
    nanosleep(&pause, NULL); /* do not spin on a persistent error */
  }
  return n < 0 ? 0 : n;
}

static void rx_decap(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  const struct ul_fdb *fdb = fdb_enter(w);
  uint32_t i;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    struct ul_decap_result res = { 0 };
    struct ul_addr src;

    s->peer_slot = 0;
    if (w->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      s->reason = UL_DROP_UDP_RECV;
      continue;
    }
    if (fdb == NULL) {
      s->reason = UL_DROP_UNKNOWN_PEER;
      continue;
    }
    ul_sockaddr_get(&s->addr, &src);
    s->reason = ul_decap(&e->cfg.codec, fdb, s->buf + UL_RX_OFFSET,
                         w->msgs[i].msg_len, &src, &res);
    if (res.peer != NULL)
      s->peer_slot = res.peer->slot;
    s->off = UL_RX_OFFSET + res.pkt_off;
    s->len = res.pkt_len;
  }
  fdb_leave(w);
}

/*
 * Coalesce the batch and write it to the TUN (ul_tun_write_batch, tun.c),
 * then count each packet: received, dropped by decap, or lost in a write.
 */
static void rx_write(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  uint8_t failed[UL_BATCH_MAX];
  size_t longest = 0;
  uint32_t i;
  int mtu;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    w->gro[i].pkt = s->reason == UL_OK ? s->buf + s->off : NULL;
    w->gro[i].len = s->len;
    if (s->reason == UL_OK && s->len > longest)
      longest = s->len;
  }
  mtu = ul_tun_mtu_cached(e->cfg.tun_fd, &e->rx_mtu, longest);
  ul_gro_batch(w->gro, n, mtu);
  ul_tun_write_batch(e->cfg.tun_fd, w->gro, n, mtu, failed);

  for (i = 0; i < n; i++) {
    const struct slot *s = &w->slots[i];

    if (s->reason != UL_OK) {
      count_drop(e, s->peer_slot, s->reason);
    } else if (failed[i]) {
      count_drop(e, s->peer_slot, UL_DROP_TUN_WRITE);
    } else {
      count(e, s->peer_slot, UL_C_RX_PACKETS, 1);
      count(e, s->peer_slot, UL_C_RX_BYTES, s->len);
    }
  }
}

void *engine_rx_main(void *arg)
{
  struct worker *w = arg;
  struct ul_engine *e = w->e;

  pthread_setname_np(pthread_self(), "userlay-rx");
  while (engine_wait_fd(e, e->cfg.udp_fd, POLLIN)) {
    int n = rx_recv(w);
    if (n == 0)
      continue;
    rx_decap(w, (uint32_t)n);
    rx_write(w, (uint32_t)n);
  }
  return NULL;
}
