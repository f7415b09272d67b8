/*
 * The native forwarding engine: cfg.threads pairs of dedicated threads (1 by
 * default, --threads), one per direction each. Pair i reads TUN queue i and
 * receives on UDP socket i; every pair runs the pipeline below on its own.
 * This file: FDB replacement, waiting, start/stop. The transmit thread is in
 * engine-tx.c, the receive thread in engine-rx.c, what they share in
 * engine-internal.h.
 *
 * Pipeline, transmit (thread "userlay-tx<i>", TUN queue i -> UDP):
 *   1. poll() the pair's TUN queue fd and the wake eventfd; the wake fd
 *      readable = stop.
 *   2. ul_tun_read_batch() (tun-read.c, shared with the js engine): read()
 *      non-blocking, each packet into its own buffer at UL_TX_HEADROOM -
 *      UL_VNET_HDR_LEN: [headroom | virtio_net_hdr | IP] (a super-packet
 *      into the reader's pool), until `batch` packets are ready.
 *   3. In there: parse the virtio_net_hdr; split a TSO/USO super-packet
 *      (offloads on, up to 64 KiB) into segments of gso_size, one buffer
 *      each with complete headers, the payload left in the super-packet
 *      (reader.share_payload); a checksum the kernel left partial stays
 *      so, its place noted (reader.leave_partial); runts and bad headers ->
 *      UL_DROP_TX_MALFORMED. The rest of a super-packet the batch had no
 *      room for is the next pass's, at once (ul_tun_reader_pending).
 *   4. Enter the FDB read side (seq odd), load the current table, and for
 *      each packet ul_encap() in place: the VXLAN + inner Ethernet header goes
 *      into the headroom. Unless the peer takes partial checksums, gather the
 *      payload behind the headers and finish the checksum (tx_checksum,
 *      "Partial checksums" in csum.c). Copy out what the send needs
 *      (destination sockaddr, counter slot, the frame's one or two iovecs);
 *      leave the read side (seq even).
 *   5. A miss (UL_DROP_NO_ROUTE) is counted and answered with an ICMP
 *      destination unreachable written back into the TUN (zero vnet header);
 *      a packet longer than its peer's path MTU that may not be fragmented
 *      (UL_DROP_TOO_BIG, see "Path MTU") likewise with fragmentation
 *      needed / packet too big. Both at most UL_ICMP_RATE per second with
 *      bursts of UL_ICMP_BURST (one bucket per tx thread).
 *   6. sendmmsg() the batch, each packet from the send socket its inner
 *      flow's hash picks among those of its peer entry's underlay family
 *      (cfg.udp[k].tx_fds: one outer UDP source port per flow, as
 *      the kernel vxlan device does; codec.c), in batch order per socket.
 *      All tx threads share these sockets (sendmmsg is thread-safe; a flow
 *      is on one TUN queue, so one thread, and keeps its order).
 *      Consecutive datagrams to one peer with equal
 *      length travel as one message with UDP_SEGMENT (UDP GSO: the stack is
 *      crossed once per run, the receiver still gets separate datagrams);
 *      if the kernel refuses GSO the run is resent datagram by datagram, and
 *      after UL_GSO_MAX_REFUSALS refusals GSO is off for good. A partial send
 *      resumes at the first unsent message; EAGAIN waits for POLLOUT (or the
 *      wake fd); any other error drops that message's datagrams
 *      (UL_DROP_UDP_SEND) and the rest still go.
 *
 * Pipeline, receive (thread "userlay-rx<i>", UDP socket i -> TUN queue i):
 *   1. poll() the pair's UDP socket and the wake eventfd.
 *   2. recvmmsg() up to `batch` messages (UL_RX_GRO_VLEN while they come as
 *      GRO buffers: "Receive batch"), each at UL_RX_OFFSET of its buffer,
 *      with the sender's address and, with UDP_GRO on (offloads auto), the
 *      segment size of a coalesced run in a cmsg.
 *   3. Enter the FDB read side. Cut each buffer into its datagrams
 *      (ul_udp_gro_split: all of the cmsg's size, the last may be shorter),
 *      except a kernel vxlan neighbour's tunnel GSO frame, whose first
 *      datagram's headers cover the whole buffer: it stays whole, and the
 *      cmsg's size is that of its inner UDP datagrams (rx_seg_split);
 *      MSG_TRUNC, a zero size or more than UL_RX_GRO_SEGS datagrams ->
 *      one UL_DROP_UDP_RECV, charged to the sender if it is a peer.
 *      ul_decap() each datagram against the outer source address (flags,
 *      VNI, MAC, inner IP, known peer, anti-spoofing), note its counter
 *      slot; leave the read side.
 *   4. Coalesce (ul_gro_batch, gro.c): in-order TCP segments of one flow in
 *      the batch, or a run of one UDP flow's equal-sized datagrams (where
 *      the TUN takes UDP GSO writes), become one super-packet led by its
 *      first packet, whose headers are rewritten and which gets a GSO
 *      virtio_net_hdr.
 *   5. Write (ul_tun_write_received, tun.c, shared with the js engine), at
 *      most UL_BATCH_MAX datagrams per coalescing window: in
 *      batch order, for each leader one writev() of [vnet hdr | first
 *      packet] and then, for a super-packet, each follower's payload,
 *      straight from the receive buffers. A packet that stands alone gets
 *      the virtio_net_hdr that ul_vnet_hdr_for_rx() chooses (or, for a TCP
 *      packet longer than the TUN MTU, the GSO header of
 *      ul_tun_gso_for_rx()). Counters count the original packets; a failed
 *      write (EAGAIN included) counts UL_DROP_TUN_WRITE for each packet it
 *      carried. A kernel that refuses GSO writes (probed at create with
 *      cfg.probe_tun_gso, or EINVAL/EIO at run time) gets software segments
 *      instead, and no more coalescing (TCP and UDP each on their own).
 *
 * Design notes
 *   - Path MTU: each FDB peer carries the largest inner packet the path to
 *     it carries (struct ul_fdb_peer.mtu: the smaller underlay MTU of the
 *     two nodes minus the encapsulation, worked out in JS; 0 = unknown, no
 *     check). The TUN MTU is normally no larger, but it may be (an
 *     explicit --mtu above the path, a peer with a smaller underlay that
 *     joined after the pods got their MTU), and a TSO segment is cut to the
 *     sender's MSS, not to the path. ul_encap refuses such a packet when it
 *     is IPv6 or IPv4 with DF, and the sender gets ICMP too big with the
 *     peer's path MTU: PMTU discovery (RFC 1191, RFC 8201) lowers its MSS
 *     instead of the packet vanishing. IPv4 without DF is sent on and the
 *     kernel fragments the outer UDP datagram (as the kernel vxlan device
 *     does): the receiver reassembles it before decap, which costs but is
 *     correct, and the inner packet stays whole (we never fragment it).
 *   - Threads (--threads N): the TUN is multi-queue (IFF_MULTI_QUEUE, one fd
 *     per queue; the kernel picks a packet's queue by its flow hash) and the
 *     tunnel port is a SO_REUSEPORT group of N sockets (the kernel picks by
 *     the outer 4-tuple; how a second agent is still refused: udp.c). So one
 *     inner flow is read by one tx thread and one outer flow received by one
 *     rx thread, and per-flow order holds without any cross-thread handoff.
 *     Everything a thread touches per packet is its own (struct worker:
 *     buffers, TUN reader with a super-packet continued across batches, TUN
 *     writer with its MTU cache and GSO-refused state, ICMP token bucket, so
 *     with N threads at most N x UL_ICMP_RATE errors per second) except the
 *     counters, the FDB and the UDP GSO refusal count (relaxed atomics). With
 *     N = 1 the TUN is single-queue and the socket a plain one, as before.
 *   - Counters: slot 0 holds totals, slot k the peer whose `slot` is k (slots
 *     above max_slot count only in the totals). With several tx (rx) threads
 *     a counter has several writers, so every increment is a relaxed
 *     __atomic_fetch_add on the one shared block: JS keeps reading one
 *     BigUint64Array of the same layout without a call, and never sees a
 *     torn value. The alternative, a block per thread summed by the reader,
 *     avoids the locked add and the cache-line sharing between cores but
 *     changes the layout JS reads. Measured (tight loop, -O2, the shared
 *     2-core machine under other load): a relaxed fetch_add costs 5.4 ns
 *     alone and 14 ns when two cores add to the same counter, against
 *     under 1 ns for load + store. A packet makes 4 increments (totals and
 *     peer slot, packets and bytes): 22-56 ns, 1.5% of a core at the
 *     ~270 kpps per direction this machine forwards, while a packet costs
 *     about a microsecond. Totals were already shared between the tx and rx
 *     threads of one pair before, so the one-block layout was kept. A failed
 *     ICMP write is not counted.
 *   - FDB replacement is quiescent-state based, without locks on the hot path.
 *     Each thread (all 2N of them) owns a sequence number, odd while it may hold a table
 *     pointer (one batch of encap/decap), even otherwise; it is even whenever
 *     the thread blocks (poll, POLLOUT wait, TUN writes). ul_engine_set_fdb
 *     exchanges the pointer, then for each thread samples the sequence: even
 *     means it holds nothing, odd means wait until the value changes (that
 *     batch, which may have loaded the old table, has ended; the next one
 *     loads the new table). Then the old table is freed. Sequence stores and
 *     the table load/exchange are sequentially consistent, so either the
 *     thread sees the new table or the writer sees the odd sequence. The wait
 *     is bounded by one batch of pure computation (no syscalls).
 *   - Dual stack (cfg.n_udp = 2): one socket set per underlay family, both
 *     on the tunnel port. A dual-stack peer has two FDB entries, one per
 *     family with its own address and VTEP MAC, sharing its counter slot;
 *     each route points at the entry of the family its packets travel over
 *     (JS decides, src/dataplane/fdb.ts). tx picks the set by the entry's
 *     family; a family without a set drops as UL_DROP_UDP_SEND. Each set
 *     has its own rx thread per pair (a thread waits on one socket), both
 *     writing the pair's TUN queue with a TUN writer each; a flow arrives
 *     over one family, so on one thread, and keeps its order. Decap finds
 *     the entry by the outer source of either family, and anti-spoofing
 *     accepts an inner source of any entry of that slot. One code path:
 *     everything per family is an index into cfg.udp.
 *   - Replies: a packet the rx thread writes to the TUN is delivered in that
 *     write's softirq, and what it makes the node answer at once (an echo
 *     reply, a TCP ACK or response) is in the TUN queue when write()
 *     returns. The pair's tx thread is woken for it, but on another CPU
 *     that has gone idle, waking costs tens of microseconds (measured on
 *     the 2-vCPU test guest: 50-90 us, bench/RESULTS.md), once per round
 *     trip. So after a batch of at most UL_RX_HANDOFF_MAX datagrams, if the
 *     tx thread has slept for UL_TX_HANDOFF_IDLE_NS or more (no stream is
 *     flowing: under load it never sleeps that long, and the pipeline of two
 *     threads stays as it is), the rx thread runs one tx pass itself under
 *     the tx worker's tx_lock (trylock: never waits for it). The tx thread
 *     takes the lock for each pass, so the worker's reader, buffers and
 *     FDB sequence still have one user at a time, and finds the queue empty
 *     when it comes. Measured A/B in one run: ping RTT p50 203 -> 171-173 us,
 *     throughput unchanged (bench/RESULTS.md).
 *   - Stop writes the eventfd once; nobody reads it, so it stays readable and
 *     every thread polls it in every wait: all 2N wake, a thread blocked on
 *     POLLOUT or on an idle fd too, and stop joins them all. Start that
 *     fails half-way wakes and joins the threads it made. The eventfd lives
 *     from start to stop, so a stopped engine may be started again.
 *   - ICMP errors enter the TUN from cfg.icmp_src4/6. The kernel drops a
 *     packet whose source is one of its own addresses (martian source) unless
 *     accept_local is set on the TUN, so the source is either a non-local
 *     address routed through the TUN or the TUN has accept_local=1.
 *   - Threads block all signals: Node's main thread keeps handling them.
 *   - Offloads (--offloads auto; the TUN and socket options are set by the
 *     data plane, src/dataplane/offloads.ts). One TUN read may return a
 *     64 KiB TSO/USO super-packet: tun-read.c splits it into segments, one
 *     buffer each, so the segments of one super-packet are a run of
 *     equal-sized datagrams to one peer and step 6 sends them as one
 *     UDP_SEGMENT message (at most UL_GSO_MAX_SEGS datagrams and
 *     UL_GSO_MAX_BYTES). The peer's UDP_GRO socket receives that run as one
 *     buffer again (rx step 3 cuts it), and its TCP runs are coalesced into
 *     one GSO write to its TUN: the wire carries MTU-sized datagrams, but
 *     neither kernel crosses its stack per segment. With offloads off, every
 *     read is one packet and every receive one datagram, as before.
 *   - Receive batch: recvmmsg asks for UL_RX_GRO_VLEN messages at first
 *     and after any call that brought a message of UL_RX_BIG_MSG or more (a
 *     GRO buffer: up to 64 KiB each, so half a megabyte, which pays for the
 *     call many times over); a call that filled them all with small ones
 *     (single datagrams: a kernel vxlan peer, offloads off, small packets)
 *     asks for the whole batch next time. Asking for 64 GRO buffers (4 MiB,
 *     out of cache before it reached the TUN) read 6% slower in A/B runs and
 *     kept 64 x 64 KiB of receive buffers resident (bench/RESULTS.md,
 *     "Receive batch").
 */
