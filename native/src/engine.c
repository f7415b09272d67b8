/*
 * The native forwarding engine: two dedicated threads, one per direction.
 *
 * Pipeline, transmit (thread "userlay-tx", TUN -> UDP):
 *   1. poll() the TUN fd and the wake eventfd; the wake fd readable = stop.
 *   2. read() up to `batch` packets, non-blocking, each into its own buffer at
 *      UL_TX_HEADROOM - UL_VNET_HDR_LEN: [headroom | virtio_net_hdr | IP].
 *   3. Parse the virtio_net_hdr and ul_vnet_apply_tx(): complete a partial
 *      checksum in software; GSO or bad offsets -> UL_DROP_TX_MALFORMED.
 *   4. Enter the FDB read side (seq odd), load the current table, and for
 *      each packet ul_encap() in place: the VXLAN + inner Ethernet header goes
 *      into the headroom. Copy out what the send needs (destination sockaddr,
 *      counter slot); leave the read side (seq even).
 *   5. A miss (UL_DROP_NO_ROUTE) is counted and answered with an ICMP
 *      destination unreachable written back into the TUN (zero vnet header),
 *      at most UL_ICMP_RATE per second with bursts of UL_ICMP_BURST.
 *   6. sendmmsg() the batch. Consecutive datagrams to one peer with equal
 *      length travel as one message with UDP_SEGMENT (UDP GSO: the stack is
 *      crossed once per run, the receiver still gets separate datagrams);
 *      if the kernel refuses GSO the run is resent datagram by datagram, and
 *      after UL_GSO_MAX_REFUSALS refusals GSO is off for good. A partial send
 *      resumes at the first unsent message; EAGAIN waits for POLLOUT (or the
 *      wake fd); any other error drops that message's datagrams
 *      (UL_DROP_UDP_SEND) and the rest still go.
 *
 * Pipeline, receive (thread "userlay-rx", UDP -> TUN):
 *   1. poll() the UDP socket and the wake eventfd.
 *   2. recvmmsg() up to `batch` datagrams, each at UL_RX_OFFSET of its buffer,
 *      with the sender's address. MSG_TRUNC -> UL_DROP_UDP_RECV.
 *   3. Enter the FDB read side, ul_decap() each datagram against the outer
 *      source address (flags, VNI, MAC, inner IP, known peer, anti-spoofing),
 *      note the counter slot, leave the read side.
 *   4. Coalesce (ul_gro_batch, gro.c): in-order TCP segments of one flow in
 *      the batch become one super-packet led by its first segment, whose
 *      headers are rewritten and which gets a GSO virtio_net_hdr.
 *   5. Write (ul_tun_write_batch, tun.c, shared with the js engine): in
 *      batch order, for each leader one writev() of [vnet hdr | first
 *      packet] and then, for a super-packet, each follower's payload,
 *      straight from the receive buffers. A packet that stands alone gets
 *      the virtio_net_hdr that ul_vnet_hdr_for_rx() chooses (or, for a TCP
 *      packet longer than the TUN MTU, the GSO header of
 *      ul_tun_gso_for_rx()). Counters count the original packets; a failed
 *      write (EAGAIN included) counts UL_DROP_TUN_WRITE for each packet it
 *      carried.
 *
 * Design notes
 *   - Counters: slot 0 holds totals, slot k the peer whose `slot` is k (slots
 *     above max_slot count only in the totals). Each counter has exactly one
 *     writer: tx counters and drops 9..12 belong to the tx thread, rx counters
 *     and drops 1..8 and 13 to the rx thread, so a relaxed load + store is an
 *     exact increment and JS never sees a torn value. A failed ICMP write is
 *     not counted (UL_DROP_TUN_WRITE belongs to the rx thread).
 *   - FDB replacement is quiescent-state based, without locks on the hot path.
 *     Each thread owns a sequence number, odd while it may hold a table
 *     pointer (one batch of encap/decap), even otherwise; it is even whenever
 *     the thread blocks (poll, POLLOUT wait, TUN writes). ul_engine_set_fdb
 *     exchanges the pointer, then for each thread samples the sequence: even
 *     means it holds nothing, odd means wait until the value changes (that
 *     batch, which may have loaded the old table, has ended; the next one
 *     loads the new table). Then the old table is freed. Sequence stores and
 *     the table load/exchange are sequentially consistent, so either the
 *     thread sees the new table or the writer sees the odd sequence. The wait
 *     is bounded by one batch of pure computation (no syscalls).
 *   - Stop writes the eventfd; both threads poll it in every wait, so a
 *     thread blocked on POLLOUT or on an idle fd wakes too. The eventfd lives
 *     from start to stop, so a stopped engine may be started again.
 *   - ICMP errors enter the TUN from cfg.icmp_src4/6. The kernel drops a
 *     packet whose source is one of its own addresses (martian source) unless
 *     accept_local is set on the TUN, so the source is either a non-local
 *     address routed through the TUN or the TUN has accept_local=1.
 *   - Threads block all signals: Node's main thread keeps handling them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np, sendmmsg, recvmmsg */
