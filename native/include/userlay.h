/*
 * userlay — C core of the data plane.
 *
 * Everything here builds and is tested without Node (native/test). The N-API
 * binding (native/binding/) only converts arguments and errors.
 *
 * Conventions
 *   - Functions return 0 (or a non-negative count) on success and -errno on
 *     failure. Nothing here calls exit() or prints.
 *   - Codec functions return an enum ul_drop reason (> 0) when a packet must be
 *     dropped, 0 when it passes.
 *   - Addresses are always 16 bytes; IPv4 lives in the first 4 bytes with the
 *     rest zero, and `family` (4 or 6) says which.
 *
 * Buffer layout (64 KiB packets and a virtio-net header: a TUN read with
 * TSO/USO on returns a super-packet of up to 64 KiB, split by tun-read.c):
 *
 *   TUN -> UDP (tx), one buffer per packet, UL_BUF_SIZE bytes:
 *     [ .. UL_TX_HEADROOM .. ][ inner IP packet, up to 65535 bytes ]
 *     The TUN read lands at UL_TX_HEADROOM - UL_VNET_HDR_LEN, so the
 *     virtio_net_hdr sits right before the IP packet. Encapsulation writes the
 *     VXLAN + inner Ethernet header (22 bytes) in place, in front of the IP
 *     packet, after the vnet header has been parsed.
 *
 *   UDP -> TUN (rx): the datagram lands at UL_RX_OFFSET. Decapsulation finds
 *     the inner IP packet at some offset >= UL_RX_OFFSET and the engine
 *     writes [vnet hdr | IP packet] to the TUN with one writev(), the header
 *     in its own iovec (ul_tun_write_batch). In-order TCP segments of one
 *     flow in a batch are coalesced (ul_gro_batch) and written as one GSO
 *     packet with writev() straight from the receive buffers:
 *     [vnet hdr | first segment | payloads of the others].
 */
#ifndef USERLAY_H
#define USERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants ---------------------------------------------------------- */

#define UL_VXLAN_HDR_LEN 8
#define UL_ETH_HDR_LEN 14
#define UL_VXLAN_ENCAP_LEN (UL_VXLAN_HDR_LEN + UL_ETH_HDR_LEN) /* 22 */
#define UL_VNET_HDR_LEN 10 /* struct virtio_net_hdr, TUNSETVNETHDRSZ default */
#define UL_MAX_PACKET 65535
#define UL_TX_HEADROOM 64 /* >= UL_VXLAN_ENCAP_LEN and >= UL_VNET_HDR_LEN */
#define UL_RX_OFFSET 32   /* >= UL_VNET_HDR_LEN */
#define UL_BUF_SIZE (UL_TX_HEADROOM + UL_MAX_PACKET + 1)

#define UL_VXLAN_FLAG_I 0x08 /* RFC 7348: the I flag, VNI valid */
#define UL_DEFAULT_VXLAN_PORT 8472
#define UL_DEFAULT_UDP_PORT 8285
/* rtnetlink protocol number of the routes userlay adds: `ip route show proto 85` */
#define UL_RTPROT 85

enum ul_mode {
  UL_MODE_VXLAN = 1, /* RFC 7348, flannel vxlan backend wire format */
  UL_MODE_UDP = 2,   /* raw IP packet as UDP payload, flannel udp backend */
};

/*
 * Drop reasons. Index into the drops[] part of a counter slot. Stable: the
 * TypeScript side (src/dataplane/counters.ts) mirrors these numbers and a unit
 * test checks them against the addon's exported table.
 */
enum ul_drop {
  UL_OK = 0,
  /* receive (UDP -> TUN) */
  UL_DROP_SHORT = 1,        /* datagram too short for the headers */
  UL_DROP_BAD_FLAGS = 2,    /* VXLAN flags byte not 0x08 / reserved bits set */
  UL_DROP_BAD_VNI = 3,      /* VNI is not ours */
  UL_DROP_BAD_MAC = 4,      /* inner destination MAC is not our VTEP MAC */
  UL_DROP_MALFORMED = 5,    /* inner not IPv4/IPv6, bad ethertype, bad length */
  UL_DROP_UNKNOWN_PEER = 6, /* outer source IP is not a known peer */
  UL_DROP_SPOOFED = 7,      /* inner source not inside that peer's subnets */
  UL_DROP_TUN_WRITE = 8,    /* write() to the TUN failed */
  /* transmit (TUN -> UDP) */
  UL_DROP_NO_ROUTE = 9,     /* inner destination not in the FDB */
  UL_DROP_TX_MALFORMED = 10,/* packet read from the TUN is not valid IP */
  UL_DROP_UDP_SEND = 11,    /* sendmmsg() failed for this packet */
  UL_DROP_TUN_READ = 12,    /* read() from the TUN failed */
  UL_DROP_UDP_RECV = 13,    /* recvmmsg() failed or truncated datagram */
  UL_DROP_TOO_BIG = 14,     /* larger than the path to its peer carries (DF
                               set or IPv6): answered with ICMP too big */
  UL_DROP__COUNT = 16       /* reserved width of drops[] in a slot */
};

/*
 * Counters: a flat array of uint64_t owned by the caller (JS allocates a
 * BigUint64Array and the engine keeps a reference). Slot 0 holds totals, slot
 * k >= 1 holds peer k (the `slot` field of struct ul_fdb_peer). Each counter has
 * exactly one writer thread (tx counters: tx thread, rx counters: rx thread),
 * which stores with relaxed atomics so readers never see torn values.
 */
