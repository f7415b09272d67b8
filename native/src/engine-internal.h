/*
 * engine-internal.h — what the engine's three files share: the engine and
 * worker structs, counter updates, the FDB read side, and the thread entry
 * points. Private to native/src/engine*.c (and the engine's C test).
 *
 *   engine.c     pipeline and design notes, FDB replacement, start/stop
 *   engine-tx.c  TUN -> lookup -> encap -> sendmmsg
 *   engine-rx.c  recvmmsg -> validate/decap -> coalesce -> TUN
 */
#ifndef USERLAY_ENGINE_INTERNAL_H
#define USERLAY_ENGINE_INTERNAL_H

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
#define UL_RX_GRO_SEGS 64      /* UDP_GRO_CNT_MAX: datagrams per GRO buffer */
#define UL_RX_GRO_VLEN 8       /* messages per recvmmsg while they are GRO
                                * buffers ("Receive batch" in engine.c) */
#define UL_RX_BIG_MSG 8192     /* a message this long is a GRO buffer */
#define UL_RX_HANDOFF_MAX 4    /* rx batches this small may send the reply
                                * they caused themselves (engine-tx.c) */
#define UL_TX_HANDOFF_IDLE_NS 200000 /* ... when the tx thread has slept this
                                      * long: no stream is flowing */

/* One packet of a batch. */
struct slot {
  uint8_t *buf;               /* UL_BUF_SIZE bytes */
  size_t len;                 /* inner IP length */
  size_t off;                 /* tx: frame offset; rx: inner IP offset */
  int reason;                 /* UL_OK or a drop */
  uint32_t peer_slot;         /* counter slot, 0 = none */
  uint32_t udp;               /* tx: index into cfg.udp (the peer's family) */
  uint32_t txq;               /* tx: index into that set's tx_fds (source port) */
  uint32_t path_mtu;          /* tx: the peer's path MTU (for too big) */
  uint16_t csum_start;        /* tx: a checksum the reader left partial, */
  uint16_t csum_offset;       /* 0 = complete, and whether it may travel */
  bool csum_travels;          /* so (struct ul_tun_pkt) */
  const uint8_t *payload;     /* tx: the last payload_len bytes of the packet */
  size_t payload_len;         /* are there, not in buf (struct ul_tun_pkt) */
  struct sockaddr_storage addr; /* tx: destination; rx: source */
  struct iovec iov;           /* rx: the receive buffer; tx: the frame in buf */
};

/* A message of the tx batch: datagrams sent[first, first + count). The rx
 * thread uses only cmsg, for the UDP_GRO segment size of message i. */
struct tx_group {
  uint32_t first, count;
  union {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int))];
  } cmsg;
};

/* rx: one datagram of a received (possibly UDP GRO) buffer, decapsulated. */
struct rx_dgram {
  uint8_t *pkt;               /* inner IP packet (valid when reason = UL_OK) */
  size_t len;                 /* its length */
  size_t gso_size;            /* a UDP super-frame's datagram payload size, 0 = none */
  int reason;                 /* UL_OK or a drop */
  uint32_t peer_slot;         /* counter slot, 0 = none */
};

/* One engine thread: tx (TUN queue -> UDP) or rx (UDP socket -> TUN queue)
 * of pair `index`, with everything it alone touches. */