#endif
#include "userlay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>


#define UL_ICMP_RATE 100  /* ICMP unreachables per second, sustained */
#define UL_ICMP_BURST 50  /* and in one burst */
#define UL_ICMP_MAX 1280  /* IPv6 minimum MTU: the largest error we build */
#define UL_GSO_MAX_SEGS 64     /* UDP_MAX_SEGMENTS of older kernels */
#define UL_GSO_MAX_BYTES 65000 /* one UDP payload before segmentation */
#define UL_GSO_MAX_REFUSALS 8
#define UL_BATCH_DEFAULT 64
#define UL_BATCH_MAX 256

/* One packet of a batch. */
struct slot {
  uint8_t *buf;               /* UL_BUF_SIZE bytes */
  size_t len;                 /* inner IP length */
  size_t off;                 /* tx: frame offset; rx: inner IP offset */
  int reason;                 /* UL_OK or a drop */
  uint32_t peer_slot;         /* counter slot, 0 = none */
  struct sockaddr_storage addr; /* tx: destination; rx: source */
  struct iovec iov;
};

/* A message of the tx batch: datagrams sent[first, first + count). */
struct tx_group {
  uint32_t first, count;
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(uint16_t))];
  } cmsg;
};

struct worker {
  struct ul_engine *e;
  pthread_t thread;
  uint64_t seq;               /* see "FDB replacement"; __atomic access */
  struct slot *slots;         /* cfg.batch entries */
  struct mmsghdr *msgs;       /* cfg.batch entries */
  /* tx only: one message may carry a run of datagrams (UDP GSO) */
  struct iovec *iovs;         /* cfg.batch entries, in send order */
  struct tx_group *groups;    /* tx only: cfg.batch entries, one per message */
  struct ul_gro_item *gro;    /* rx only: cfg.batch entries */
} __attribute__((aligned(64)));

struct ul_engine {
  struct ul_engine_cfg cfg;
  struct ul_fdb *fdb;         /* current table; __atomic access */
  pthread_mutex_t swap_lock;  /* serialises writers of fdb */
  int wake_fd;                /* eventfd while running, else -1 */
  bool running;
  struct worker tx, rx;
  /* rx only: TUN MTU for re-segmenting TCP super-segments (see tun.c) and
   * as the limit of segments that may coalesce (gro.c) */
  int rx_mtu;                 /* 0 = unknown */
  struct timespec rx_mtu_checked;
  /* tx only */
  bool tx_gso;                /* UDP GSO in use (until refused repeatedly) */
  unsigned tx_gso_refusals;
  uint8_t icmp_buf[UL_VNET_HDR_LEN + UL_ICMP_MAX];
  double icmp_tokens;
  struct timespec icmp_last;
};

/* ---- counters ------------------------------------------------------------ */

static inline void bump(uint64_t *c, uint64_t v)
{
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v,
                   __ATOMIC_RELAXED);
}

/* Add v to counter idx of the totals and of the peer's slot, if any. */
static void count(struct ul_engine *e, uint32_t peer_slot, int idx, uint64_t v)
{
  bump(&e->cfg.counters[idx], v);
  if (peer_slot >= 1 && peer_slot <= e->cfg.max_slot)
    bump(&e->cfg.counters[(size_t)peer_slot * UL_C_SLOT_WIDTH + idx], v);
}