enum ul_counter {
  UL_C_TX_PACKETS = 0,
  UL_C_TX_BYTES = 1, /* inner IP bytes */
  UL_C_RX_PACKETS = 2,
  UL_C_RX_BYTES = 3, /* inner IP bytes */
  UL_C_DROPS = 4,    /* UL_C_DROPS + enum ul_drop */
  UL_C_SLOT_WIDTH = UL_C_DROPS + UL_DROP__COUNT /* 20 */
};

/* ---- addresses -------------------------------------------------------- */

struct ul_addr {
  uint8_t family; /* 4 or 6 */
  uint8_t bytes[16];
};

/* ---- FDB ---------------------------------------------------------------
 *
 * Built once from a snapshot, immutable afterwards, shared by threads without
 * locks. Lookup of an inner destination is longest-prefix match whose cost
 * depends on the number of distinct prefix lengths present, not on the number
 * of peers (one hash probe per distinct length, longest first).
 *
 * Snapshot wire layout (what JS hands to native, host byte order):
 *   struct ul_fdb_snapshot_hdr, then n_peers * struct ul_fdb_peer, then
 *   n_routes * struct ul_fdb_route.
 */
#define UL_FDB_MAGIC 0x31464c55u /* "ULF1" little-endian */

struct ul_fdb_snapshot_hdr {
  uint32_t magic;
  uint32_t n_peers;
  uint32_t n_routes;
  uint32_t reserved;
};

/* Smallest per-peer path MTU a snapshot may carry (IPv4's minimum, RFC 791). */
#define UL_MIN_PATH_MTU 68

/* ul_fdb_peer.flags */
#define UL_FDB_F_PARTIAL_CSUM 0x01 /* the peer takes inner TCP/UDP checksums
                                    * left partial (a userlay node that says so;
                                    * see "Partial checksums" in csum.c) */
#define UL_FDB_F_KNOWN UL_FDB_F_PARTIAL_CSUM

struct ul_fdb_peer {   /* 40 bytes */
  uint8_t family;      /* underlay family, 4 or 6 */
  uint8_t flags;       /* UL_FDB_F_*; other bits must be zero */
  uint16_t port;       /* underlay UDP port, host order */
  uint8_t ip[16];      /* underlay IP */
  uint8_t mac[6];      /* VTEP MAC (vxlan); ignored for udp */
  uint8_t reserved1[2];
  uint32_t vni;        /* VNI to send with (vxlan) */
  uint32_t slot;       /* counter slot, >= 1; entries with one slot are one
                        * peer (a dual-stack peer has an entry per underlay
                        * family, each with its own address and MAC) */
  uint32_t mtu;        /* largest inner packet the path to this peer
                          carries unfragmented; 0 = no limit known */
};

struct ul_fdb_route {  /* 24 bytes: a pod subnet that lives behind a peer */
  uint8_t family;      /* 4 or 6 */
  uint8_t prefix_len;
  uint8_t reserved[2];
  uint32_t peer;       /* index into the peers array */
  uint8_t addr[16];    /* network address; host bits must be zero */
};

struct ul_fdb;

/* Build a table from a snapshot buffer. -EINVAL on a malformed snapshot
 * (bad magic/sizes, peer index out of range, host bits set, duplicate
 * prefix), -ENOMEM. The snapshot buffer is not kept. */
int ul_fdb_build(const void *snapshot, size_t len, struct ul_fdb **out);
void ul_fdb_free(struct ul_fdb *fdb);
/* Longest-prefix match of an inner address. Returns the peer or NULL. */
const struct ul_fdb_peer *ul_fdb_lookup(const struct ul_fdb *fdb,
                                        const struct ul_addr *dst);
/* Peer whose underlay IP equals `ip` (port ignored), or NULL. */
const struct ul_fdb_peer *ul_fdb_peer_by_underlay(const struct ul_fdb *fdb,
                                                  const struct ul_addr *ip);
/* Index in the snapshot's peer array of a peer this table returned (the
 * table keeps its peers in snapshot order), or -1 for NULL or a foreign
 * pointer. */
ptrdiff_t ul_fdb_peer_index(const struct ul_fdb *fdb,
                            const struct ul_fdb_peer *peer);
size_t ul_fdb_peer_count(const struct ul_fdb *fdb);
size_t ul_fdb_route_count(const struct ul_fdb *fdb);

/* ---- codec -------------------------------------------------------------- */

struct ul_codec_cfg {
  enum ul_mode mode;
  uint32_t vni;       /* our VNI (vxlan): received frames must carry it */
  uint8_t mac[6];     /* our VTEP MAC (vxlan): inner dst MAC must equal it */
};

struct ul_encap_result {
  const struct ul_fdb_peer *peer; /* where to send */
  size_t frame_off;               /* start of the UDP payload in the buffer */
  size_t frame_len;               /* UDP payload length */
};

/*
 * Encapsulate the IP packet at buf[pkt_off .. pkt_off+pkt_len) in place.
 * Only its IP header is read: the rest may lie elsewhere (a segment whose
 * payload is sent from the super-packet, struct ul_tun_pkt), pkt_len is the
 * whole length. pkt_off must be >= UL_VXLAN_ENCAP_LEN. Looks the inner
 * destination up in `fdb`. Returns UL_OK and fills `res`, or UL_DROP_TX_MALFORMED /
 * UL_DROP_NO_ROUTE, or UL_DROP_TOO_BIG (res->peer set, nothing written)
 * when the packet is longer than the peer's path MTU and is IPv6 or IPv4
 * with DF set (IPv4 without DF passes: the outer datagram is fragmented).
 */
