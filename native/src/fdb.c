/*
 * fdb.c — the forwarding table: inner destination -> peer, and underlay
 * source -> peer.
 *
 * Built once from a snapshot (layout in userlay.h: header, n_peers * 40-byte
 * peers, n_routes * 24-byte routes, host byte order, nothing else), immutable
 * afterwards, read by the tx and rx threads without locks.
 *
 * Design notes
 *   - Longest-prefix match. For each family, every distinct prefix length
 *     present gets its own open-addressing hash table (linear probing, load
 *     <= 1/2) keyed by the masked address. A lookup probes these tables from
 *     the longest length down and stops at the first hit, so its cost grows
 *     with the number of distinct lengths (a handful in practice: one per
 *     pod-CIDR size), never with the number of peers.
 *   - Addresses are handled as one 128-bit key (two uint64_t, most
 *     significant first). IPv4 occupies the top 32 bits and its prefix lengths
 *     count from the top as well, so both families share every code path.
 *   - Peer by underlay IP: one more hash table keyed by (family, ip).
 *   - The whole table is one allocation: struct ul_fdb, then the peer array
 *     (in snapshot order, so `peer - first peer` is the snapshot index), then
 *     all route slots, then the underlay slots.
 *
 * Validation (any failure -> -EINVAL): magic; len exactly equal to the sizes
 * the header announces; reserved fields zero; peer family 4 or 6, IPv4 bytes
 * 4..15 zero, port != 0, VNI < 2^24, slot >= 1, no two peers with one
 * underlay IP; route family 4 or 6, prefix_len <= 32 / 128, peer index in
 * range, host bits zero, no duplicate (family, prefix).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "userlay.h"

#define FAM_V4 0
#define FAM_V6 1
#define N_FAM 2
#define MAX_PLEN 128
#define EMPTY UINT32_MAX /* slot.peer of an unused hash slot */

/* One hash slot: masked 128-bit key and the peer index it maps to. */
struct slot {
  uint64_t hi, lo;
  uint32_t peer; /* EMPTY when unused */
  uint32_t family; /* only used by the underlay table */
};

/* One hash table of routes sharing a prefix length. */
struct level {
  uint64_t mask_hi, mask_lo;
  uint32_t first; /* index of its first slot in fdb->slots */
  uint32_t cap_mask; /* capacity - 1, capacity a power of two */
};

struct ul_fdb {
  size_t n_peers;
  size_t n_routes;
  const struct ul_fdb_peer *peers;
  struct slot *slots;   /* route slots of all levels */
  struct slot *under;   /* underlay slots */
  uint32_t under_mask;  /* capacity - 1 */
  uint32_t n_levels[N_FAM];
  struct level levels[N_FAM][MAX_PLEN + 1]; /* longest prefix first */
};

/* ---- keys and hashing --------------------------------------------------- */

static inline uint64_t load_be64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline void key_of(const uint8_t bytes[16], uint64_t *hi, uint64_t *lo) {
  *hi = load_be64(bytes);
  *lo = load_be64(bytes + 8);
}

static void mask_of(unsigned plen, uint64_t *mhi, uint64_t *mlo) {
  *mhi = plen == 0 ? 0 : plen >= 64 ? UINT64_MAX : UINT64_MAX << (64 - plen);
  *mlo = plen <= 64 ? 0 : plen >= 128 ? UINT64_MAX : UINT64_MAX << (128 - plen);
}

static inline uint32_t hash_key(uint64_t hi, uint64_t lo) {
  uint64_t h = hi * 0x9e3779b97f4a7c15ull;
  h ^= lo + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  return (uint32_t)(h ^ (h >> 32));
}

static inline int fam_index(uint8_t family) {
  return family == 4 ? FAM_V4 : family == 6 ? FAM_V6 : -1;
}

static uint32_t table_cap(size_t n) {
  uint32_t cap = 4;
  while (cap < 2 * n) cap <<= 1;
  return cap;
}

static bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

/* ---- validation --------------------------------------------------------- */

static bool peer_valid(const struct ul_fdb_peer *p) {
  if (fam_index(p->family) < 0) return false;
  if (p->family == 4 && !all_zero(p->ip + 4, 12)) return false;
  if ((p->flags & ~UL_FDB_F_KNOWN) != 0 || p->reserved1[0] != 0 || p->reserved1[1] != 0)
    return false;
  if (p->mtu != 0 && (p->mtu < UL_MIN_PATH_MTU || p->mtu > 65535))
    return false;
  return p->port != 0 && p->vni < (1u << 24) && p->slot >= 1;
}

