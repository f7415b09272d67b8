/*
 * test-gro-write.c — writing coalesced groups to the TUN
 * (ul_tun_write_batch in tun.c), no privileges needed.
 *
 * The writes go into a SOCK_SEQPACKET pair, where each writev() is one
 * record to compare with what the TUN must be given; each super-packet is
 * then cut apart as the kernel's TCP GSO would (gro-pkt.h) and must give
 * back the original segments. The merging rules are test-gro.c.
 */
#include "../src/gro.c"
#include "../src/tun.c"

#include <errno.h>
#include <sys/socket.h>

#include "check.h"
#include "gro-pkt.h"

/* Receive one record of a write into out; its length, or -errno. */
static ssize_t next_record(int fd, uint8_t *out, size_t cap)
{
  ssize_t r = recv(fd, out, cap, MSG_DONTWAIT);
  return r < 0 ? -errno : r;
}

static void test_write_batch(void)
{
  static uint8_t rec[70000], want[70000];
  const struct spec udp = { .udp = 1, .seq = 5, .payload = 100, .sport = 40001 };
  uint8_t failed[NBUF];
  struct ul_tun_writer w, bad;
  struct ul_vnet_hdr vh;
  size_t len;
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  CHECK_EQ(ul_tun_writer_init(&w, sv[0]), 0);
  CHECK_EQ(ul_tun_writer_init(&bad, -1), 0);
  reset();
  build_run(0, 3, full, 0);
  build(3, udp);
  build(4, full);
  items[4].pkt = NULL; /* dropped by decap */
  ul_gro_batch(items, 5, 1500, UL_GRO_TCP);
  CHECK_EQ(items[0].count, 3);
  CHECK_EQ(ul_tun_write_batch(&w, items, 5, 1500, failed), 0);
  CHECK(memchr(failed, 1, 5) == NULL);

  /* the super-packet: [its GSO header | leader | followers' payloads] */
  memcpy(want, &items[0].vh, UL_VNET_HDR_LEN);
  len = UL_VNET_HDR_LEN + gather(0, want + UL_VNET_HDR_LEN);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), len);
  CHECK(memcmp(rec, want, len) == 0);
  CHECK_EQ(segment_and_compare(0), 3);
  /* the packet that stands alone: [ul_vnet_hdr_for_rx's header | packet] */
  memset(&vh, 0, sizeof(vh));
  ul_vnet_hdr_for_rx(items[3].pkt, items[3].len, &vh);
  memcpy(want, &vh, UL_VNET_HDR_LEN);
  memcpy(want + UL_VNET_HDR_LEN, orig[3], orig_len[3]);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), UL_VNET_HDR_LEN + orig_len[3]);
  CHECK(memcmp(rec, want, UL_VNET_HDR_LEN + orig_len[3]) == 0);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN); /* nothing else */

  /* a failed write fails every packet it carried, absent ones excluded */
  CHECK_EQ(ul_tun_write_batch(&bad, items, 5, 1500, failed), 4);
  CHECK(failed[0] && failed[1] && failed[2] && failed[3] && !failed[4]);
  CHECK_EQ(ul_tun_write_batch(&bad, items, 5, 1500, NULL), 4);

  /* a TCP packet longer than the MTU goes as GSO at mss = mtu - headers */
  reset();
  build(0, full);
  ul_gro_batch(items, 1, 500, UL_GRO_TCP);
  CHECK_EQ(ul_tun_write_batch(&w, items, 1, 500, failed), 0);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), UL_VNET_HDR_LEN + orig_len[0]);
  memcpy(&vh, rec, sizeof(vh));
  CHECK_EQ(vh.gso_type, 1);
  CHECK_EQ(vh.gso_size, 500 - 20 - 20 - TS_LEN);
  CHECK_EQ(vh.flags, UL_VNET_F_NEEDS_CSUM);
  CHECK(memcmp(rec + UL_VNET_HDR_LEN + 20 + 20, orig[0] + 20 + 20,
               orig_len[0] - 40) == 0); /* payload and options as they were */
  CHECK_EQ(bad.gso, 1); /* EBADF is not a GSO refusal */
  close(sv[0]);
  close(sv[1]);
  ul_tun_writer_free(&w);
  ul_tun_writer_free(&bad);
}