static void count_drop(struct ul_engine *e, uint32_t peer_slot, int reason)
{
  count(e, peer_slot, UL_C_DROPS + reason, 1);
}

/* ---- FDB read side --------------------------------------------------------- */

static const struct ul_fdb *fdb_enter(struct worker *w)
{
  __atomic_add_fetch(&w->seq, 1, __ATOMIC_SEQ_CST); /* odd */
  return __atomic_load_n(&w->e->fdb, __ATOMIC_SEQ_CST);
}

static void fdb_leave(struct worker *w)
{
  __atomic_add_fetch(&w->seq, 1, __ATOMIC_SEQ_CST); /* even */
}

static void fdb_wait_quiescent(struct worker *w)
{
  uint64_t s = __atomic_load_n(&w->seq, __ATOMIC_SEQ_CST);
  struct timespec nap = { 0, 20000 };

  if ((s & 1) == 0)
    return;
  while (__atomic_load_n(&w->seq, __ATOMIC_SEQ_CST) == s)
    nanosleep(&nap, NULL);
}

void ul_engine_set_fdb(struct ul_engine *e, struct ul_fdb *fdb)
{
  struct ul_fdb *old;

  pthread_mutex_lock(&e->swap_lock);
  old = __atomic_exchange_n(&e->fdb, fdb, __ATOMIC_SEQ_CST);
  fdb_wait_quiescent(&e->tx);
  fdb_wait_quiescent(&e->rx);
  pthread_mutex_unlock(&e->swap_lock);
  ul_fdb_free(old);
}

/* ---- helpers ----------------------------------------------------------------- */

/* Wait until fd has `events` or the engine is woken. 1 = ready, 0 = stop. */
static int wait_fd(struct ul_engine *e, int fd, short events)
{
  struct pollfd p[2] = {
    { .fd = fd, .events = events },
    { .fd = e->wake_fd, .events = POLLIN },
  };

  for (;;) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return 0; /* cannot wait: give up rather than spin */
    }
    if (p[1].revents != 0 || (p[0].revents & POLLNVAL))
      return 0;
    if (p[0].revents != 0)
      return 1;
  }
}

static void to_sockaddr(const struct ul_fdb_peer *p, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof(*ss));
  if (p->family == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(p->port);
    memcpy(&sin->sin_addr, p->ip, 4);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(p->port);
    memcpy(&sin6->sin6_addr, p->ip, 16);
  }
}

