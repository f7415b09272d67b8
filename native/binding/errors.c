/*
 * Errors: a negative errno becomes a JS Error whose `code` is the errno name
 * and whose message reads "<op> <subject>: <strerror>"; bad arguments become
 * a TypeError with code "EINVAL".
 */
#include "binding.h"

#include <stdio.h>
#include <string.h>

/* Fill msg with "<op> <subject>: <strerror>" and return the errno name. */
static const char *errno_text(int err, const char *op, const char *subject,
                              char *msg, size_t cap)
{
  const char *name;

  if (err < 0)
    err = -err;
  name = strerrorname_np(err);
  snprintf(msg, cap, "%s %s: %s", op, subject, strerror(err));
  return name != NULL ? name : "EIO";
}

napi_value throw_errno(napi_env env, int err, const char *op,
                       const char *subject)
{
  char msg[256];
  const char *code = errno_text(err, op, subject, msg, sizeof(msg));

  napi_throw_error(env, code, msg);
  return NULL;
}

napi_value make_errno_error(napi_env env, int err, const char *op,
                            const char *subject)
{
  char msg[256];
  const char *code = errno_text(err, op, subject, msg, sizeof(msg));
  napi_value c, m, out;

  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok ||
      napi_create_error(env, c, m, &out) != napi_ok)
    return NULL;
  return out;
}

napi_value throw_type(napi_env env, const char *fn, const char *what)
{
  char msg[160];

  snprintf(msg, sizeof(msg), "%s: %s", fn, what);
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}
