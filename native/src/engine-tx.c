/*
 * engine-tx.c — the transmit thread: TUN -> lookup -> encap -> sendmmsg.
 * The pipeline and the design notes are at the top of engine.c.
 */
#include "engine-internal.h"
#include "sockaddr.h"

#include <stdio.h>

/* ---- transmit ------------------------------------------------------------------ */

/* Token bucket: may we send one more ICMP error now? */
static bool icmp_allowed(struct worker *w)
{
  struct timespec now;
  double dt;

  clock_gettime(CLOCK_MONOTONIC, &now);
  dt = (double)(now.tv_sec - w->icmp_last.tv_sec) +
       (double)(now.tv_nsec - w->icmp_last.tv_nsec) / 1e9;
  w->icmp_last = now;
  w->icmp_tokens += dt * UL_ICMP_RATE;
  if (w->icmp_tokens > UL_ICMP_BURST)
    w->icmp_tokens = UL_ICMP_BURST;
  if (w->icmp_tokens < 1.0)
    return false;
  w->icmp_tokens -= 1.0;
  return true;
}

/* Answer the packet with ICMP `kind` (mtu: for too big), rate-limited. */
static void icmp_reply(struct worker *w, const uint8_t *pkt, size_t len,
                       enum ul_icmp_kind kind, uint32_t mtu)
{
  const struct ul_addr *src = (pkt[0] >> 4) == 6 ? &w->e->cfg.icmp_src6
                                                 : &w->e->cfg.icmp_src4;
  int n;

  if (src->family == 0 || !icmp_allowed(w))
    return;
  n = ul_icmp_error(pkt, len, src, kind, mtu, w->icmp_buf + UL_VNET_HDR_LEN,
                    UL_ICMP_MAX);
  if (n <= 0)
    return;
  memset(w->icmp_buf, 0, UL_VNET_HDR_LEN);
  /* best effort: a full TUN queue loses the error, not a data packet */
  (void)!write(w->tun_fd, w->icmp_buf, UL_VNET_HDR_LEN + (size_t)n);
}

/*
 * Read up to one batch from the TUN (ul_tun_read_batch, tun-read.c: vnet
 * header, checksums, TSO/USO split, drop counters); returns the number of
 * slots filled. The reader may exchange slot buffers (see userlay.h).
 */
static uint32_t tx_read(struct worker *w)
{
  struct ul_engine *e = w->e;
  struct ul_tun_pkt pkts[UL_BATCH_MAX];
  uint32_t i, n = e->cfg.batch;
  int r;

  for (i = 0; i < n; i++)
    pkts[i].buf = w->slots[i].buf;
  r = ul_tun_read_batch(&w->reader, pkts, n);
  for (i = 0; i < n; i++)
    w->slots[i].buf = pkts[i].buf;
  if (r < 0) {
    /* e.g. the device went away (counted by the reader): do not spin */
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    return 0;
  }
  for (i = 0; i < (uint32_t)r; i++) {
    w->slots[i].len = pkts[i].len + pkts[i].payload_len;
    w->slots[i].payload = pkts[i].payload;
    w->slots[i].payload_len = pkts[i].payload_len;
    w->slots[i].csum_start = pkts[i].csum_start;
    w->slots[i].csum_offset = pkts[i].csum_offset;
    w->slots[i].csum_travels = pkts[i].csum_travels;
    w->slots[i].reason = UL_OK;
    w->slots[i].peer_slot = 0;
  }
  return (uint32_t)r;
}

/* Copy a payload the reader left in the super-packet behind the headers in
 * the slot's own buffer: the packet is whole then. */
static void tx_gather(struct slot *s)
{
  if (s->payload == NULL)
    return;
  memcpy(s->buf + UL_TX_HEADROOM + (s->len - s->payload_len), s->payload,
         s->payload_len);
  s->payload = NULL;
  s->payload_len = 0;
}

