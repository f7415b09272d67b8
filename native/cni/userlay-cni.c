/*
 * userlay CNI shim: the binary a container runtime executes as the "userlay" plugin.
 *
 * Host machines have no Node.js, so the plugin the runtime runs is this small C program. It
 * does no networking itself: the userlay agent on the node does the work (it knows every
 * attachment on its node). The shim
 *
 *   1. answers VERSION itself (runtimes call it before ADD and DEL, agent up or not);
 *   2. reads the network config from stdin and picks two optional top-level keys from it:
 *        "socket"   the agent's unix socket   (default /run/userlay/cni.sock)
 *        "stateDir" the agent's CNI state dir (default /var/lib/userlay/cni; DEL queue below it)
 *   3. connects to the socket and sends one request:
 *        "USERLAY-CNI 1\n", then every CNI_* variable as "NAME=value\0", then "\0",
 *        then the config bytes; then it shuts down its write side;
 *   4. relays the answer: the agent writes "<exit code>\n" and then what goes to stdout.
 *
 * Agent unreachable (not running, socket missing, connection dropped, no answer in time):
 *   - DEL is written to <stateDir>/queue/ as the same request bytes (temp name, fsync, rename)
 *     and reported as success; the agent replays the queue when it starts, so no IP leaks.
 *   - everything else fails with CNI error 50 ("plugin not available") saying why.
 * stdout carries only the result or the spec's error object; the exit code is non-zero on error.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_SOCKET "/run/userlay/cni.sock"
#define DEFAULT_STATE_DIR "/var/lib/userlay/cni"
#define MAX_CONFIG (4u << 20)   /* bytes of stdin we accept */
#define MAX_ANSWER (16u << 20)  /* bytes of answer we relay */
#define ANSWER_TIMEOUT_S 240    /* an ADD runs two delegates; be generous */

static const char *const versions[] = { "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
#define NVERSIONS (sizeof versions / sizeof versions[0])

/* A growable byte buffer. */
struct buf {
  char *p;
  size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

/* Read fd to EOF into b (at most max bytes). */
static int read_all(int fd, struct buf *b, size_t max) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return 0;
    if (b->len + (size_t)n > max) return -EFBIG;
    int rc = buf_add(b, chunk, (size_t)n);
    if (rc < 0) return rc;
  }
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---- just enough JSON to read two top-level string members ---- */

static size_t skip_ws(const char *s, size_t i, size_t n) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* s[i] is '"': return the index after the closing quote, or n when unterminated. When out is
 * given, the unescaped text goes there (\uXXXX and overlong values make it unusable: *ok = 0). */
static size_t scan_string(const char *s, size_t i, size_t n, char *out, size_t outlen, int *ok) {
  size_t o = 0;
  for (i++; i < n; i++) {
    char c = s[i];
    if (c == '"') {
      if (out) out[o] = '\0';
      return i + 1;
    }
    if (c == '\\') {
      if (++i >= n) break;
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      const char *hit = strchr(from, s[i]);
      if (!hit || s[i] == '\0') { if (ok) *ok = 0; continue; }
      c = to[hit - from];
    }
    if (out) {
      if (o + 1 >= outlen) *ok = 0;
      else out[o++] = c;
    }
  }
  if (ok) *ok = 0;
  return n;
}

/* Skip one JSON value starting at s[i]; return the index after it. */
static size_t skip_value(const char *s, size_t i, size_t n) {
  if (i < n && s[i] == '"') return scan_string(s, i, n, NULL, 0, NULL);
  int depth = 0;
  for (; i < n; i++) {
    char c = s[i];
    if (c == '"') { i = scan_string(s, i, n, NULL, 0, NULL) - 1; continue; }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') { if (depth == 0) return i; if (--depth == 0) return i + 1; }
    else if (c == ',' && depth == 0) return i;
  }
  return n;
}

/* The string value of top-level member `key` of the object in s[0..n) into out; 1 if found. */
static int json_top_string(const char *s, size_t n, const char *key, char *out, size_t outlen) {
  size_t i = skip_ws(s, 0, n);
  if (i >= n || s[i] != '{') return 0;
  i++;
  for (;;) {
    i = skip_ws(s, i, n);
    if (i >= n || s[i] != '"') return 0;
    char name[64];
    int ok = 1;
    i = scan_string(s, i, n, name, sizeof name, &ok);
    i = skip_ws(s, i, n);
    if (i >= n || s[i] != ':') return 0;
    i = skip_ws(s, i + 1, n);
    if (ok && strcmp(name, key) == 0 && i < n && s[i] == '"') {
      int vok = 1;
      scan_string(s, i, n, out, outlen, &vok);
      return vok;
    }
    i = skip_ws(s, skip_value(s, i, n), n);
    if (i >= n || s[i] != ',') return 0;
    i++;
  }
}

/* ---- answers ---- */

static const char *known_version(const char *v) {
  for (size_t k = 0; k < NVERSIONS; k++)
    if (strcmp(v, versions[k]) == 0) return versions[k];
  return NULL;
}

static void put_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* Print the spec's error object and return the exit code for it. */
static int cni_error(const char *version, int code, const char *msg, const char *details) {
  printf("{\"cniVersion\":");
  put_json_string(stdout, version);
  printf(",\"code\":%d,\"msg\":", code);
  put_json_string(stdout, msg);
  if (details && *details) {
    printf(",\"details\":");
    put_json_string(stdout, details);
  }
  printf("}\n");
  fflush(stdout);
  return 1;
}

static int cmd_version(const char *version) {
  printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[", version);
  for (size_t k = 0; k < NVERSIONS; k++) printf("%s\"%s\"", k ? "," : "", versions[k]);
  printf("]}\n");
  fflush(stdout);
  return 0;
}

/* ---- the request ---- */

static int build_request(struct buf *req, const struct buf *config) {
  static const char magic[] = "USERLAY-CNI 1\n";
  int rc = buf_add(req, magic, sizeof magic - 1);
  for (char **e = environ; rc == 0 && *e; e++)
    if (strncmp(*e, "CNI_", 4) == 0) rc = buf_add(req, *e, strlen(*e) + 1);
  if (rc == 0) rc = buf_add(req, "", 1);
  if (rc == 0 && config->len) rc = buf_add(req, config->p, config->len);
  return rc;
}

/* Send req to the agent at path; on success *answer holds what it wrote back. */
static int ask_agent(const char *path, const struct buf *req, struct buf *answer) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct timeval tv = { .tv_sec = ANSWER_TIMEOUT_S };
  int rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
      connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) rc = -errno;
  if (rc == 0) rc = write_all(fd, req->p, req->len);
  if (rc == 0 && shutdown(fd, SHUT_WR) < 0) rc = -errno;
  if (rc == 0) rc = read_all(fd, answer, MAX_ANSWER);
  close(fd);
  if (rc == -EAGAIN) rc = -ETIMEDOUT;
  return rc;
}