#include "engine-internal.h"

/* ---- FDB replacement ---------------------------------------------------- */

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

  uint32_t i;

  pthread_mutex_lock(&e->swap_lock);
  old = __atomic_exchange_n(&e->fdb, fdb, __ATOMIC_SEQ_CST);
  for (i = 0; i < e->cfg.threads; i++)
    fdb_wait_quiescent(&e->tx[i]);
  for (i = 0; i < e->n_rx; i++)
    fdb_wait_quiescent(&e->rx[i]);
  pthread_mutex_unlock(&e->swap_lock);
  ul_fdb_free(old);
}

/* ---- waiting ---------------------------------------------------------------- */

/* See engine-internal.h. */
int engine_wait_fd(struct ul_engine *e, int fd, short events)
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

/* ---- lifecycle -------------------------------------------------------------------- */

static void worker_free(struct worker *w, uint32_t batch)
{
  uint32_t i;

  if (w->e == NULL)
    return; /* never initialised */
  if (w->slots != NULL)
    for (i = 0; i < batch; i++)
      free(w->slots[i].buf);
  free(w->slots);
  free(w->msgs);
  free(w->iovs);
  free(w->groups);
  free(w->gro);
  free(w->dgrams);
  free(w->icmp_buf);
  ul_tun_reader_free(&w->reader);
  ul_tun_writer_free(&w->writer);
  if (w->tx_lock_init)
    pthread_mutex_destroy(&w->tx_lock);
}