/* A checksum the reader left partial travels so to a peer that takes it
 * (UL_FDB_F_PARTIAL_CSUM) when the peer will know it for partial (the
 * reader said so: csum_travels), and then a segment's payload is sent from
 * where it was read. For every other peer the payload is gathered and the
 * checksum finished here (see "Partial checksums" in csum.c). */
static void tx_checksum(struct worker *w, struct slot *s,
                        const struct ul_fdb_peer *peer)
{
  uint8_t *pkt = s->buf + UL_TX_HEADROOM;

  if (s->csum_offset != 0 && (peer->flags & UL_FDB_F_PARTIAL_CSUM) != 0 &&
      s->csum_travels) {
    bump(&w->partial_csum, 1);
    return;
  }
  tx_gather(s);
  if (s->csum_offset == 0)
    return;
  /* in range: the reader checked csum_start + csum_offset + 2 <= len */
  (void)ul_csum_finish(pkt, s->len, s->csum_start, s->csum_offset);
}

/* Encapsulate the batch under one FDB read-side section. */
static void tx_encap(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  const struct ul_fdb *fdb = fdb_enter(w);
  uint32_t i, n_tx;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    struct ul_encap_result res;

    if (s->reason != UL_OK)
      continue;
    if (fdb == NULL) {
      s->reason = UL_DROP_NO_ROUTE;
      continue;
    }
    s->reason = ul_encap(&e->cfg.codec, fdb, s->buf, UL_TX_HEADROOM, s->len,
                         &res);
    if (s->reason == UL_DROP_TOO_BIG) {
      s->peer_slot = res.peer->slot;
      s->path_mtu = res.peer->mtu;
    }
    if (s->reason != UL_OK)
      continue;
    s->peer_slot = res.peer->slot;
    tx_checksum(w, s, res.peer);
    s->udp = res.peer->family == e->udp_family[0] ? 0 : 1;
    if (s->udp >= e->cfg.n_udp || res.peer->family != e->udp_family[s->udp]) {
      s->reason = UL_DROP_UDP_SEND; /* no socket of the peer's family */
      continue;
    }
    n_tx = e->cfg.udp[s->udp].n_tx_fds;
    s->txq = n_tx > 1 ? ul_flow_pick(ul_flow_hash(s->buf + UL_TX_HEADROOM, s->len), n_tx) : 0;
    s->off = res.frame_off;
    ul_sockaddr_set(&s->addr, res.peer->family, res.peer->ip, res.peer->port);
    s->iov.iov_base = s->buf + res.frame_off;
    s->iov.iov_len = res.frame_len - s->payload_len;
  }
  fdb_leave(w);
}

/* Count the packets of one message as sent, or as dropped. */
static void tx_account(struct ul_engine *e, struct slot **sent,
                       const struct tx_group *g, bool ok)
{
  uint32_t i;

  for (i = g->first; i < g->first + g->count; i++) {
    if (!ok) {
      count_drop(e, sent[i]->peer_slot, UL_DROP_UDP_SEND);
      continue;
    }
    count(e, sent[i]->peer_slot, UL_C_TX_PACKETS, 1);
    count(e, sent[i]->peer_slot, UL_C_TX_BYTES, sent[i]->len);
  }
}

/* UDP payload length of the datagram of s: the frame in its buffer, and a
 * payload still in the super-packet. */
static size_t tx_wire_len(const struct slot *s)
{
  return s->iov.iov_len + s->payload_len;
}

/* Append the datagram of s to the iovecs at w->iovs[v]; returns the next v. */
static uint32_t tx_iov(struct worker *w, uint32_t v, const struct slot *s)
{
  w->iovs[v++] = s->iov;
  if (s->payload != NULL) {
    w->iovs[v].iov_base = (void *)s->payload;
    w->iovs[v++].iov_len = s->payload_len;
  }
  return v;
}