static int mkdir_p(const char *dir) {
  char tmp[PATH_MAX];
  if (strlen(dir) >= sizeof tmp) return -ENAMETOOLONG;
  strcpy(tmp, dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) < 0 && errno != EEXIST) return -errno;
  return 0;
}

/* Write the DEL request into <stateDir>/queue atomically: temp name, fsync, rename, fsync dir. */
static int queue_del(const char *state_dir, const struct buf *req) {
  char dir[PATH_MAX], tmp[PATH_MAX + 64], final[PATH_MAX + 64];
  if ((size_t)snprintf(dir, sizeof dir, "%s/queue", state_dir) >= sizeof dir) return -ENAMETOOLONG;
  int rc = mkdir_p(dir);
  if (rc < 0) return rc;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(tmp, sizeof tmp, "%s/.del-%lld%09ld-%d.tmp", dir, (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
  snprintf(final, sizeof final, "%s/del-%lld%09ld-%d.req", dir, (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  rc = write_all(fd, req->p, req->len);
  if (rc == 0 && fsync(fd) < 0) rc = -errno;
  if (close(fd) < 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, final) < 0) rc = -errno;
  if (rc < 0) {
    unlink(tmp);
    return rc;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) < 0) rc = -errno;
    close(dfd);
  }
  return rc;
}

/* Parse "<code>\n<stdout>" and relay it. */
static int relay(const struct buf *answer, const char *version) {
  char *nl = answer->len ? memchr(answer->p, '\n', answer->len) : NULL;
  char *end = NULL;
  long code = nl ? strtol(answer->p, &end, 10) : -1;
  if (!nl || end != nl || code < 0 || code > 255)
    return cni_error(version, 999, "userlay agent sent a malformed answer", NULL);
  size_t off = (size_t)(nl - answer->p) + 1;
  if (write_all(STDOUT_FILENO, answer->p + off, answer->len - off) < 0) return 1;
  return (int)code;
}

int main(void) {
  const char *cmd = getenv("CNI_COMMAND");
  struct buf config = { 0 };
  int rc = read_all(STDIN_FILENO, &config, MAX_CONFIG);

  char version[32] = "";
  const char *v = "1.1.0";
  if (rc == 0 && config.len && json_top_string(config.p, config.len, "cniVersion", version, sizeof version) &&
      known_version(version))
    v = known_version(version);

  if (cmd && strcmp(cmd, "VERSION") == 0) return cmd_version(v);
  if (rc < 0) return cni_error(v, 5, "userlay: reading the network config from stdin failed", strerror(-rc));
  if (!cmd || !*cmd) return cni_error(v, 4, "userlay: CNI_COMMAND is not set", NULL);

  char sock[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
  char state_dir[PATH_MAX] = DEFAULT_STATE_DIR;
  if (config.len) {
    json_top_string(config.p, config.len, "socket", sock, sizeof sock);
    json_top_string(config.p, config.len, "stateDir", state_dir, sizeof state_dir);
  }

  struct buf req = { 0 }, answer = { 0 };
  if (build_request(&req, &config) < 0) return cni_error(v, 5, "userlay: out of memory", NULL);
  rc = ask_agent(sock, &req, &answer);
  if (rc == 0 && answer.len > 0) return relay(&answer, v);
  if (rc == 0) rc = -ECONNRESET; /* the agent closed without answering */

  char why[sizeof sock + 128];
  snprintf(why, sizeof why, "%s: %s", sock, strerror(-rc));
  char msg[sizeof why + sizeof state_dir + 128];
  if (strcmp(cmd, "DEL") == 0) {
    int q = queue_del(state_dir, &req);
    if (q == 0) return 0;
    snprintf(msg, sizeof msg, "userlay agent not reachable (%s) and queueing the DEL in %s/queue failed", why, state_dir);
    return cni_error(v, 5, msg, strerror(-q));
  }
  snprintf(msg, sizeof msg, "userlay agent is not running on this node (%s)", why);
  return cni_error(v, 50, msg, NULL);
}