/* Worker of pair `index`; an rx worker receives on socket set `set`. */
static int worker_init(struct worker *w, struct ul_engine *e, uint32_t index,
                       bool rx, uint32_t set)
{
  const struct ul_engine_udp *u = &e->cfg.udp[set];
  uint32_t i, batch = e->cfg.batch;
  int r;

  w->e = e;
  w->index = index;
  w->tun_fd = index == 0 ? e->cfg.tun_fd : e->cfg.tun_fds[index];
  w->udp_fd = index == 0 ? u->udp_fd : u->udp_fds[index];
  w->family = e->udp_family[set];
  w->slots = calloc(batch, sizeof(*w->slots));
  w->msgs = calloc(batch, sizeof(*w->msgs));
  w->iovs = calloc(2 * (size_t)batch, sizeof(*w->iovs));
  w->groups = calloc(batch, sizeof(*w->groups));
  if (rx) {
    w->rx_vlen = batch < UL_RX_GRO_VLEN ? batch : UL_RX_GRO_VLEN;
    w->gro = calloc(UL_BATCH_MAX, sizeof(*w->gro));
    w->dgrams = calloc((size_t)batch * UL_RX_GRO_SEGS, sizeof(*w->dgrams));
    r = ul_tun_writer_init(&w->writer, w->tun_fd);
    w->writer.test_refuse_gso = e->cfg.test_refuse_tun_gso;
  } else {
    w->icmp_buf = malloc(UL_VNET_HDR_LEN + UL_ICMP_MAX);
    w->icmp_tokens = UL_ICMP_BURST;
    clock_gettime(CLOCK_MONOTONIC, &w->icmp_last);
    r = ul_tun_reader_init(&w->reader, w->tun_fd, e->cfg.counters);
    w->reader.leave_partial = true; /* finished per peer: tx_checksum() */
    w->reader.share_payload = true; /* gathered per peer: tx_checksum() */
    if (r == 0) {
      r = -pthread_mutex_init(&w->tx_lock, NULL);
      w->tx_lock_init = r == 0;
    }
  }
  if (r < 0)
    return r;
  if (w->slots == NULL || w->msgs == NULL || w->iovs == NULL ||
      w->groups == NULL || (rx && (w->gro == NULL || w->dgrams == NULL)) ||
      (!rx && w->icmp_buf == NULL))
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

/* The family (4 or 6) of a bound socket, or -errno. */
static int socket_family(int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);

  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return -errno;
  return ss.ss_family == AF_INET ? 4 : ss.ss_family == AF_INET6 ? 6 : -EAFNOSUPPORT;
}