int ul_encap(const struct ul_codec_cfg *cfg, const struct ul_fdb *fdb,
             uint8_t *buf, size_t pkt_off, size_t pkt_len,
             struct ul_encap_result *res);

/* Hash of the inner flow of the IP packet pkt[0..len): addresses, protocol,
 * TCP/UDP/SCTP ports (not of fragments). 0 for what is not IP. For the
 * outer source port, see codec.c. */
uint32_t ul_flow_hash(const uint8_t *pkt, size_t len);

/* Scale a hash into [0, n) as udp_flow_src_port() scales one into a port
 * range (the high bits of hash * n). */
static inline uint32_t ul_flow_pick(uint32_t hash, uint32_t n)
{
  return (uint32_t)(((uint64_t)hash * n) >> 32);
}

struct ul_decap_result {
  const struct ul_fdb_peer *peer; /* the sending peer */
  size_t pkt_off;                 /* inner IP packet offset in the datagram */
  size_t pkt_len;                 /* inner IP packet length (from IP header) */
  size_t frame_len; /* encapsulation + inner IP length as the headers give it,
                     * also for most drops (0: unreadable): where the next
                     * datagram of a coalesced run starts when the run's
                     * segment size is not known (the js engine's UDP GRO) */
};

/*
 * Validate and decapsulate one received datagram buf[0..len) whose outer
 * source address is `src`. Checks, in order: length, VXLAN flags, VNI, inner
 * dst MAC, ethertype/IP version/length, outer source is a known peer, inner
 * source inside a subnet routed to that same peer (an entry of the same
 * counter slot: a dual-stack peer's entries share one). Returns UL_OK or the drop
 * reason. Never reads outside buf[0..len).
 */
int ul_decap(const struct ul_codec_cfg *cfg, const struct ul_fdb *fdb,
             const uint8_t *buf, size_t len, const struct ul_addr *src,
             struct ul_decap_result *res);

/* Encapsulation plus inner IP length as the headers of the datagram
 * buf[0..len) give it (only the lengths are read: no other check), or 0
 * when they cannot be read. */
size_t ul_frame_len(const struct ul_codec_cfg *cfg, const uint8_t *buf, size_t len);

/* ---- checksums ---------------------------------------------------------- */