/* Check that the next records are orig[from..to) each as a plain write. */
static void expect_plain(int fd, int from, int to)
{
  static uint8_t rec[70000];
  static const uint8_t zero[UL_VNET_HDR_LEN];
  int i;

  for (i = from; i < to; i++) {
    ssize_t n = next_record(fd, rec, sizeof(rec));
    CHECK_EQ(n, (ssize_t)(UL_VNET_HDR_LEN + orig_len[i]));
    if (n == (ssize_t)(UL_VNET_HDR_LEN + orig_len[i])) {
      CHECK(memcmp(rec, zero, UL_VNET_HDR_LEN) == 0);
      CHECK(memcmp(rec + UL_VNET_HDR_LEN, orig[i], orig_len[i]) == 0);
    }
  }
}

/*
 * A TUN that refuses GSO writes (the test hook answers EINVAL as those
 * kernels do): the refused super-packet goes out as software segments equal
 * to the original packets, GSO is off and counted, and later batches are not
 * coalesced. The probe, refused, turns GSO off too.
 */
static void test_gso_refused(void)
{
  static uint8_t rec[70000];
  struct ul_tun_writer w;
  uint8_t failed[NBUF];
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  CHECK_EQ(ul_tun_writer_init(&w, sv[0]), 0);
  CHECK_EQ(w.uso, 0); /* UDP GSO writes only once the probe found them taken */
  CHECK_EQ(ul_tun_writer_probe(&w), 1); /* a socket takes anything */
  CHECK(next_record(sv[1], rec, sizeof(rec)) == UL_VNET_HDR_LEN + 56);
  CHECK_EQ(rec[1], 1); /* TCPv4 */
  CHECK(next_record(sv[1], rec, sizeof(rec)) == UL_VNET_HDR_LEN + 44);
  CHECK_EQ(rec[1], 5); /* UDP_L4 */
  CHECK_EQ(w.uso, 1);
  w.test_refuse_gso = 1;
  w.mtu.mtu = 1500; /* a socket has no MTU: as if the TUN had 1500 */

  reset();
  build_run(0, 3, full, 0);
  CHECK_EQ(ul_tun_write_received(&w, items, 3, failed), 0);
  CHECK_EQ(items[0].count, 3); /* coalesced before the refusal was known */
  CHECK_EQ(w.gso, 0);
  CHECK_EQ(w.gso_refused, 1);
  CHECK_EQ(w.soft_segments, 3);
  expect_plain(sv[1], 0, 3);

  reset();
  build_run(0, 3, full, 0);
  CHECK_EQ(ul_tun_write_received(&w, items, 3, failed), 0);
  CHECK_EQ(items[0].count, 1); /* GSO off: nothing coalesces */
  expect_plain(sv[1], 0, 3);

  /* a super-frame longer than the MTU: cut in software at the MTU */
  reset();
  build(0, full);
  ul_gro_batch(items, 1, 500, UL_GRO_TCP);
  CHECK_EQ(ul_tun_write_batch(&w, items, 1, 500, failed), 0);
  {
    size_t hl = 20 + 20 + TS_LEN, mss = 500 - hl, left = orig_len[0] - hl, got = 0;
    ssize_t n;
    while ((n = next_record(sv[1], rec, sizeof(rec))) > 0) {
      CHECK((size_t)n <= UL_VNET_HDR_LEN + 500);
      CHECK(ul_csum_fold(ul_csum_partial(rec + UL_VNET_HDR_LEN + 20, (size_t)n - UL_VNET_HDR_LEN - 20,
                                         pseudo_proto(rec + UL_VNET_HDR_LEN, 6, (size_t)n - UL_VNET_HDR_LEN - 20))) == 0);
      CHECK(memcmp(rec + UL_VNET_HDR_LEN + hl, orig[0] + hl + got, (size_t)n - UL_VNET_HDR_LEN - hl) == 0);
      got += (size_t)n - UL_VNET_HDR_LEN - hl;
    }
    CHECK_EQ(got, left);
    CHECK(mss > 0);
  }

  /* a fresh writer whose probes are refused starts with both off */
  ul_tun_writer_free(&w);
  CHECK_EQ(ul_tun_writer_init(&w, sv[0]), 0);
  w.test_refuse_gso = 1;
  CHECK_EQ(ul_tun_writer_probe(&w), 0);
  CHECK_EQ(w.gso, 0);
  CHECK_EQ(w.uso, 0);
  CHECK_EQ(w.gso_refused, 2);
  reset();
  build_udp_run(0, 3, (struct spec){ .payload = 1000 });
  CHECK_EQ(ul_tun_write_received(&w, items, 3, failed), 0);
  CHECK_EQ(items[0].count, 1); /* nothing coalesces */
  expect_plain(sv[1], 0, 3);
  ul_tun_writer_free(&w);
  close(sv[0]);
  close(sv[1]);
}