/*
 * Build the messages for sent[pos, m). With gso, consecutive datagrams to the
 * same destination and of the same length (the last one may be shorter)
 * share one message with UDP_SEGMENT: the stack is crossed once and the
 * datagrams are cut apart as late as possible. A datagram is one iovec, or
 * two when its payload is still in the super-packet it came from. Returns
 * the message count.
 */
static uint32_t tx_build(struct worker *w, struct slot **sent, uint32_t pos,
                         uint32_t m, bool gso)
{
  uint32_t n = 0, i = pos, v = 0;

  while (i < m) {
    struct slot *s = sent[i];
    struct tx_group *g = &w->groups[n];
    struct msghdr *h = &w->msgs[n].msg_hdr;
    size_t seg = tx_wire_len(s), total = seg;
    socklen_t alen = ul_sockaddr_len(&s->addr);
    uint32_t k = 1, v0 = v;

    v = tx_iov(w, v, s);
    while (gso && i + k < m && k < UL_GSO_MAX_SEGS) {
      const struct slot *t = sent[i + k];
      size_t len = tx_wire_len(t);
      if (len > seg || total + len > UL_GSO_MAX_BYTES ||
          memcmp(&t->addr, &s->addr, alen) != 0)
        break;
      v = tx_iov(w, v, t);
      total += len;
      k++;
      if (len < seg) /* a shorter datagram ends the run */
        break;
    }
    memset(&w->msgs[n], 0, sizeof(w->msgs[n]));
    h->msg_name = &s->addr;
    h->msg_namelen = alen;
    h->msg_iov = &w->iovs[v0];
    h->msg_iovlen = v - v0;
    if (k > 1) {
      uint16_t size = (uint16_t)seg;
      struct cmsghdr *c;
      h->msg_control = g->cmsg.buf;
      h->msg_controllen = sizeof(g->cmsg.buf);
      c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(size));
      memcpy(CMSG_DATA(c), &size, sizeof(size));
    }
    g->first = i;
    g->count = k;
    n++;
    i += k;
  }
  return n;
}

/* Errors by which a UDP_SEGMENT send says GSO itself is the problem (old
 * kernel, no checksum offload on the route's device, segment limits). */
static bool gso_refused(int err)
{
  return err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP;
}

/* Send sent[0, m) from fd; returns 0 when asked to stop meanwhile. */
static int tx_send_fd(struct worker *w, int fd, struct slot **sent, uint32_t m)
{
  struct ul_engine *e = w->e;
  uint32_t i, pos = 0;
  bool gso = __atomic_load_n(&e->tx_gso, __ATOMIC_RELAXED);

  while (pos < m) {
    uint32_t msgs = tx_build(w, sent, pos, m, gso), j = 0;

    while (j < msgs) {
      int r = sendmmsg(fd, &w->msgs[j], msgs - j, 0);

      if (r < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN) {
          if (!engine_wait_fd(e, fd, POLLOUT))
            return 0;
          continue;
        }
        if (w->groups[j].count > 1 && gso_refused(errno)) {
          /* resend this run one datagram each; after repeated refusals
           * stop trying GSO at all */
          gso = false;
          if (__atomic_add_fetch(&e->tx_gso_refusals, 1, __ATOMIC_RELAXED) >=
              UL_GSO_MAX_REFUSALS)
            __atomic_store_n(&e->tx_gso, 0, __ATOMIC_RELAXED);
          break;
        }
        /* the first unsent message failed: drop it, go on with the rest */
        tx_account(e, sent, &w->groups[j], false);
        j++;
        continue;
      }
      for (i = j; i < j + (uint32_t)r; i++)
        tx_account(e, sent, &w->groups[i], true);
      j += (uint32_t)r;
    }
    pos = j < msgs ? w->groups[j].first : m;
  }
  return 1;
}