static bool route_valid(const struct ul_fdb_route *r, size_t n_peers) {
  int f = fam_index(r->family);
  if (f < 0 || r->reserved[0] != 0 || r->reserved[1] != 0) return false;
  if (r->prefix_len > (f == FAM_V4 ? 32 : 128)) return false;
  if (f == FAM_V4 && !all_zero(r->addr + 4, 12)) return false;
  if (r->peer >= n_peers) return false;
  uint64_t hi, lo, mhi, mlo;
  key_of(r->addr, &hi, &lo);
  mask_of(r->prefix_len, &mhi, &mlo);
  return (hi & ~mhi) == 0 && (lo & ~mlo) == 0;
}

/* ---- build -------------------------------------------------------------- */

/* Insert key -> peer into table [base, base+mask]; -EINVAL if present. */
static int insert(struct slot *base, uint32_t mask, uint32_t family,
                  uint64_t hi, uint64_t lo, uint32_t peer) {
  for (uint32_t i = hash_key(hi, lo) & mask;; i = (i + 1) & mask) {
    struct slot *s = &base[i];
    if (s->peer == EMPTY) {
      s->hi = hi;
      s->lo = lo;
      s->family = family;
      s->peer = peer;
      return 0;
    }
    if (s->hi == hi && s->lo == lo && s->family == family) return -EINVAL;
  }
}

int ul_fdb_build(const void *snapshot, size_t len, struct ul_fdb **out) {
  struct ul_fdb_snapshot_hdr h;
  if (snapshot == NULL || out == NULL || len < sizeof h) return -EINVAL;
  *out = NULL;
  memcpy(&h, snapshot, sizeof h);
  if (h.magic != UL_FDB_MAGIC || h.reserved != 0) return -EINVAL;
  uint64_t want = (uint64_t)sizeof h +
                  (uint64_t)h.n_peers * sizeof(struct ul_fdb_peer) +
                  (uint64_t)h.n_routes * sizeof(struct ul_fdb_route);
  if (want != len) return -EINVAL;
  /* Both counts fit far below 2^31 from here on: len is a real buffer. */
  const uint8_t *peers_in = (const uint8_t *)snapshot + sizeof h;
  const uint8_t *routes_in =
      peers_in + (size_t)h.n_peers * sizeof(struct ul_fdb_peer);

  /* Pass 1: validate and count routes per (family, prefix length). */
  _Static_assert(sizeof(struct ul_fdb_peer) == 40, "peer layout");
  _Static_assert(sizeof(struct ul_fdb_route) == 24, "route layout");
  uint32_t count[N_FAM][MAX_PLEN + 1];
  memset(count, 0, sizeof count);
  for (uint32_t i = 0; i < h.n_peers; i++) {
    struct ul_fdb_peer p;
    memcpy(&p, peers_in + (size_t)i * sizeof p, sizeof p);
    if (!peer_valid(&p)) return -EINVAL;
  }
  for (uint32_t i = 0; i < h.n_routes; i++) {
    struct ul_fdb_route r;
    memcpy(&r, routes_in + (size_t)i * sizeof r, sizeof r);
    if (!route_valid(&r, h.n_peers)) return -EINVAL;
    count[fam_index(r.family)][r.prefix_len]++;
  }

  /* Size the tables: levels longest first, then one allocation. */
  struct level levels[N_FAM][MAX_PLEN + 1];
  uint32_t n_levels[N_FAM] = {0, 0};
  uint64_t n_slots = 0;
  for (int f = 0; f < N_FAM; f++) {
    for (int plen = MAX_PLEN; plen >= 0; plen--) {
      if (count[f][plen] == 0) continue;
      struct level *lv = &levels[f][n_levels[f]++];
      uint32_t cap = table_cap(count[f][plen]);
      mask_of((unsigned)plen, &lv->mask_hi, &lv->mask_lo);
      lv->first = (uint32_t)n_slots;
      lv->cap_mask = cap - 1;
      n_slots += cap;
    }
  }
  uint32_t under_cap = table_cap(h.n_peers);
  size_t peers_bytes = (size_t)h.n_peers * sizeof(struct ul_fdb_peer);
  size_t peers_off = (sizeof(struct ul_fdb) + 15) & ~(size_t)15;
  size_t slots_off = (peers_off + peers_bytes + 15) & ~(size_t)15;
  size_t under_off = slots_off + (size_t)n_slots * sizeof(struct slot);
  size_t total = under_off + (size_t)under_cap * sizeof(struct slot);

  uint8_t *mem = calloc(1, total);
  if (mem == NULL) return -ENOMEM;
  struct ul_fdb *fdb = (struct ul_fdb *)mem;
  fdb->n_peers = h.n_peers;
  fdb->n_routes = h.n_routes;
  fdb->peers = (const struct ul_fdb_peer *)(mem + peers_off);
  fdb->slots = (struct slot *)(mem + slots_off);
  fdb->under = (struct slot *)(mem + under_off);
  fdb->under_mask = under_cap - 1;
  memcpy(fdb->n_levels, n_levels, sizeof n_levels);
  memcpy(fdb->levels, levels, sizeof levels);
  memcpy(mem + peers_off, peers_in, peers_bytes);
  for (uint64_t i = 0; i < n_slots; i++) fdb->slots[i].peer = EMPTY;
  for (uint32_t i = 0; i < under_cap; i++) fdb->under[i].peer = EMPTY;

  /* Pass 2: fill. Duplicates are found here. */
  uint8_t level_of[N_FAM][MAX_PLEN + 1];
  /* Level index of each prefix length (levels are ordered longest first). */
  for (int f = 0; f < N_FAM; f++) {
    uint32_t k = 0;
    for (int p = MAX_PLEN; p >= 0; p--)
      if (count[f][p] != 0) level_of[f][p] = (uint8_t)k++;
  }
  int err = 0;
  for (uint32_t i = 0; i < h.n_routes && err == 0; i++) {
    struct ul_fdb_route r;
    memcpy(&r, routes_in + (size_t)i * sizeof r, sizeof r);
    int f = fam_index(r.family);
    const struct level *lv = &fdb->levels[f][level_of[f][r.prefix_len]];
    uint64_t hi, lo;
    key_of(r.addr, &hi, &lo);
    err = insert(fdb->slots + lv->first, lv->cap_mask, (uint32_t)f, hi, lo,
                 r.peer);
  }
  for (uint32_t i = 0; i < h.n_peers && err == 0; i++) {
    const struct ul_fdb_peer *p = &fdb->peers[i];
    uint64_t hi, lo;
    key_of(p->ip, &hi, &lo);
    err = insert(fdb->under, fdb->under_mask, p->family, hi, lo, i);
  }
  if (err != 0) {
    free(mem);
    return err;
  }
  *out = fdb;
  return 0;
}