/*
 * UDP runs: written as one UDP GSO packet once the probe found those taken;
 * a UDP GSO write refused at run time goes out as the original datagrams
 * and turns UDP GSO writes off alone (TCP keeps coalescing).
 */
static void test_udp_write(void)
{
  static uint8_t rec[70000], want[70000];
  struct ul_tun_writer w;
  uint8_t failed[NBUF];
  size_t len;
  int sv[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  CHECK_EQ(ul_tun_writer_init(&w, sv[0]), 0);
  w.mtu.mtu = 1500;
  reset();
  build_udp_run(0, 4, (struct spec){ .payload = 1000 });
  CHECK_EQ(ul_tun_write_received(&w, items, 4, failed), 0);
  CHECK_EQ(items[0].count, 1); /* not probed: UDP goes one by one */
  expect_plain(sv[1], 0, 4);

  CHECK_EQ(ul_tun_writer_probe(&w), 1);
  CHECK(next_record(sv[1], rec, sizeof(rec)) > 0);
  CHECK(next_record(sv[1], rec, sizeof(rec)) > 0);
  reset();
  build_udp_run(0, 4, (struct spec){ .payload = 1000 });
  CHECK_EQ(ul_tun_write_received(&w, items, 4, failed), 0);
  CHECK_EQ(items[0].count, 4);
  memcpy(want, &items[0].vh, UL_VNET_HDR_LEN);
  len = UL_VNET_HDR_LEN + gather(0, want + UL_VNET_HDR_LEN);
  CHECK_EQ(len, UL_VNET_HDR_LEN + 28 + 4 * 1000);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), len);
  CHECK(memcmp(rec, want, len) == 0);
  CHECK_EQ(segment_and_compare(0), 4);

  w.test_refuse_gso = 1;
  reset();
  build_udp_run(0, 4, (struct spec){ .payload = 1000 });
  CHECK_EQ(ul_tun_write_received(&w, items, 4, failed), 0);
  CHECK_EQ(w.uso, 0);
  CHECK_EQ(w.gso, 1);
  CHECK_EQ(w.gso_refused, 1);
  CHECK_EQ(w.soft_segments, 4);
  expect_plain(sv[1], 0, 4); /* cut in software with complete checksums */
  w.test_refuse_gso = 0;
  reset();
  build_udp_run(0, 2, (struct spec){ .payload = 1000 });
  build_run(2, 3, full, 0);
  CHECK_EQ(ul_tun_write_received(&w, items, 5, failed), 0);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[2].count, 3); /* TCP still coalesces */
  expect_plain(sv[1], 0, 2);
  CHECK(next_record(sv[1], rec, sizeof(rec)) == (ssize_t)(UL_VNET_HDR_LEN + items[2].total));
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN);
  ul_tun_writer_free(&w);
  close(sv[0]);
  close(sv[1]);
}

/*
 * A UDP super-frame (a kernel vxlan neighbour's pod sending with UDP_SEGMENT:
 * the inner packet arrives whole, its datagram size from the cmsg): written
 * as UDP GSO at the sender's size, so the pieces are the sender's datagrams;
 * one that does not hold up is not written (whole, its datagrams would become
 * one); with UDP GSO writes off it is cut in software at the same size.
 */
