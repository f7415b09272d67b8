/*
 * be.h — big-endian loads and stores of packet fields, for the C core's
 * parsers (codec, csum, gro, icmp, segment). Unaligned-safe byte by byte.
 */
#ifndef USERLAY_BE_H
#define USERLAY_BE_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t load_be16(const uint8_t *p)
{
  return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t load_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* Stores the low 16 bits of v. */
static inline void store_be16(uint8_t *p, size_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

#endif /* USERLAY_BE_H */