/* Check cfg->udp[0 .. n_udp) for n thread pairs and note each set's family
 * in fam[]: 0 or -EINVAL (bad fd, two sets of one family). */
static int check_udp_sets(const struct ul_engine_cfg *cfg, uint32_t n_udp,
                          uint32_t n, int fam[2])
{
  uint32_t k, i;

  for (k = 0; k < n_udp; k++) {
    const struct ul_engine_udp *u = &cfg->udp[k];
    if (u->udp_fd < 0 || u->n_tx_fds > UL_TX_FDS_MAX)
      return -EINVAL;
    for (i = 1; i < n; i++)
      if (u->udp_fds[i] < 0)
        return -EINVAL;
    fam[k] = socket_family(u->udp_fd);
    if (fam[k] < 0)
      return fam[k] == -EAFNOSUPPORT ? -EINVAL : fam[k];
    if (k > 0 && fam[k] == fam[0])
      return -EINVAL;
  }
  return 0;
}

int ul_engine_create(const struct ul_engine_cfg *cfg, struct ul_engine **out)
{
  struct ul_engine *e;
  uint32_t i, n, n_udp;
  int r = 0, fam[2] = { 0, 0 };

  if (cfg == NULL || out == NULL || cfg->tun_fd < 0 ||
      cfg->counters == NULL || cfg->batch > UL_BATCH_MAX ||
      cfg->n_udp > 2 || cfg->threads > UL_THREADS_MAX ||
      (cfg->codec.mode != UL_MODE_VXLAN && cfg->codec.mode != UL_MODE_UDP))
    return -EINVAL;
  n = cfg->threads == 0 ? 1 : cfg->threads;
  n_udp = cfg->n_udp == 0 ? 1 : cfg->n_udp;
  for (i = 1; i < n; i++)
    if (cfg->tun_fds[i] < 0)
      return -EINVAL;
  r = check_udp_sets(cfg, n_udp, n, fam);
  if (r < 0)
    return r;
  e = calloc(1, sizeof(*e));
  if (e == NULL)
    return -ENOMEM;
  e->cfg = *cfg;
  e->cfg.threads = n;
  e->cfg.n_udp = n_udp;
  e->n_rx = n * n_udp;
  memcpy(e->udp_family, fam, sizeof(fam));
  if (e->cfg.batch == 0)
    e->cfg.batch = UL_BATCH_DEFAULT;
  e->wake_fd = -1;
  e->tx_gso = 1;
  pthread_mutex_init(&e->swap_lock, NULL);
  e->tx = aligned_alloc(64, n * sizeof(*e->tx));
  e->rx = aligned_alloc(64, e->n_rx * sizeof(*e->rx));
  if (e->tx == NULL || e->rx == NULL) {
    ul_engine_destroy(e);
    return -ENOMEM;
  }
  memset(e->tx, 0, n * sizeof(*e->tx));
  memset(e->rx, 0, e->n_rx * sizeof(*e->rx));
  for (i = 0; i < n && r == 0; i++)
    r = worker_init(&e->tx[i], e, i, false, 0);
  for (i = 0; i < e->n_rx && r == 0; i++)
    r = worker_init(&e->rx[i], e, i % n, true, i / n);
  /* One probe answers for the device (all queues share its features): what
   * it found (TCP GSO writes refused, UDP GSO writes taken) goes to every
   * queue's writer. */
  if (r == 0 && cfg->probe_tun_gso) {
    (void)ul_tun_writer_probe(&e->rx[0].writer);
    for (i = 1; i < e->n_rx; i++) {
      e->rx[i].writer.gso = e->rx[0].writer.gso;
      e->rx[i].writer.uso = e->rx[0].writer.uso;
    }
  }
  if (r < 0) {
    ul_engine_destroy(e);
    return r;
  }
  *out = e;
  return 0;
}