/* struct virtio_net_hdr, as the TUN reads and writes it with IFF_VNET_HDR */
struct ul_vnet_hdr {
  uint8_t flags;    /* VIRTIO_NET_HDR_F_NEEDS_CSUM = 1, F_DATA_VALID = 2 */
  uint8_t gso_type; /* VIRTIO_NET_HDR_GSO_NONE = 0 */
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
#define UL_VNET_F_NEEDS_CSUM 1
#define UL_VNET_F_DATA_VALID 2

/*
 * Decide the virtio-net header for an inner IP packet about to be written to
 * the TUN. A sender whose kernel left the transport checksum partial
 * (CHECKSUM_PARTIAL across veth, e.g. the kernel vxlan device) ships a TCP/UDP
 * checksum field holding only the pseudo-header sum. When the field equals the
 * pseudo-header sum and the full checksum does not verify, set NEEDS_CSUM with
 * csum_start/csum_offset so the kernel completes it; otherwise flags = 0 and
 * the kernel verifies as usual. Returns 1 when NEEDS_CSUM was set, else 0.
 */
int ul_vnet_hdr_for_rx(const uint8_t *pkt, size_t len, struct ul_vnet_hdr *vh);

/*
 * Prepare a packet read from the TUN for encapsulation according to its
 * virtio-net header: completes a NEEDS_CSUM checksum in software. Returns
 * UL_OK, or UL_DROP_TX_MALFORMED for a GSO packet (those are split by
 * ul_tso_segment instead) or bad csum_start/offset.
 */
int ul_vnet_apply_tx(uint8_t *pkt, size_t len, const struct ul_vnet_hdr *vh);

/*
 * Finish a checksum left partial: the field at start + offset holds the
 * pseudo-header sum; sum pkt[start..len) over it and store the result (0 is
 * sent as 0xffff, which UDP needs). UL_OK, or UL_DROP_TX_MALFORMED when the
 * field lies outside the packet.
 */
int ul_csum_finish(uint8_t *pkt, size_t len, size_t start, size_t offset);

/*
 * May the checksum left partial at start/offset travel as it is to a peer
 * with UL_FDB_F_PARTIAL_CSUM? Only when that receiver will take it for
 * partial by ul_vnet_hdr_for_rx()'s rule: TCP or UDP right behind the IP
 * header (no fragment, no IPv6 extension header), the IP length equal to
 * len, the field where that header has it, holding the pseudo-header sum.
 * 1 or 0 (then finish it).
 */
int ul_csum_partial_travels(const uint8_t *pkt, size_t len, size_t start,
                            size_t offset);

/* ---- software segmentation (segment.c) ---------------------------------
 *
 * A TSO/USO super-packet read from the TUN (offloads on, see
 * ul_tun_set_offloads) is split into wire-sized segments, each with complete
 * headers and L4 checksum; the rules are in segment.c.
 */
struct ul_tso {
  unsigned version;   /* 4 or 6 */
  unsigned proto;     /* 6 TCP, 17 UDP */
  size_t l3;          /* IP header length (csum_start) */
  size_t hdr_len;     /* IP + L4 header, recomputed (vh->hdr_len is not trusted) */
  size_t gso_size;    /* payload bytes per segment */
  size_t payload;     /* payload bytes of the whole packet */
  uint32_t nsegs;     /* segments it splits into (>= 1) */
  uint32_t ip_sum;    /* IPv4: sum of the header without length, id, checksum */
  uint32_t pseudo_sum; /* sum of the pseudo header without the L4 length */
  bool leave_partial; /* set by the caller after parsing: segments keep the
                       * pseudo-header sum in their L4 checksum field (to be
                       * finished by ul_csum_finish or by the receiver) */
};

/* Check the GSO packet pkt[0..len) against its virtio-net header *vh and
 * describe its split in *t. UL_OK or UL_DROP_TX_MALFORMED. */
int ul_tso_parse(const uint8_t *pkt, size_t len, const struct ul_vnet_hdr *vh,
                 struct ul_tso *t);

/* Write segment i (< t->nsegs) of the packet at pkt to out (room for
 * t->hdr_len + t->gso_size bytes) and return its length. out may be pkt
 * itself for i = 0 only, and segment 0 must then be written last (it
 * overwrites the header template). */
size_t ul_tso_segment(const uint8_t *pkt, const struct ul_tso *t, uint32_t i,
                      uint8_t *out);

/* Segment i as ul_tso_segment() writes it, but only its headers are written
 * to out (t->hdr_len bytes, returned); its payload stays in the super-packet:
 * *payload_len bytes at *payload. Only with t->leave_partial (a complete
 * checksum would need the payload beside the headers); 0 otherwise. The same
 * rule for out == pkt. */
size_t ul_tso_segment_headers(const uint8_t *pkt, const struct ul_tso *t,
                              uint32_t i, uint8_t *out,
                              const uint8_t **payload, size_t *payload_len);

/* A byte range of a buffer. */
struct ul_span {
  size_t off, len;
};

/* Cut a UDP GRO receive buffer of len bytes, whose cmsg said segment size
 * seg, into its datagrams: out[k] for k < the returned count. -EINVAL for
 * seg = 0 or len = 0, -E2BIG for more than max_segs (or cap) datagrams. */
int ul_udp_gro_split(size_t len, size_t seg, size_t max_segs,
                     struct ul_span *out, size_t cap);

/* Internet checksum helpers (RFC 1071), exposed for tests and ICMP. */
uint32_t ul_csum_partial(const void *data, size_t len, uint32_t sum);
uint16_t ul_csum_fold(uint32_t sum);
/* Partial sum of the pseudo header of the IP packet at ip (version from its
 * first byte, 4 or 6): source and destination addresses, `proto` and the
 * L4 length `l4_len` (< 2^16). Chain it into ul_csum_partial() over the L4
 * header and payload. */
uint32_t ul_csum_pseudo(const uint8_t *ip, unsigned proto, size_t l4_len);

/* The ICMP errors the engines send (icmp.c has the wire format). */
enum ul_icmp_kind {
  UL_ICMP_NO_ROUTE = 0, /* v4 type 3 code 0; v6 type 1 code 0 */
  UL_ICMP_TOO_BIG = 1   /* v4 type 3 code 4 + next-hop MTU; v6 type 2 + MTU */
};

/*
 * Build the ICMP error `kind` answering the packet `orig` (quoting as much
 * of it as RFC 792/4443 allow), from `src` to orig's source, into
 * out[0..cap); `mtu` is the MTU the too-big message reports (ignored for
 * no route). Returns its length, or 0 when no error must be sent (orig is
 * itself an ICMP error, a fragment, from a multicast source...), or -EINVAL
 * (also for a too-big mtu of 0 or, for IPv4, > 65535), -ENOSPC.
 */
int ul_icmp_error(const uint8_t *orig, size_t orig_len,
                  const struct ul_addr *src, enum ul_icmp_kind kind,
                  uint32_t mtu, uint8_t *out, size_t cap);

/*
 * Build an ICMP destination-unreachable (v4: type 3 code 0; v6: type 1 code 0)
 * answering the packet `orig` (quoting as much of it as RFC 792/4443 allow),
 * from `src` to orig's source, into out[0..cap). Returns its length, or 0 when
 * no error must be sent (orig is itself ICMP error, fragment, multicast...),
 * or -EINVAL.
 */
int ul_icmp_unreach(const uint8_t *orig, size_t orig_len,
                    const struct ul_addr *src, uint8_t *out, size_t cap);

/* ---- system: TUN, UDP, netlink -------------------------------------------- */

/* Open /dev/net/tun as IFF_TUN|IFF_NO_PI (plus IFF_VNET_HDR when vnet_hdr),
 * non-blocking, close-on-exec. `name` may be "" for a kernel-chosen name; the
 * actual name (IFNAMSIZ) is written to name_out. Returns the fd or -errno. */
int ul_tun_open(const char *name, int vnet_hdr, char name_out[16]);

/* ul_tun_open with IFF_MULTI_QUEUE: the first open of `name` creates the
 * device, each further open attaches one more queue (an fd of its own; the
 * kernel spreads flows over the queues by flow hash). Every queue of a
 * device must be opened this way: a device made without the flag refuses
 * it with EINVAL. */
int ul_tun_open_queue(const char *name, int vnet_hdr, char name_out[16]);

/* TUNSETOFFLOAD flags (linux/if_tun.h; USO needs Linux 6.2). */
#define UL_TUN_F_CSUM 0x01
#define UL_TUN_F_TSO4 0x02
#define UL_TUN_F_TSO6 0x04
#define UL_TUN_F_USO4 0x20
#define UL_TUN_F_USO6 0x40

/*
 * Enable receive offloads on a TUN opened with vnet_hdr, so that one read()
 * may return a 64 KiB TSO/USO super-packet: first CSUM|TSO4|TSO6, then in a
 * second call also USO4|USO6 (older kernels refuse those). Flags in
 * `refuse` are treated as refused without asking the kernel (a test hook;
 * 0 in production). *got = the flags in force. Returns 0 (also when a flag
 * was refused: the caller counts want & ~*got) or -errno when the TUN
 * refused the ioctl for another reason than the flags.
 */
int ul_tun_set_offloads(int fd, unsigned want, unsigned refuse, unsigned *got);

/*
 * Reading the TUN (tun-read.c): the one TUN read path of both engines.
 * Reads packets, parses their virtio-net header, finishes NEEDS_CSUM
 * checksums, splits TSO/USO super-packets into segments (ul_tso_segment)
 * and counts what it drops (runt or malformed: UL_DROP_TX_MALFORMED, read
 * errors: UL_DROP_TUN_READ) in the totals slot of `counters` (may be NULL)
 * with relaxed atomics, so the caller's thread must be the only writer of
 * those tx counters.
 */
#define UL_TUN_POOL 8          /* super-packet buffers of a reader */
#define UL_TUN_READ_DIRECT 2048 /* bytes of a read that land in the caller's
                                 * buffer (tun-read.c, "Where reads land") */
struct ul_tun_reader {
  int fd;
  uint64_t *counters;  /* slot 0 of a counters block, or NULL */
  uint8_t *pool[UL_TUN_POOL]; /* UL_BUF_SIZE each: super-packets are read
                        * into these, never into a caller buffer */
  uint32_t pool_used;  /* pool[0..pool_used) hold super-packets whose
                        * segments this call handed out, or the pending one */
  const uint8_t *super; /* the super-packet being split (at UL_TX_HEADROOM
                        * of a pool buffer) */
  struct ul_tso tso;
  uint32_t next_seg;   /* its next segment; == tso.nsegs: nothing pending */
  uint64_t segments;   /* segments produced by splits (statistics) */
  uint64_t supers;     /* super-packets split */
  bool leave_partial;  /* hand NEEDS_CSUM packets and TSO/USO segments on with
                        * their checksum partial (ul_tun_pkt.csum_*), for the
                        * caller to finish or not per peer; else finish all */
  bool share_payload;  /* with leave_partial: a segment's payload is not copied
                        * but left where the super-packet was read
                        * (ul_tun_pkt.payload) */
  bool gso_seen;       /* a super-packet came: read in two parts from now on */
};

/* A packet for encapsulation: IP packet at buf + UL_TX_HEADROOM, len bytes.
 * With payload (share_payload only), those bytes are the segment's headers
 * and the packet goes on with payload_len bytes at payload: in one of the
 * reader's pool buffers, valid until the next ul_tun_read_batch() call. */
struct ul_tun_pkt {
  uint8_t *buf;        /* UL_BUF_SIZE bytes, malloc()ed */
  size_t len;
  const uint8_t *payload; /* NULL: the packet is all at buf + UL_TX_HEADROOM */
  size_t payload_len;
  /* with leave_partial: the checksum the reader left partial (start of the
   * summed range, field offset from it), csum_offset 0 = complete already;
   * csum_travels: a receiver will take it for partial as it is
   * (ul_csum_partial_travels; for the reader's own segments by construction) */
  uint16_t csum_start, csum_offset;
  bool csum_travels;
};

int ul_tun_reader_init(struct ul_tun_reader *r, int fd, uint64_t *counters);
void ul_tun_reader_free(struct ul_tun_reader *r);

/*
 * Fill out[0..n) with up to n packets ready for encapsulation, reading the
 * non-blocking TUN until EAGAIN or n packets. A super-packet whose segments
 * do not all fit is continued by the next call before anything new is read.
 * out[i].buf are the caller's UL_BUF_SIZE buffers, never exchanged: each
 * gets its packet at UL_TX_HEADROOM (a plain packet, or a segment: its
 * headers only with share_payload), while super-packets are read into the
 * reader's pool ("Where reads land" in tun-read.c). Returns the packet
 * count (0 = nothing to read), or -errno
 * for a read error (not EAGAIN/EINTR) before any packet, counted as
 * UL_DROP_TUN_READ.
 */
int ul_tun_read_batch(struct ul_tun_reader *r, struct ul_tun_pkt *out,
                      uint32_t n);

/* Segments of a super-packet are left for the next ul_tun_read_batch() call.
 * The TUN need not be readable then: call again without waiting for it. */
bool ul_tun_reader_pending(const struct ul_tun_reader *r);

/* MTU of the interface behind a TUN fd (TUNGETIFF + SIOCGIFMTU), or -errno. */
int ul_tun_mtu(int fd);

/* A TUN MTU as its writer caches it; start with UL_TUN_MTU_CACHE_INIT. */
struct ul_tun_mtu_cache {
  int mtu;         /* 0 = unknown (e.g. the fd is not a TUN) */
  int64_t checked; /* CLOCK_MONOTONIC second of the last read, -1 = never */
};
#define UL_TUN_MTU_CACHE_INIT { 0, -1 }

/* The MTU in *c, re-read with ul_tun_mtu() when a packet of `longest` bytes
 * exceeds it, at most once per second (it rarely changes). 0 = unknown. */
int ul_tun_mtu_cached(int fd, struct ul_tun_mtu_cache *c, size_t longest);

/*
 * A VXLAN GSO skb that crossed a veth reaches a plain UDP socket unsegmented,
 * so a received inner TCP packet may be longer than the TUN MTU. For such a
 * packet (IPv4/IPv6 TCP, len > mtu) fill *vh to ask the kernel for TCP
 * segmentation at mss = mtu - IP - TCP header, set the TCP checksum field to
 * the pseudo-header sum (partial, as TSO expects) and return 1; otherwise
 * return 0 and touch nothing.
 */
int ul_tun_gso_for_rx(uint8_t *pkt, size_t len, int mtu, struct ul_vnet_hdr *vh);

/*
 * The same for UDP: a pod behind a kernel vxlan neighbour that sends with
 * UDP_SEGMENT (QUIC, for one) gives a VXLAN GSO skb whose inner packet is a
 * whole UDP GSO packet; the receive socket takes it unsegmented, and its
 * UDP_GRO cmsg says the inner datagrams' payload size, gso_size. An
 * IPv4/IPv6 UDP packet carrying more than gso_size payload bytes (short or
 * long) is several datagrams, whose boundaries are the sender's: when its
 * UDP length fits the packet, its checksum field is the partial sum a GSO
 * sender leaves and the datagrams (l3 + 8 + gso_size) fit mtu, fill *vh for
 * UDP segmentation at gso_size (ul_tun_udp_gso) and return 1; otherwise
 * return -1: it must not be written whole, as one datagram. 0 (touching
 * nothing) for a packet that is not UDP or is one datagram.
 */
int ul_tun_udp_gso_for_rx(uint8_t *pkt, size_t len, int mtu, size_t gso_size,
                          struct ul_vnet_hdr *vh);

/*
 * The virtio-net header asking the kernel to segment a TCP packet of `len`
 * bytes (IPv4 or IPv6, l3 bytes of IP header, thl bytes of TCP header, both
 * at pkt) into segments of gso_size payload bytes: NEEDS_CSUM at the TCP
 * checksum, which is set to the pseudo-header sum over len - l3 (what the
 * kernel's TSO path expects). Only the headers at pkt are touched; the
 * payload may live elsewhere (writev). Fills *vh and returns 1.
 */
int ul_tun_tcp_gso(uint8_t *pkt, size_t l3, size_t thl, size_t len,
                   size_t gso_size, struct ul_vnet_hdr *vh);

/* The same for a UDP packet of `len` bytes (l3 bytes of IP header, its UDP
 * length field already len - l3) to be cut into datagrams of gso_size
 * payload bytes (VIRTIO_NET_HDR_GSO_UDP_L4, which TUN writes take since
 * Linux 6.2): NEEDS_CSUM at the UDP checksum, set to the pseudo-header sum.
 * Fills *vh and returns 1. */
int ul_tun_udp_gso(uint8_t *pkt, size_t l3, size_t len, size_t gso_size,
                   struct ul_vnet_hdr *vh);

/* ---- receive coalescing (gro.c) ------------------------------------------
 *
 * Merge the in-order TCP segments, or the equal-sized UDP datagrams, of one
 * flow found in a received batch into super-packets that the TUN takes with
 * a GSO virtio-net header: the
 * receiving stack is crossed once per super-packet instead of once per
 * segment (userspace GRO). The rules are in gro.c's design notes.
 */
#define UL_GRO_END UINT32_MAX
#define UL_GRO_TCP 1u      /* ul_gro_batch protos: coalesce TCP segments */
#define UL_GRO_UDP 2u      /* ... and UDP datagrams (UDP GSO writes work) */
#define UL_GRO_UDP_SEGS 64 /* datagrams per UDP super-packet, at most */

struct ul_gro_item {
  /* in */
  uint8_t *pkt;            /* inner IP packet; NULL = absent (dropped) */
  size_t len;              /* its length, as the IP header says */
  size_t gso_size;         /* a UDP packet of several datagrams from a
                            * tunnel GSO frame: their payload size
                            * (ul_tun_udp_gso_for_rx); it never coalesces.
                            * 0 = a packet as usual */
  /* out */
  uint32_t count;          /* packets this one leads, itself included; 0 for
                            * a follower (written with its leader) or absent */
  uint32_t next;           /* next member of the same super-packet, or
                            * UL_GRO_END */
  size_t total;            /* leader: length of the super-packet */
  struct ul_vnet_hdr vh;   /* leader with count >= 2: the header to write */
};

/*
 * Group items[0..n) (n <= 256). A leader with count >= 2 has had its IP and
 * TCP headers rewritten for the super-packet: write
 *   [vh | leader pkt[0..len)] then, following `next`, each follower's
 *   pkt[vh.hdr_len .. len)
 * to the TUN as one writev() of `total` + UL_VNET_HDR_LEN bytes. A leader
 * with count 1 is untouched and written as before. Within one flow, packets
 * keep their order when leaders are written in index order. Packets longer
 * than mtu (super-frames) never coalesce; mtu <= 0 disables coalescing.
 * protos says which runs may coalesce: UL_GRO_TCP, UL_GRO_UDP or both.
 */
void ul_gro_batch(struct ul_gro_item *items, uint32_t n, int mtu, unsigned protos);

/*
 * A TUN writer (the receive side of both engines): the fd, its MTU cache,
 * and whether GSO writes work (see tun.c: a kernel that refuses them with
 * EINVAL/EIO gets segments cut in software instead). Counters are written
 * by the one writing thread with relaxed atomics; anyone may read them.
 */
struct ul_tun_writer {
  int fd;
  int gso;                  /* 1: TCP GSO writes in use; 0 once refused */
  int uso;                  /* 1: UDP GSO writes in use: the probe found
                             * them taken; 0 before and once refused */
  int test_refuse_gso;      /* test hook: treat every GSO write as EINVAL */
  struct ul_tun_mtu_cache mtu;
  uint64_t gso_refused;     /* GSO writes refused (probe included) */
  uint64_t soft_segments;   /* segments written by the software fallback */
  uint64_t runs[2];         /* coalesced super-packets written with GSO:
                             * [0] TCP, [1] UDP */
  uint64_t run_packets[2];  /* the received packets they carried */
  uint8_t *scratch;         /* 2 x 64 KiB for the fallback */
};

int ul_tun_writer_init(struct ul_tun_writer *w, int fd);
void ul_tun_writer_free(struct ul_tun_writer *w);

/* Write one small TCP GSO packet that must be taken (dropped by the stack
 * as martian afterwards). 1 = GSO writes work; 0 = refused (EINVAL/EIO):
 * GSO is now off; -errno for another failure (GSO stays on). Then the same
 * with a UDP GSO packet: UDP GSO writes (w->uso) are on when it is taken;
 * a refusal (kernels before 6.2) is counted in gso_refused as well. */
int ul_tun_writer_probe(struct ul_tun_writer *w);

/*
 * Write items[0..n) (n <= 256), grouped by ul_gro_batch(), to the writer's
 * TUN (opened with vnet_hdr): leaders in index order, each as one writev()
 * whose first iovec is the virtio-net header (no headroom is needed before
 * pkt). A leader with count >= 2 goes as described above; a packet that
 * stands alone gets the header ul_vnet_hdr_for_rx() chooses or, for a TCP
 * packet longer than mtu, the GSO header of ul_tun_gso_for_rx() (which
 * rewrites its TCP checksum field). GSO writes go in software segments once
 * the kernel refused one. Absent items (pkt NULL) and followers write
 * nothing themselves. failed (n entries, or NULL): 1 for each packet whose
 * write failed (EAGAIN included), else 0. Returns the number of packets
 * that failed; errno then holds the error of the last failed write.
 */
uint32_t ul_tun_write_batch(struct ul_tun_writer *w, const struct ul_gro_item *items,
                            uint32_t n, int mtu, uint8_t *failed);

/* A received batch: the TUN MTU (cached, re-read when a packet exceeds it),
 * ul_gro_batch (only while GSO writes work), then ul_tun_write_batch. */
uint32_t ul_tun_write_received(struct ul_tun_writer *w, struct ul_gro_item *items,
                               uint32_t n, uint8_t *failed);

/* Open a non-blocking UDP socket bound to addr:port (any address when
 * addr == NULL, family then from `family`), SO_RCVBUF/SO_SNDBUF raised.
 * Returns the fd or -errno (-EADDRINUSE when the port is taken). */
int ul_udp_open(int family, const struct ul_addr *addr, uint16_t port);

/* A UDP socket that only sends: as ul_udp_open on an ephemeral port, but
 * every datagram sent to it is dropped by the kernel before it is queued
 * (a filter that accepts nothing; see udp.c). For sockets nobody reads. */
int ul_udp_open_sender(int family, const struct ul_addr *addr);

/* n (1..UL_THREADS_MAX) sockets bound to addr:port as one SO_REUSEPORT
 * group (the kernel spreads datagrams over them by flow hash), into fds[].
 * A plain socket (no SO_REUSEPORT) is bound first and closed only once the
 * group holds the port, so a port that is taken, by a plain socket or a
 * group, gives -EADDRINUSE (see udp.c). 0 or -errno (no fd left open). */
int ul_udp_open_group(int family, const struct ul_addr *addr, uint16_t port,
                      int *fds, unsigned n);

/* Turn UDP_GRO on (on = 1) or off on a UDP socket; 0 or -errno. With it on,
 * the engine's receive path splits coalesced buffers (ul_udp_gro_split). */
int ul_udp_set_gro(int fd, int on);
/* UDP_SEGMENT socket option (0: off); 0 or -errno (see udp.c). */
int ul_udp_set_segment(int fd, int size);

/* rtnetlink operations; every one waits for the kernel's ACK. */
int ul_nl_link_index(const char *ifname);                 /* ifindex or -errno */
int ul_nl_link_set(const char *ifname, int mtu, int up);  /* mtu<=0: keep */
int ul_nl_addr(int add, const char *ifname, const struct ul_addr *addr,
               int prefix_len);
/* Route to dst/prefix_len out of ifname in the main table; via may be NULL;
 * onlink sets RTNH_F_ONLINK. add=1 adds it exclusively, tagged with
 * userlay's protocol number (UL_RTPROT): -EEXIST when any route for that
 * destination exists. add=0 deletes it only if it is ours (that device and
 * that protocol): -ESRCH otherwise. */
int ul_nl_route(int add, const char *ifname, const struct ul_addr *dst,
                int prefix_len, const struct ul_addr *via, int onlink);

/* One route of a dump (main table). via.family == 0: no gateway. */
struct ul_route {
  struct ul_addr dst;
  int prefix_len;
  struct ul_addr via;
  int oif;          /* output interface index, 0 when none (multipath) */
  uint8_t protocol; /* RTPROT_*; userlay's are UL_RTPROT */
};
/* Called once per matching route; a non-zero return stops the dump and is
 * returned by ul_nl_route_dump. */
typedef int (*ul_route_fn)(const struct ul_route *r, void *ctx);
/* Dump the main table's unicast routes of `family` (4 or 6) out of `oif`
 * (0: any) with protocol `protocol` (< 0: any), calling fn for each.
 * Returns 0, fn's non-zero value, or -errno. */
int ul_nl_route_dump(int family, int oif, int protocol, ul_route_fn fn,
                     void *ctx);
int ul_nl_link_del(const char *ifname);

/* ---- engine --------------------------------------------------------------
 *
 * Two dedicated threads: tx (TUN -> lookup -> encap -> sendmmsg) and rx
 * (recvmmsg -> validate -> decap -> TUN). The FDB is swapped atomically; a
 * replaced table is freed once both threads have passed a quiescent point.
 */
#define UL_TX_FDS_MAX 64
#define UL_THREADS_MAX 8 /* tx/rx thread pairs (--threads) */

/* The underlay UDP sockets of one address family (udp.c), owned by the
 * caller. */
struct ul_engine_udp {
  int udp_fd;              /* receives; sends too when n_tx_fds = 0 */
  /* Sockets to send from, one outer source port each (bound to the same
   * address as udp_fd, port 0): a packet leaves from
   * tx_fds[ul_flow_pick(ul_flow_hash(inner), n_tx_fds)], so each inner flow
   * keeps one source port and flows spread over them (see codec.c).
   * 0 = all from udp_fd. */
  int tx_fds[UL_TX_FDS_MAX];
  uint32_t n_tx_fds;
  /* Receive sockets of thread pairs 1.. (udp_fds[0] is ignored: pair 0
   * receives on udp_fd); with threads > 1, udp_fd and these are one
   * SO_REUSEPORT group (ul_udp_open_group). */
  int udp_fds[UL_THREADS_MAX];
};

struct ul_engine_cfg {
  int tun_fd;              /* opened with vnet_hdr = 1 */
  /* Underlay sockets, one set per address family: udp[0] always, udp[1]
   * too on a dual-stack node (n_udp = 2; 0 counts as 1), of the other
   * family. A packet leaves from the set of its FDB peer entry's family;
   * each set gets an rx thread per pair (see engine.c, "Dual stack"). */
  struct ul_engine_udp udp[2];
  uint32_t n_udp;
  /* Thread pairs, 1..UL_THREADS_MAX (0 = 1). Pair i reads TUN queue
   * tun_fds[i] and receives on udp[k].udp_fds[i]; pair 0 uses tun_fd and
   * udp[k].udp_fd (tun_fds[0] is ignored). With threads > 1 the TUN is
   * multi-queue (ul_tun_open_queue). All pairs send from the tx_fds (or
   * udp_fd) of the set of the destination's family. */
  uint32_t threads;
  int tun_fds[UL_THREADS_MAX];
  struct ul_codec_cfg codec;
  struct ul_addr icmp_src4; /* source of ICMP errors for v4 (family 0: none) */
  struct ul_addr icmp_src6; /* likewise for v6 */
  uint64_t *counters;      /* (max_slot + 1) * UL_C_SLOT_WIDTH, caller-owned */
  uint32_t max_slot;       /* highest valid peer slot */
  uint32_t batch;          /* packets per batch, 1..256 (default 64) */
  int probe_tun_gso;       /* probe GSO writes to the TUN at create (offloads auto) */
  int test_refuse_tun_gso; /* test hook: the TUN "refuses" every GSO write */
};

/* Offload statistics of a running engine (each read with a relaxed load). */
struct ul_engine_stats {
  uint64_t tso_packets;       /* TSO/USO super-packets read from the TUN and split */
  uint64_t tso_segments;      /* segments they gave */
  uint64_t gro_buffers;       /* UDP GRO buffers of 2+ datagrams received */
  uint64_t gro_datagrams;     /* datagrams in them */
  int tun_gso;                /* TCP GSO writes to the TUN in use */
  int tun_uso;                /* UDP GSO writes to the TUN in use */
  uint64_t tun_gso_refused;   /* GSO writes the TUN refused (probe included) */
  uint64_t tun_soft_segments; /* segments written by the software fallback */
  uint64_t tun_runs[2];       /* coalesced super-packets written: TCP, UDP */
  uint64_t tun_run_packets[2]; /* received packets in them */
  uint64_t partial_csum;      /* packets sent with the inner checksum left
                               * partial, to peers that take it (csum.c) */
  uint64_t tx_after_rx;       /* tx passes an rx thread ran for its pair
                               * ("Replies" in engine.c) */
};

struct ul_engine;

int ul_engine_create(const struct ul_engine_cfg *cfg, struct ul_engine **out);
/* Takes ownership of fdb (may be NULL: everything is dropped as no route). */
void ul_engine_set_fdb(struct ul_engine *e, struct ul_fdb *fdb);
int ul_engine_start(struct ul_engine *e);
/* Wake all threads, join them. Idempotent. Does not close the fds. */
int ul_engine_stop(struct ul_engine *e);
void ul_engine_stats(const struct ul_engine *e, struct ul_engine_stats *st);
/* Stops if running, frees the current FDB and the engine. */
void ul_engine_destroy(struct ul_engine *e);

#ifdef __cplusplus
}
#endif

#endif /* USERLAY_H */
