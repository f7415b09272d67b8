/*
 * sockaddr.h — conversions between the core's addresses (family 4/6 and 16
 * bytes) and socket addresses, for the files that talk to UDP sockets
 * (udp.c, engine-tx.c, engine-rx.c).
 */
#ifndef USERLAY_SOCKADDR_H
#define USERLAY_SOCKADDR_H

#include "userlay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* Length of the sockaddr_in or sockaddr_in6 held in ss. */
static inline socklen_t ul_sockaddr_len(const struct sockaddr_storage *ss)
{
  return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                  : sizeof(struct sockaddr_in6);
}

/* Fill ss with family (4 or 6), address bytes (NULL: any) and port (host
 * order); returns its length. */
static inline socklen_t ul_sockaddr_set(struct sockaddr_storage *ss, int family,
                                        const uint8_t *bytes, uint16_t port)
{
  memset(ss, 0, sizeof(*ss));
  if (family == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (bytes != NULL)
      memcpy(&sin->sin_addr, bytes, 4);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (bytes != NULL)
      memcpy(&sin6->sin6_addr, bytes, 16);
  }
  return ul_sockaddr_len(ss);
}

/* The address in ss as a struct ul_addr (family 0 when neither v4 nor v6). */
static inline void ul_sockaddr_get(const struct sockaddr_storage *ss,
                                   struct ul_addr *a)
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

#endif /* USERLAY_SOCKADDR_H */
