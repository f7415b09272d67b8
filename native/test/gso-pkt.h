/*
 * gso-pkt.h — test helper for the TUN read path tests (test-segment.c,
 * test-fuzz.c): an Internet checksum written independently of csum.c, and
 * TSO/USO super-packets built as a TUN hands them over (the virtio-net
 * header included, with the wrong hdr_len of forwarded packets).
 *
 * Include after ../src/tun-read.c (userlay.h).
 */
#ifndef USERLAY_GSO_PKT_H
#define USERLAY_GSO_PKT_H

#include <stdint.h>
#include <string.h>

/* ---- an independent Internet checksum (byte pairs, end-around carry) ---- */

static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t start)
{
  uint32_t s = start;
  size_t i;

  for (i = 0; i + 1 < n; i += 2) {
    s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
      s = (s & 0xffff) + (s >> 16);
  }
  if (n & 1) {
    s += (uint32_t)p[n - 1] << 8;
    while (s >> 16)
      s = (s & 0xffff) + (s >> 16);
  }
  return (uint16_t)s;
}

/* The folded sum of the pseudo header of the IP packet (by hand): what a
 * checksum field left partial holds. */
static uint16_t ref_pseudo(const uint8_t *ip, size_t l3, unsigned proto, size_t len)
{
  uint8_t ph[40];
  size_t phl;
  size_t l4len = len - l3;
  uint32_t s;

  if ((ip[0] >> 4) == 4) {
    memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = (uint8_t)proto;
    ph[10] = (uint8_t)(l4len >> 8);
    ph[11] = (uint8_t)l4len;
    phl = 12;
  } else {
    memcpy(ph, ip + 8, 32);
    phl = 32; /* length and next header added below */
  }
  s = ref_sum(ph, phl, 0);
  if ((ip[0] >> 4) == 6)
    s = ref_sum((const uint8_t[]){ 0, 0, (uint8_t)(l4len >> 8), (uint8_t)l4len,
                                   0, 0, 0, (uint8_t)proto }, 8, s);
  return (uint16_t)s;
}

/* 1 when the L4 checksum of the IP packet verifies. */
static int ref_l4_ok(const uint8_t *ip, size_t l3, unsigned proto, size_t len)
{
  return ref_sum(ip + l3, len - l3, ref_pseudo(ip, l3, proto, len)) == 0xffff;
}

/* 1 when the L4 checksum field holds exactly the pseudo-header sum. */
static int ref_l4_partial(const uint8_t *ip, size_t l3, unsigned proto, size_t len)
{
  const uint8_t *f = ip + l3 + (proto == 6 ? 16 : 6);
  return (unsigned)(f[0] << 8 | f[1]) == ref_pseudo(ip, l3, proto, len);
}

static unsigned be16(const uint8_t *p) { return (unsigned)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- building TSO/USO packets ------------------------------------------- */

struct gso_spec {
  unsigned version, proto;
  size_t payload, gso_size;
  uint8_t tcp_flags;
  int opts; /* TCP option bytes (multiple of 4) */
};

/* Build into pkt; returns the length and fills *vh as a TUN would (with a
 * wrong hdr_len) and the header length in *hl. */
static size_t build_gso(uint8_t *pkt, const struct gso_spec *sp,
                        struct ul_vnet_hdr *vh, size_t *hl)
{
  size_t l3 = sp->version == 4 ? 20 : 40;
  size_t l4 = sp->proto == 6 ? 20 + (size_t)sp->opts : 8;
  size_t len = l3 + l4 + sp->payload, i;
  uint8_t *th = pkt + l3;

  memset(pkt, 0, l3 + l4);
  if (sp->version == 4) {
    pkt[0] = 0x45;
    pkt[1] = 0x02; /* ECT(0) */
    pkt[2] = (uint8_t)(len >> 8);
    pkt[3] = (uint8_t)len;
    pkt[4] = 0xff; /* id 0xfff0: wraps within the run */
    pkt[5] = 0xf0;
    pkt[6] = 0x40; /* DF */
    pkt[8] = 64;
    pkt[9] = (uint8_t)sp->proto;
    memcpy(pkt + 12, (const uint8_t[]){ 198, 18, 1, 2, 198, 18, 2, 3 }, 8);
  } else {
    pkt[0] = 0x60;
    pkt[1] = 0x0a;
    pkt[2] = 0xbc;
    pkt[3] = 0xde;
    pkt[4] = (uint8_t)((len - 40) >> 8);
    pkt[5] = (uint8_t)(len - 40);
    pkt[6] = (uint8_t)sp->proto;
    pkt[7] = 63;
    pkt[8] = 0x20; pkt[9] = 0x01; pkt[10] = 0; pkt[11] = 0x02; pkt[23] = 1;
    pkt[24] = 0x20; pkt[25] = 0x01; pkt[26] = 0; pkt[27] = 0x02; pkt[39] = 2;
  }
  th[0] = 0x9c; th[1] = 0x41; th[2] = 0x14; th[3] = 0x51; /* ports */
  if (sp->proto == 6) {
    memcpy(th + 4, (const uint8_t[]){ 0xff, 0xff, 0x00, 0x10 }, 4); /* seq wraps */
    memcpy(th + 8, (const uint8_t[]){ 0x12, 0x34, 0x56, 0x78 }, 4);
    th[12] = (uint8_t)((l4 / 4) << 4);
    th[13] = sp->tcp_flags;
    th[14] = 0x01; th[15] = 0xf5;
    for (i = 0; i < (size_t)sp->opts; i++)
      th[20 + i] = i < 2 ? 1 : (uint8_t)(0xa0 + i); /* NOP NOP then bytes */
  } else {
    th[4] = (uint8_t)((len - l3) >> 8);
    th[5] = (uint8_t)(len - l3);
  }
  for (i = 0; i < sp->payload; i++)
    pkt[l3 + l4 + i] = (uint8_t)(i * 7 + (i >> 8));
  /* checksum field: the pseudo-header sum, as the kernel leaves it */
  {
    uint16_t partial = (uint16_t)~ul_csum_fold(ul_csum_pseudo(pkt, sp->proto, len - l3));
    size_t at = sp->proto == 6 ? 16 : 6;
    th[at] = (uint8_t)(partial >> 8);
    th[at + 1] = (uint8_t)partial;
  }
  memset(vh, 0, sizeof(*vh));
  vh->flags = UL_VNET_F_NEEDS_CSUM;
  vh->gso_type = sp->proto == 17 ? 5 : sp->version == 4 ? 1 : 4;
  if (sp->tcp_flags & 0x80)
    vh->gso_type |= 0x80;
  vh->gso_size = (uint16_t)sp->gso_size;
  vh->csum_start = (uint16_t)l3;
  vh->csum_offset = sp->proto == 6 ? 16 : 6;
  vh->hdr_len = (uint16_t)(l3 + l4 + sp->gso_size); /* the lie of forwarded packets */
  *hl = l3 + l4;
  return len;
}

#endif /* USERLAY_GSO_PKT_H */