/* Wake and join the threads started so far (see "Stop"). */
static void engine_join(struct ul_engine *e)
{
  uint32_t i;

  for (i = 0; i < e->cfg.threads; i++) {
    if (e->tx[i].started)
      pthread_join(e->tx[i].thread, NULL);
    e->tx[i].started = false;
  }
  for (i = 0; i < e->n_rx; i++) {
    if (e->rx[i].started)
      pthread_join(e->rx[i].thread, NULL);
    e->rx[i].started = false;
  }
}

int ul_engine_start(struct ul_engine *e)
{
  sigset_t all, old;
  uint32_t i;
  int r = 0;

  if (e->running)
    return -EALREADY;
  e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->wake_fd < 0)
    return -errno;
  for (i = 0; i < e->n_rx; i++) /* read on first use */
    e->rx[i].writer.mtu = (struct ul_tun_mtu_cache)UL_TUN_MTU_CACHE_INIT;

  /* the threads inherit a fully blocked signal mask */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (i = 0; i < e->cfg.threads && r == 0; i++) {
    r = -pthread_create(&e->tx[i].thread, NULL, engine_tx_main, &e->tx[i]);
    e->tx[i].started = r == 0;
  }
  for (i = 0; i < e->n_rx && r == 0; i++) {
    r = -pthread_create(&e->rx[i].thread, NULL, engine_rx_main, &e->rx[i]);
    e->rx[i].started = r == 0;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    uint64_t one = 1;
    (void)!write(e->wake_fd, &one, sizeof(one));
    engine_join(e);
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
  engine_join(e);
  close(e->wake_fd);
  e->wake_fd = -1;
  e->running = false;
  return 0;
}