static void test_udp_super_frame(void)
{
  static uint8_t sup[70000], rec[70000], seg[2048];
  struct ul_tun_writer w;
  struct ul_vnet_hdr vh;
  struct ul_gro_item it;
  size_t total, off;
  int sv[2], k, bad;

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  CHECK_EQ(ul_tun_writer_init(&w, sv[0]), 0);
  w.uso = 1;
  w.mtu.mtu = 1500; /* a socket has no MTU: as if the TUN had 1500 */
  reset();
  build_udp_run(0, 8, (struct spec){ .payload = 1000 });
  ul_gro_batch(items, 8, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 8);
  total = gather(0, sup); /* what the sender's kernel built: length and partial field for the whole */

  for (bad = 0; bad <= 4; bad++) {
    memset(&it, 0, sizeof(it));
    it.pkt = sup;
    it.len = total;
    it.count = 1;
    it.next = UL_GRO_END;
    it.gso_size = bad == 1 ? 0 : bad == 2 ? 1500 - 28 + 1 : 1000; /* none; datagrams past the MTU */
    if (bad == 3)
      sup[20 + 7] ^= 1; /* not the partial field */
    if (bad == 4)
      sup[20 + 5] ^= 4; /* a UDP length that does not fit */
    /* without the sender's size it goes whole (a datagram as far as anyone
     * can tell); with it, what does not hold up is not written at all:
     * whole, its datagrams would reach the pod as one */
    CHECK_EQ(ul_tun_write_batch(&w, &it, 1, 1500, NULL), bad >= 2 ? 1u : 0u);
    if (bad == 3)
      sup[20 + 7] ^= 1;
    if (bad == 4)
      sup[20 + 5] ^= 4;
    if (bad >= 2) {
      CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN);
      continue;
    }
    CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), (ssize_t)(UL_VNET_HDR_LEN + total));
    memcpy(&vh, rec, sizeof(vh));
    if (bad == 1) {
      CHECK_EQ(vh.gso_type, 0);
      continue;
    }
    CHECK_EQ(vh.gso_type, 5);
    CHECK_EQ(vh.gso_size, 1000);
    CHECK_EQ(vh.hdr_len, 28);
    CHECK_EQ(vh.csum_start, 20);
    CHECK_EQ(vh.csum_offset, 6);
    for (k = 0, off = 28; off < total; k++) {
      size_t n = cut_piece(rec + UL_VNET_HDR_LEN, total, &vh, off, k, seg);
      CHECK(k < 8 && n == orig_len[k] && memcmp(seg, orig[k], n) == 0);
      off += n - 28;
    }
    CHECK_EQ(k, 8);
  }

  /* a short one (4 datagrams of 2 bytes, shorter than the MTU) is several
   * datagrams all the same, and never coalesces with what follows */
  reset();
  build_udp_run(0, 4, (struct spec){ .payload = 2 });
  ul_gro_batch(items, 4, 1500, UL_GRO_UDP);
  CHECK_EQ(items[0].count, 4);
  total = gather(0, sup);
  reset();
  build_udp_run(1, 3, (struct spec){ .payload = 8, .seq = 9 });
  memcpy(bufs[0] + HEADROOM, sup, total);
  items[0].pkt = bufs[0] + HEADROOM;
  items[0].len = total;
  items[0].gso_size = 2;
  CHECK_EQ(ul_tun_write_received(&w, items, 4, NULL), 0);
  CHECK_EQ(items[0].count, 1);
  CHECK_EQ(items[1].count, 3);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), (ssize_t)(UL_VNET_HDR_LEN + total));
  memcpy(&vh, rec, sizeof(vh));
  CHECK_EQ(vh.gso_type, 5);
  CHECK_EQ(vh.gso_size, 2);
  CHECK(next_record(sv[1], rec, sizeof(rec)) > 0); /* the run of three */
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN);

  reset();
  build_udp_run(0, 8, (struct spec){ .payload = 1000 });
  ul_gro_batch(items, 8, 1500, UL_GRO_UDP);
  total = gather(0, sup);
  w.uso = 0; /* refused earlier: cut in software at the sender's size */
  memset(&it, 0, sizeof(it));
  it.pkt = sup;
  it.len = total;
  it.count = 1;
  it.next = UL_GRO_END;
  it.gso_size = 1000;
  CHECK_EQ(ul_tun_write_batch(&w, &it, 1, 1500, NULL), 0);
  expect_plain(sv[1], 0, 8);
  CHECK_EQ(next_record(sv[1], rec, sizeof(rec)), -EAGAIN);
  ul_tun_writer_free(&w);
  close(sv[0]);
  close(sv[1]);
}

int main(void)
{
  test_write_batch();
  test_gso_refused();
  test_udp_write();
  test_udp_super_frame();
  return CHECK_DONE();
}
