/*
 * snap.h — test helper that writes FDB snapshots (layout in userlay.h) and
 * parses addresses, so tests read as tables of peers and routes.
 */
#ifndef USERLAY_SNAP_H
#define USERLAY_SNAP_H

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "userlay.h"

/* A snapshot under construction: room for up to max peers/routes. */
struct snap {
  uint8_t *buf;
  size_t max_peers, max_routes;
  uint32_t n_peers, n_routes;
};

/* "198.18.0.1" or "2001:2::1" -> struct ul_addr (family 0 when invalid). */
static inline struct ul_addr addr(const char *s) {
  struct ul_addr a;
  memset(&a, 0, sizeof a);
  if (inet_pton(AF_INET, s, a.bytes) == 1)
    a.family = 4;
  else if (inet_pton(AF_INET6, s, a.bytes) == 1)
    a.family = 6;
  return a;
}

static inline void snap_init(struct snap *s, size_t max_peers, size_t max_routes) {
  s->max_peers = max_peers;
  s->max_routes = max_routes;
  s->n_peers = s->n_routes = 0;
  s->buf = calloc(1, sizeof(struct ul_fdb_snapshot_hdr) +
                         max_peers * sizeof(struct ul_fdb_peer) +
                         max_routes * sizeof(struct ul_fdb_route));
}

static inline struct ul_fdb_peer *snap_peer_at(struct snap *s, uint32_t i) {
  return (struct ul_fdb_peer *)(s->buf + sizeof(struct ul_fdb_snapshot_hdr) +
                                i * sizeof(struct ul_fdb_peer));
}

/* Add a peer with underlay address `ip`; returns its index. */
static inline uint32_t snap_peer(struct snap *s, const char *ip, uint8_t mac_last,
                                 uint32_t vni) {
  struct ul_fdb_peer p;
  memset(&p, 0, sizeof p);
  struct ul_addr a = addr(ip);
  p.family = a.family;
  p.port = 8472;
  memcpy(p.ip, a.bytes, 16);
  uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, mac_last};
  memcpy(p.mac, mac, 6);
  p.vni = vni;
  p.slot = s->n_peers + 1;
  memcpy(snap_peer_at(s, s->n_peers), &p, sizeof p);
  return s->n_peers++;
}

/* Add route cidr_addr/plen -> peer. */
static inline void snap_route(struct snap *s, const char *net, unsigned plen,
                              uint32_t peer) {
  struct ul_fdb_route r;
  memset(&r, 0, sizeof r);
  struct ul_addr a = addr(net);
  r.family = a.family;
  r.prefix_len = (uint8_t)plen;
  r.peer = peer;
  memcpy(r.addr, a.bytes, 16);
  /* routes go after max_peers slots; snap_finish() closes the gap */
  memcpy(s->buf + sizeof(struct ul_fdb_snapshot_hdr) +
             s->max_peers * sizeof(struct ul_fdb_peer) +
             s->n_routes * sizeof(struct ul_fdb_route),
         &r, sizeof r);
  s->n_routes++;
}

/* Write the header and compact; returns the snapshot length. */
static inline size_t snap_finish(struct snap *s) {
  struct ul_fdb_snapshot_hdr h = {UL_FDB_MAGIC, s->n_peers, s->n_routes, 0};
  memcpy(s->buf, &h, sizeof h);
  uint8_t *routes_at = s->buf + sizeof h + s->n_peers * sizeof(struct ul_fdb_peer);
  memmove(routes_at,
          s->buf + sizeof h + s->max_peers * sizeof(struct ul_fdb_peer),
          s->n_routes * sizeof(struct ul_fdb_route));
  s->max_peers = s->n_peers; /* further snap_route() calls stay consistent */
  return sizeof h + s->n_peers * sizeof(struct ul_fdb_peer) +
         s->n_routes * sizeof(struct ul_fdb_route);
}

/* Offset of route i in a finished snapshot. */
static inline size_t snap_route_off(const struct snap *s, uint32_t i) {
  return sizeof(struct ul_fdb_snapshot_hdr) + s->n_peers * sizeof(struct ul_fdb_peer) +
         i * sizeof(struct ul_fdb_route);
}

/* Build an fdb from a finished snapshot; NULL on error. */
static inline struct ul_fdb *snap_build(struct snap *s) {
  size_t len = snap_finish(s);
  struct ul_fdb *fdb = NULL;
  if (ul_fdb_build(s->buf, len, &fdb) != 0) return NULL;
  return fdb;
}

static inline void snap_free(struct snap *s) { free(s->buf); s->buf = NULL; }

#endif /* USERLAY_SNAP_H */