void ul_engine_stats(const struct ul_engine *e, struct ul_engine_stats *st)
{
  uint32_t i, k;

  memset(st, 0, sizeof(*st));
  st->tun_gso = 1;
  st->tun_uso = e->n_rx > 0;
  for (i = 0; i < e->cfg.threads; i++) {
    const struct worker *t = &e->tx[i];
    st->tso_packets += __atomic_load_n(&t->reader.supers, __ATOMIC_RELAXED);
    st->tso_segments += __atomic_load_n(&t->reader.segments, __ATOMIC_RELAXED);
    st->partial_csum += __atomic_load_n(&t->partial_csum, __ATOMIC_RELAXED);
    st->tx_after_rx += __atomic_load_n(&t->tx_after_rx, __ATOMIC_RELAXED);
  }
  for (i = 0; i < e->n_rx; i++) {
    const struct worker *r = &e->rx[i];
    st->gro_buffers += __atomic_load_n(&r->gro_buffers, __ATOMIC_RELAXED);
    st->gro_datagrams += __atomic_load_n(&r->gro_datagrams, __ATOMIC_RELAXED);
    if (!__atomic_load_n(&r->writer.gso, __ATOMIC_RELAXED))
      st->tun_gso = 0; /* in use only while every queue has it */
    if (!__atomic_load_n(&r->writer.uso, __ATOMIC_RELAXED))
      st->tun_uso = 0;
    st->tun_gso_refused += __atomic_load_n(&r->writer.gso_refused, __ATOMIC_RELAXED);
    st->tun_soft_segments += __atomic_load_n(&r->writer.soft_segments, __ATOMIC_RELAXED);
    for (k = 0; k < 2; k++) {
      st->tun_runs[k] += __atomic_load_n(&r->writer.runs[k], __ATOMIC_RELAXED);
      st->tun_run_packets[k] += __atomic_load_n(&r->writer.run_packets[k], __ATOMIC_RELAXED);
    }
  }
}

void ul_engine_destroy(struct ul_engine *e)
{
  uint32_t i;

  if (e == NULL)
    return;
  ul_engine_stop(e);
  ul_fdb_free(__atomic_exchange_n(&e->fdb, NULL, __ATOMIC_SEQ_CST));
  for (i = 0; i < e->cfg.threads; i++)
    if (e->tx != NULL)
      worker_free(&e->tx[i], e->cfg.batch);
  for (i = 0; i < e->n_rx; i++)
    if (e->rx != NULL)
      worker_free(&e->rx[i], e->cfg.batch);
  free(e->tx);
  free(e->rx);
  pthread_mutex_destroy(&e->swap_lock);
  free(e);
}
