/*
 * Conversion between JS values and C values. The arg_* and prop_* readers
 * return false on a wrong type or range; the caller then throws a TypeError
 * naming the argument. make_* and set_int build results.
 */
#include "binding.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

bool is_nullish(napi_env env, napi_value v)
{
  napi_valuetype t;

  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined ||
         t == napi_null;
}

/* Fetch up to `n` arguments (missing ones read as undefined) and `this`. */
bool get_args(napi_env env, napi_callback_info info, size_t n,
              napi_value *argv, napi_value *self)
{
  size_t argc = n;

  return napi_get_cb_info(env, info, &argc, argv, self, NULL) == napi_ok;
}

/* A string of at most cap - 1 UTF-8 bytes (longer ones are rejected, not
 * truncated). */
bool arg_string(napi_env env, napi_value v, char *buf, size_t cap)
{
  size_t len;

  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok ||
      len >= cap)
    return false;
  return napi_get_value_string_utf8(env, v, buf, cap, &len) == napi_ok;
}

bool arg_int(napi_env env, napi_value v, int64_t lo, int64_t hi,
             int64_t *out)
{
  napi_valuetype t;
  double d;

  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok)
    return false;
  if (d != (double)(int64_t)d || d < (double)lo || d > (double)hi)
    return false;
  *out = (int64_t)d;
  return true;
}

bool arg_bool(napi_env env, napi_value v, bool *out)
{
  if (is_nullish(env, v)) {
    *out = false;
    return true;
  }
  return napi_get_value_bool(env, v, out) == napi_ok;
}

/* A Uint8Array (Buffer included): its bytes and length. */
bool arg_tagged(napi_env env, napi_value v, const napi_type_tag *tag, void **data)
{
  bool ok;

  if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok)
    return false;
  return napi_get_value_external(env, v, data) == napi_ok;
}

bool arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len)
{
  napi_typedarray_type type;
  bool is_ta;
  void *p;

  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta)
    return false;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok ||
      type != napi_uint8_array)
    return false;
  *data = p;
  return true;
}

/* "198.18.0.1" or "fd00::1"; the family follows from the presence of ':'. */
bool parse_addr(const char *s, struct ul_addr *a)
{
  memset(a, 0, sizeof(*a));
  a->family = strchr(s, ':') != NULL ? 6 : 4;
  return inet_pton(a->family == 6 ? AF_INET6 : AF_INET, s, a->bytes) == 1;
}

bool arg_addr(napi_env env, napi_value v, char str[64],
              struct ul_addr *a)
{
  return arg_string(env, v, str, 64) && parse_addr(str, a);
}

napi_value make_int(napi_env env, int64_t v)
{
  napi_value out;

  CHECK(napi_create_int64(env, (int64_t)v, &out));
  return out;
}

napi_value make_undefined(napi_env env)
{
  napi_value out;

  CHECK(napi_get_undefined(env, &out));
  return out;
}

bool set_int(napi_env env, napi_value obj, const char *key, int64_t v)
{
  napi_value n;

  return napi_create_int64(env, v, &n) == napi_ok &&
         napi_set_named_property(env, obj, key, n) == napi_ok;
}

bool prop_addr(napi_env env, napi_value obj, const char *key,
               struct ul_addr *a)
{
  napi_value v;
  char str[64];

  memset(a, 0, sizeof(*a));
  if (napi_get_named_property(env, obj, key, &v) != napi_ok)
    return false;
  if (is_nullish(env, v))
    return true;
  if (!arg_string(env, v, str, sizeof(str)))
    return false;
  return str[0] == '\0' || parse_addr(str, a);
}

bool prop_int(napi_env env, napi_value obj, const char *key,
              int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
  napi_value v;

  if (napi_get_named_property(env, obj, key, &v) != napi_ok)
    return false;
  if (is_nullish(env, v) && dflt >= lo) {
    *out = dflt;
    return true;
  }
  return arg_int(env, v, lo, hi, out);
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
  unsigned b[6];
  char tail;
  int i;

  if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
             &b[4], &b[5], &tail) != 6)
    return false;
  for (i = 0; i < 6; i++)
    mac[i] = (uint8_t)b[i];
  return true;
}

/* { mode: 'vxlan'|'udp', vni, mac } -> struct ul_codec_cfg */
bool arg_codec(napi_env env, napi_value v, struct ul_codec_cfg *c)
{
  napi_value mode, vni, mac;
  char str[32];
  int64_t n;

  memset(c, 0, sizeof(*c));
  if (is_nullish(env, v) ||
      napi_get_named_property(env, v, "mode", &mode) != napi_ok ||
      napi_get_named_property(env, v, "vni", &vni) != napi_ok ||
      napi_get_named_property(env, v, "mac", &mac) != napi_ok)
    return false;
  if (!arg_string(env, mode, str, sizeof(str)))
    return false;
  if (strcmp(str, "vxlan") == 0)
    c->mode = UL_MODE_VXLAN;
  else if (strcmp(str, "udp") == 0)
    c->mode = UL_MODE_UDP;
  else
    return false;
  if (c->mode == UL_MODE_UDP && is_nullish(env, vni))
    n = 0;
  else if (!arg_int(env, vni, 0, 0xffffff, &n))
    return false;
  c->vni = (uint32_t)n;
  if (c->mode == UL_MODE_UDP) /* the MAC is not used */
    return true;
  return arg_string(env, mac, str, sizeof(str)) && parse_mac(str, c->mac);
}