void ul_fdb_free(struct ul_fdb *fdb) { free(fdb); }

/* ---- lookups ------------------------------------------------------------ */

const struct ul_fdb_peer *ul_fdb_lookup(const struct ul_fdb *fdb,
                                        const struct ul_addr *dst) {
  if (fdb == NULL || dst == NULL) return NULL;
  int f = fam_index(dst->family);
  if (f < 0) return NULL;
  uint64_t hi, lo;
  key_of(dst->bytes, &hi, &lo);
  const struct level *lv = fdb->levels[f];
  for (uint32_t k = 0, n = fdb->n_levels[f]; k < n; k++, lv++) {
    uint64_t mhi = hi & lv->mask_hi, mlo = lo & lv->mask_lo;
    const struct slot *base = fdb->slots + lv->first;
    for (uint32_t i = hash_key(mhi, mlo) & lv->cap_mask;;
         i = (i + 1) & lv->cap_mask) {
      const struct slot *s = &base[i];
      if (s->peer == EMPTY) break;
      if (s->hi == mhi && s->lo == mlo) return &fdb->peers[s->peer];
    }
  }
  return NULL;
}

const struct ul_fdb_peer *ul_fdb_peer_by_underlay(const struct ul_fdb *fdb,
                                                  const struct ul_addr *ip) {
  if (fdb == NULL || ip == NULL || fam_index(ip->family) < 0) return NULL;
  uint64_t hi, lo;
  key_of(ip->bytes, &hi, &lo);
  if (ip->family == 4) lo = 0, hi &= 0xffffffff00000000ull;
  for (uint32_t i = hash_key(hi, lo) & fdb->under_mask;;
       i = (i + 1) & fdb->under_mask) {
    const struct slot *s = &fdb->under[i];
    if (s->peer == EMPTY) return NULL;
    if (s->hi == hi && s->lo == lo && s->family == ip->family)
      return &fdb->peers[s->peer];
  }
}

ptrdiff_t ul_fdb_peer_index(const struct ul_fdb *fdb,
                            const struct ul_fdb_peer *peer) {
  if (fdb == NULL || peer == NULL) return -1;
  uintptr_t at = (uintptr_t)peer, base = (uintptr_t)fdb->peers;
  if (at < base || at >= base + fdb->n_peers * sizeof *peer) return -1;
  return (ptrdiff_t)((at - base) / sizeof *peer);
}

size_t ul_fdb_peer_count(const struct ul_fdb *fdb) {
  return fdb == NULL ? 0 : fdb->n_peers;
}

size_t ul_fdb_route_count(const struct ul_fdb *fdb) {
  return fdb == NULL ? 0 : fdb->n_routes;
}