static socklen_t sockaddr_len(const struct sockaddr_storage *ss)
{
  return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                  : sizeof(struct sockaddr_in6);
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct ul_addr *a)
{
  memset(a, 0, sizeof(*a));
  if (ss->ss_family == AF_INET) {
    a->family = 4;
    memcpy(a->bytes, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    a->family = 6;
    memcpy(a->bytes, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
  }
}

/* ---- transmit ------------------------------------------------------------------ */

/* Token bucket: may we send one more ICMP error now? */
static bool icmp_allowed(struct ul_engine *e)
{
  struct timespec now;
  double dt;

  clock_gettime(CLOCK_MONOTONIC, &now);
  dt = (double)(now.tv_sec - e->icmp_last.tv_sec) +
       (double)(now.tv_nsec - e->icmp_last.tv_nsec) / 1e9;
  e->icmp_last = now;
  e->icmp_tokens += dt * UL_ICMP_RATE;
  if (e->icmp_tokens > UL_ICMP_BURST)
    e->icmp_tokens = UL_ICMP_BURST;
  if (e->icmp_tokens < 1.0)
    return false;
  e->icmp_tokens -= 1.0;
  return true;
}

static void icmp_reply(struct ul_engine *e, const uint8_t *pkt, size_t len)
{
  const struct ul_addr *src = (pkt[0] >> 4) == 6 ? &e->cfg.icmp_src6
                                                 : &e->cfg.icmp_src4;
  int n;

  if (src->family == 0 || !icmp_allowed(e))
    return;
  n = ul_icmp_unreach(pkt, len, src, e->icmp_buf + UL_VNET_HDR_LEN,
                      UL_ICMP_MAX);
  if (n <= 0)
    return;
  memset(e->icmp_buf, 0, UL_VNET_HDR_LEN);
  /* best effort: a full TUN queue loses the error, not a data packet */
  (void)!write(e->cfg.tun_fd, e->icmp_buf, UL_VNET_HDR_LEN + (size_t)n);
}

/* Read up to one batch from the TUN; returns the number of slots filled. */
static uint32_t tx_read(struct worker *w)
{
  struct ul_engine *e = w->e;
  const size_t at = UL_TX_HEADROOM - UL_VNET_HDR_LEN;
  uint32_t n = 0;

  while (n < e->cfg.batch) {
    struct slot *s = &w->slots[n];
    struct ul_vnet_hdr vh;
    ssize_t r = read(e->cfg.tun_fd, s->buf + at, UL_BUF_SIZE - at);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN) {
        /* e.g. the device went away: count, and do not spin on it */
        struct timespec pause = { 0, 10 * 1000 * 1000 };
        count_drop(e, 0, UL_DROP_TUN_READ);
        nanosleep(&pause, NULL);
      }
      break;
    }
    s->reason = UL_OK;
    s->peer_slot = 0;
    if (r <= UL_VNET_HDR_LEN) {
      s->len = 0;
      s->reason = UL_DROP_TX_MALFORMED;
    } else {
      memcpy(&vh, s->buf + at, sizeof(vh));
      s->len = (size_t)r - UL_VNET_HDR_LEN;
      s->reason = ul_vnet_apply_tx(s->buf + UL_TX_HEADROOM, s->len, &vh);
    }
    n++;
  }
  return n;
}