/* The send socket of source port q in the socket set u (udp_fd without tx_fds). */
static int tx_fd(const struct ul_engine_udp *u, uint32_t q)
{
  return u->n_tx_fds > 0 ? u->tx_fds[q] : u->udp_fd;
}

/* Send the encapsulated packets, each from its flow's socket of its peer's
 * underlay family (in batch order within a socket, so within a flow);
 * returns 0 when asked to stop meanwhile. */
static int tx_send(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  struct slot *sent[UL_BATCH_MAX], *mine[UL_BATCH_MAX];
  uint32_t i, k, q, m = 0;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    if (s->reason == UL_OK) {
      sent[m++] = s;
      continue;
    }
    count_drop(e, s->peer_slot, s->reason);
    tx_gather(s); /* the error quotes the packet */
    if (s->reason == UL_DROP_NO_ROUTE)
      icmp_reply(w, s->buf + UL_TX_HEADROOM, s->len, UL_ICMP_NO_ROUTE, 0);
    else if (s->reason == UL_DROP_TOO_BIG)
      icmp_reply(w, s->buf + UL_TX_HEADROOM, s->len, UL_ICMP_TOO_BIG,
                 s->path_mtu);
  }
  if (e->cfg.n_udp == 1 && e->cfg.udp[0].n_tx_fds <= 1)
    return tx_send_fd(w, tx_fd(&e->cfg.udp[0], 0), sent, m);
  for (k = 0; k < e->cfg.n_udp; k++) {
    const struct ul_engine_udp *u = &e->cfg.udp[k];
    uint32_t nq = u->n_tx_fds > 0 ? u->n_tx_fds : 1;
    for (q = 0; q < nq; q++) {
      uint32_t c = 0;
      for (i = 0; i < m; i++)
        if (sent[i]->udp == k && sent[i]->txq == q)
          mine[c++] = sent[i];
      if (c > 0 && !tx_send_fd(w, tx_fd(u, q), mine, c))
        return 0;
    }
  }
  return 1;
}

static int64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Passes until nothing is left over: read a batch, encapsulate, send. The
 * rest of a super-packet the batch had no room for goes in the next pass at
 * once: nothing on the TUN would wake the thread for it. Caller holds
 * w->tx_lock. Returns 0 when asked to stop meanwhile. */
static int tx_pass(struct worker *w)
{
  int go = 1;

  do {
    uint32_t n = tx_read(w);
    if (n == 0)
      break;
    tx_encap(w, n);
    go = tx_send(w, n);
  } while (go && ul_tun_reader_pending(&w->reader));
  return go;
}

void *engine_tx_main(void *arg)
{
  struct worker *w = arg;
  struct ul_engine *e = w->e;
  char name[16];
  int go = 1;

  snprintf(name, sizeof(name), "userlay-tx%u", w->index);
  pthread_setname_np(pthread_self(), name);
  while (go) {
    __atomic_store_n(&w->tx_asleep_ns, now_ns(), __ATOMIC_RELAXED);
    go = engine_wait_fd(e, w->tun_fd, POLLIN);
    __atomic_store_n(&w->tx_asleep_ns, 0, __ATOMIC_RELAXED);
    if (!go)
      break;
    pthread_mutex_lock(&w->tx_lock);
    go = tx_pass(w);
    pthread_mutex_unlock(&w->tx_lock);
  }
  return NULL;
}

void engine_tx_after_rx(struct ul_engine *e, uint32_t pair)
{
  struct worker *t = &e->tx[pair];
  int64_t since = __atomic_load_n(&t->tx_asleep_ns, __ATOMIC_RELAXED);

  if (since == 0 || now_ns() - since < UL_TX_HANDOFF_IDLE_NS ||
      pthread_mutex_trylock(&t->tx_lock) != 0)
    return;
  bump(&t->tx_after_rx, 1);
  (void)tx_pass(t); /* a stop is seen by the rx thread's own wait */
  pthread_mutex_unlock(&t->tx_lock);
}