struct worker {
  struct ul_engine *e;
  pthread_t thread;
  uint32_t index;             /* thread pair 0..threads-1 */
  bool started;               /* thread created (and not yet joined) */
  int tun_fd;                 /* this pair's TUN queue */
  int udp_fd;                 /* rx: this pair's receive socket (of one family) */
  int family;                 /* rx: that socket's family, 4 or 6 */
  uint64_t seq;               /* see "FDB replacement"; __atomic access */
  struct slot *slots;         /* cfg.batch entries */
  struct mmsghdr *msgs;       /* cfg.batch entries */
  /* tx only: one message may carry a run of datagrams (UDP GSO) */
  struct iovec *iovs;         /* 2 * cfg.batch entries, in send order: the
                               * frame in a slot, and a payload elsewhere */
  struct tx_group *groups;    /* tx only: cfg.batch entries, one per message */
  struct ul_gro_item *gro;    /* rx only: UL_BATCH_MAX entries */
  struct rx_dgram *dgrams;    /* rx only: cfg.batch * UL_RX_GRO_SEGS entries */
  /* rx only: the TUN writer (tun.c): MTU cache for re-segmenting TCP
   * super-segments and as the limit of segments that may coalesce (gro.c),
   * GSO writes on or off */
  struct ul_tun_writer writer;
  /* rx only: UDP GRO buffers split, datagrams they held (relaxed atomics) */
  uint64_t gro_buffers, gro_datagrams;
  uint32_t rx_vlen;           /* rx only: messages the next recvmmsg asks for */
  /* tx only: the TUN read path (tun-read.c), with a super-packet that may
   * continue into the next batch */
  struct ul_tun_reader reader;
  uint64_t partial_csum;      /* tx only: packets sent with the inner
                               * checksum left partial (relaxed atomics) */
  /* tx only: held while one tx pass runs (by this thread, or by the pair's
   * rx thread: engine_tx_after_rx), and set while this thread sleeps */
  pthread_mutex_t tx_lock;
  bool tx_lock_init;
  int64_t tx_asleep_ns;       /* CLOCK_MONOTONIC ns since which this thread
                               * sleeps, 0 = awake; __atomic access */
  uint64_t tx_after_rx;       /* passes the rx thread ran (relaxed atomics) */
  /* tx only: the ICMP rate limit (a token bucket per thread: with N
   * threads at most N times UL_ICMP_RATE), and its packet buffer */
  uint8_t *icmp_buf;          /* UL_VNET_HDR_LEN + UL_ICMP_MAX */
  double icmp_tokens;
  struct timespec icmp_last;
} __attribute__((aligned(64)));

struct ul_engine {
  struct ul_engine_cfg cfg;   /* cfg.threads is 1..UL_THREADS_MAX */
  struct ul_fdb *fdb;         /* current table; __atomic access */
  pthread_mutex_t swap_lock;  /* serialises writers of fdb */
  int wake_fd;                /* eventfd while running, else -1 */
  bool running;
  struct worker *tx;          /* cfg.threads */
  struct worker *rx;          /* n_rx = cfg.threads * cfg.n_udp: set k's pair i at
                               * k * threads + i */
  uint32_t n_rx;
  int udp_family[2];          /* family (4 or 6) of each cfg.udp set */
  /* shared by the tx threads (relaxed atomics): UDP GSO in use (until
   * refused repeatedly), refusals so far */
  int tx_gso;
  unsigned tx_gso_refusals;
};

/* ---- counters ------------------------------------------------------------ */

/* Counters are shared by all tx (or all rx) threads: see "Counters" in
 * engine.c's design notes. */
static inline void bump(uint64_t *c, uint64_t v)
{
  __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

/* Add v to counter idx of the totals and of the peer's slot, if any. */
static inline void count(struct ul_engine *e, uint32_t peer_slot, int idx, uint64_t v)
{
  bump(&e->cfg.counters[idx], v);
  if (peer_slot >= 1 && peer_slot <= e->cfg.max_slot)
    bump(&e->cfg.counters[(size_t)peer_slot * UL_C_SLOT_WIDTH + idx], v);
}

static inline void count_drop(struct ul_engine *e, uint32_t peer_slot, int reason)
{
  count(e, peer_slot, UL_C_DROPS + reason, 1);
}

/* ---- FDB read side --------------------------------------------------------- */

static inline const struct ul_fdb *fdb_enter(struct worker *w)
{
  __atomic_add_fetch(&w->seq, 1, __ATOMIC_SEQ_CST); /* odd */
  return __atomic_load_n(&w->e->fdb, __ATOMIC_SEQ_CST);
}

static inline void fdb_leave(struct worker *w)
{
  __atomic_add_fetch(&w->seq, 1, __ATOMIC_SEQ_CST); /* even */
}

/* Wait until fd has `events` or the engine is woken. 1 = ready, 0 = stop. */
int engine_wait_fd(struct ul_engine *e, int fd, short events);

/* Thread entry points (arg: the struct worker). */
void *engine_tx_main(void *arg);
void *engine_rx_main(void *arg);

/* Called by an rx thread of pair `pair` after a small write to the TUN: if
 * that pair's tx thread has been asleep a while, read and send what the
 * write caused (see "Replies" in engine.c). */
void engine_tx_after_rx(struct ul_engine *e, uint32_t pair);

#endif /* USERLAY_ENGINE_INTERNAL_H */