/* Encapsulate the batch under one FDB read-side section. */
static void tx_encap(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  const struct ul_fdb *fdb = fdb_enter(w);
  uint32_t i;

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
    if (s->reason != UL_OK)
      continue;
    s->peer_slot = res.peer->slot;
    s->off = res.frame_off;
    to_sockaddr(res.peer, &s->addr);
    s->iov.iov_base = s->buf + res.frame_off;
    s->iov.iov_len = res.frame_len;
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

/*
 * Build the messages for sent[pos, m). With gso, consecutive datagrams to the
 * same destination and of the same length (the last one may be shorter)
 * share one message with UDP_SEGMENT: the stack is crossed once and the
 * datagrams are cut apart as late as possible. Returns the message count.
 */
static uint32_t tx_build(struct worker *w, struct slot **sent, uint32_t pos,
                         uint32_t m, bool gso)
{
  uint32_t n = 0, i = pos;

  while (i < m) {
    struct slot *s = sent[i];
    struct tx_group *g = &w->groups[n];
    struct msghdr *h = &w->msgs[n].msg_hdr;
    size_t seg = s->iov.iov_len, total = seg;
    socklen_t alen = sockaddr_len(&s->addr);
    uint32_t k = 1;

    w->iovs[i] = s->iov;
    while (gso && i + k < m && k < UL_GSO_MAX_SEGS) {
      const struct slot *t = sent[i + k];
      if (t->iov.iov_len > seg || total + t->iov.iov_len > UL_GSO_MAX_BYTES ||
          memcmp(&t->addr, &s->addr, alen) != 0)
        break;
      w->iovs[i + k] = t->iov;
      total += t->iov.iov_len;
      k++;
      if (t->iov.iov_len < seg) /* a shorter datagram ends the run */
        break;
    }
    memset(&w->msgs[n], 0, sizeof(w->msgs[n]));
    h->msg_name = &s->addr;
    h->msg_namelen = alen;
    h->msg_iov = &w->iovs[i];
    h->msg_iovlen = k;
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

/* Send the encapsulated packets; returns 0 when asked to stop meanwhile. */
static int tx_send(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  struct slot *sent[UL_BATCH_MAX];
  uint32_t i, m = 0, pos = 0;
  bool gso = e->tx_gso;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    if (s->reason == UL_OK) {
      sent[m++] = s;
      continue;
    }
    count_drop(e, s->peer_slot, s->reason);
    if (s->reason == UL_DROP_NO_ROUTE)
      icmp_reply(e, s->buf + UL_TX_HEADROOM, s->len);
  }

  while (pos < m) {
    uint32_t msgs = tx_build(w, sent, pos, m, gso), j = 0;

    while (j < msgs) {
      int r = sendmmsg(e->cfg.udp_fd, &w->msgs[j], msgs - j, 0);

      if (r < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN) {
          if (!wait_fd(e, e->cfg.udp_fd, POLLOUT))
            return 0;
          continue;
        }
        if (w->groups[j].count > 1 && gso_refused(errno)) {
          /* resend this run one datagram each; after repeated refusals
           * stop trying GSO at all */
          gso = false;
          if (++e->tx_gso_refusals >= UL_GSO_MAX_REFUSALS)
            e->tx_gso = false;
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

static void *tx_main(void *arg)
{
  struct worker *w = arg;
  struct ul_engine *e = w->e;

  pthread_setname_np(pthread_self(), "userlay-tx");
  while (wait_fd(e, e->cfg.tun_fd, POLLIN)) {
    uint32_t n = tx_read(w);
    if (n == 0)
      continue;
    tx_encap(w, n);
    if (!tx_send(w, n))
      break;
  }
  return NULL;
}

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
    from_sockaddr(&s->addr, &src);
    s->reason = ul_decap(&e->cfg.codec, fdb, s->buf + UL_RX_OFFSET,
                         w->msgs[i].msg_len, &src, &res);
    if (res.peer != NULL)
      s->peer_slot = res.peer->slot;
    s->off = UL_RX_OFFSET + res.pkt_off;
    s->len = res.pkt_len;
  }
  fdb_leave(w);
}

/* Re-read the TUN MTU, at most once a second (it rarely changes). */
static void rx_refresh_mtu(struct ul_engine *e)
{
  struct timespec now;
  int mtu;

  clock_gettime(CLOCK_MONOTONIC, &now);
  if (now.tv_sec - e->rx_mtu_checked.tv_sec < 1)
    return;
  e->rx_mtu_checked = now;
  mtu = ul_tun_mtu(e->cfg.tun_fd);
  e->rx_mtu = mtu > 0 ? mtu : 0;
}

/*
 * Coalesce the batch and write it to the TUN (ul_tun_write_batch, tun.c),
 * then count each packet: received, dropped by decap, or lost in a write.
 */
static void rx_write(struct worker *w, uint32_t n)
{
  struct ul_engine *e = w->e;
  uint8_t failed[UL_BATCH_MAX];
  bool large = false;
  uint32_t i;

  for (i = 0; i < n; i++) {
    struct slot *s = &w->slots[i];
    w->gro[i].pkt = s->reason == UL_OK ? s->buf + s->off : NULL;
    w->gro[i].len = s->len;
    large |= s->reason == UL_OK && s->len > (size_t)e->rx_mtu;
  }
  if (large) /* a super-frame, or the MTU grew */
    rx_refresh_mtu(e);
  ul_gro_batch(w->gro, n, e->rx_mtu);
  ul_tun_write_batch(e->cfg.tun_fd, w->gro, n, e->rx_mtu, failed);

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

static void *rx_main(void *arg)
{
  struct worker *w = arg;
  struct ul_engine *e = w->e;

  pthread_setname_np(pthread_self(), "userlay-rx");
  while (wait_fd(e, e->cfg.udp_fd, POLLIN)) {
    int n = rx_recv(w);
    if (n == 0)
      continue;
    rx_decap(w, (uint32_t)n);
    rx_write(w, (uint32_t)n);
  }
  return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static void worker_free(struct worker *w, uint32_t batch)
{
  uint32_t i;

  if (w->slots != NULL)
    for (i = 0; i < batch; i++)
      free(w->slots[i].buf);
  free(w->slots);
  free(w->msgs);
  free(w->iovs);
  free(w->groups);
  free(w->gro);
}

static int worker_init(struct worker *w, struct ul_engine *e, bool rx)
{
  uint32_t i, batch = e->cfg.batch;

  w->e = e;
  w->slots = calloc(batch, sizeof(*w->slots));
  w->msgs = calloc(batch, sizeof(*w->msgs));
  w->iovs = calloc(batch, sizeof(*w->iovs));
  w->groups = calloc(batch, sizeof(*w->groups));
  if (rx)
    w->gro = calloc(batch, sizeof(*w->gro));
  if (w->slots == NULL || w->msgs == NULL || w->iovs == NULL ||
      w->groups == NULL || (rx && w->gro == NULL))
    return -ENOMEM;
  for (i = 0; i < batch; i++) {
    struct slot *s = &w->slots[i];
    s->buf = malloc(UL_BUF_SIZE);
    if (s->buf == NULL)
      return -ENOMEM;
    if (rx) { /* the receive iovecs never change */
      s->iov.iov_base = s->buf + UL_RX_OFFSET;
      s->iov.iov_len = UL_BUF_SIZE - UL_RX_OFFSET;
      w->msgs[i].msg_hdr.msg_iov = &s->iov;
      w->msgs[i].msg_hdr.msg_iovlen = 1;
    }
  }
  return 0;
}

int ul_engine_create(const struct ul_engine_cfg *cfg, struct ul_engine **out)
{
  struct ul_engine *e;
  int r;

  if (cfg == NULL || out == NULL || cfg->tun_fd < 0 || cfg->udp_fd < 0 ||
      cfg->counters == NULL || cfg->batch > UL_BATCH_MAX ||
      (cfg->codec.mode != UL_MODE_VXLAN && cfg->codec.mode != UL_MODE_UDP))
    return -EINVAL;
  e = calloc(1, sizeof(*e));
  if (e == NULL)
    return -ENOMEM;
  e->cfg = *cfg;
  if (e->cfg.batch == 0)
    e->cfg.batch = UL_BATCH_DEFAULT;
  e->wake_fd = -1;
  e->tx_gso = true;
  e->icmp_tokens = UL_ICMP_BURST;
  clock_gettime(CLOCK_MONOTONIC, &e->icmp_last);
  pthread_mutex_init(&e->swap_lock, NULL);
  r = worker_init(&e->tx, e, false);
  if (r == 0)
    r = worker_init(&e->rx, e, true);
  if (r < 0) {
    ul_engine_destroy(e);
    return r;
  }
  *out = e;
  return 0;
}

int ul_engine_start(struct ul_engine *e)
{
  sigset_t all, old;
  int r;

  if (e->running)
    return -EALREADY;
  e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->wake_fd < 0)
    return -errno;
  e->rx_mtu = ul_tun_mtu(e->cfg.tun_fd);
  if (e->rx_mtu < 0)
    e->rx_mtu = 0; /* unknown: retried when a large packet arrives */
  clock_gettime(CLOCK_MONOTONIC, &e->rx_mtu_checked);

  /* the threads inherit a fully blocked signal mask */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  r = -pthread_create(&e->tx.thread, NULL, tx_main, &e->tx);
  if (r == 0) {
    r = -pthread_create(&e->rx.thread, NULL, rx_main, &e->rx);
    if (r < 0) {
      uint64_t one = 1;
      (void)!write(e->wake_fd, &one, sizeof(one));
      pthread_join(e->tx.thread, NULL);
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    close(e->wake_fd);
    e->wake_fd = -1;
    return r;
  }
  e->running = true;
  return 0;
}

int ul_engine_stop(struct ul_engine *e)
{
  uint64_t one = 1;

  if (e == NULL || !e->running)
    return 0;
  if (write(e->wake_fd, &one, sizeof(one)) < 0)
    return -errno; /* cannot happen for a fresh eventfd */
  pthread_join(e->tx.thread, NULL);
  pthread_join(e->rx.thread, NULL);
  close(e->wake_fd);
  e->wake_fd = -1;
  e->running = false;
  return 0;
}

void ul_engine_destroy(struct ul_engine *e)
{
  if (e == NULL)
    return;
  ul_engine_stop(e);
  ul_fdb_free(__atomic_exchange_n(&e->fdb, NULL, __ATOMIC_SEQ_CST));
  worker_free(&e->tx, e->cfg.batch);
  worker_free(&e->rx, e->cfg.batch);
  pthread_mutex_destroy(&e->swap_lock);
  free(e);
}
