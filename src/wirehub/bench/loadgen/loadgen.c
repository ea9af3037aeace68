/* The C load generator of `wirehub bench`: a drop-in for node/loadgen.mjs that
 * costs far less CPU per message, so that the servers, not the load generator,
 * set the figures. Usage: loadgen '<json config>' (the same config runner.py
 * gives loadgen.mjs). Build: cc -O2 -o loadgen loadgen.c (C11, Linux, libc only).
 *
 * Output: one JSON line on stdout, {"results": [record, ...]} with the same
 * records and fields as loadgen.mjs (or {"error": "..."}); progress on stderr.
 * Every phase is bounded in time.
 *
 * One thread, one epoll loop, level-triggered. Per turn: epoll_wait, one read()
 * per readable connection into a shared buffer, every complete frame in it
 * parsed and handled (a partial frame is carried in the connection's own
 * buffer), then one write() per connection with something to send (frames are
 * built straight into a per-connection output buffer), like wrk.
 *
 * This is a benchmark tool, not the product: it writes its own minimal
 * RFC 6455 client framing. Client frames are masked with one random key per
 * connection (constant payloads are masked once, ahead of time); server
 * frames are parsed in full (7/16/64-bit lengths, fragmented messages,
 * ping -> pong, close -> close); the handshake checks the 101 status and
 * Sec-WebSocket-Accept (SHA-1 + base64 below). No extension is offered.
 *
 * Server kinds: wirehub (/echo raw echo, /ws protocol v1: welcome, subscribe
 * with id, publish fire-and-forget, send -> reply), raw (the peers' /echo,
 * /broadcast, /pubsub) and socketio (Engine.IO 4 / Socket.IO 5 over the
 * WebSocket transport only).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h> /* NAN, INFINITY, isfinite, isnan only: no libm to link */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---------------------------------------------------------------- utilities */

/* floor, ceil and round without libm (the values are far below 2^53) */
static double ffloor(double x) { double t = (double)(long long)x; return t > x ? t - 1 : t; }
static double fceil(double x) { double t = (double)(long long)x; return t < x ? t + 1 : t; }
static double fround(double x) { return ffloor(x + 0.5); }
static double fabs_(double x) { return x < 0 ? -x : x; }
static double t_origin;
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6 - t_origin;
}

static void logf_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) { fputs("{\"error\":\"out of memory\"}\n", stdout); exit(1); }
    return q;
}

/* growable string, for the JSON output and error texts */
typedef struct { char *s; size_t n, cap; } sbuf;
static void sb_add(sbuf *b, const char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    sb_add(b, tmp, (size_t)n);
}
static void sb_jstr(sbuf *b, const char *p, size_t n) {
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') { char e[2] = {'\\', (char)ch}; sb_add(b, e, 2); }
        else if (ch < 0x20 || ch == 0x7f) sb_printf(b, "\\u%04x", ch);
        else sb_add(b, (const char *)&ch, 1);
    }
    sb_add(b, "\"", 1);
}

static void fail_exit(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf b = {0};
    sb_add(&b, "{\"error\":", 9);
    sb_jstr(&b, msg, strlen(msg));
    sb_add(&b, "}\n", 2);
    fwrite(b.s, 1, b.n, stdout);
    fflush(stdout);
    logf_("%s", msg);
    exit(1);
}

/* xorshift64*: mask keys and handshake keys (unpredictability is not the point) */
static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------- SHA-1, base64 */
#include "sha1_base64.h"

/* ------------------------------------------------------- config (small JSON) */
#define MAXKEYS 64
static struct cfgval { char key[48]; int type; double num; char *str; char **arr; int narr; } cfgv[MAXKEYS];
static int ncfg;
enum { J_NUM = 1, J_STR, J_ARR, J_NULL, J_BOOL };

static const char *jp;
static void jws(void) { while (*jp == ' ' || *jp == '\t' || *jp == '\n' || *jp == '\r') jp++; }
static char *jstring(void) {
    if (*jp != '"') fail_exit("config: string expected at '%.20s'", jp);
    jp++;
    sbuf b = {0};
    sb_add(&b, "", 0);
    while (*jp && *jp != '"') {
        if (*jp == '\\') {
            jp++;
            char c = *jp;
            if (c == 'n') c = '\n'; else if (c == 't') c = '\t'; else if (c == 'r') c = '\r';
            else if (c == 'b') c = '\b'; else if (c == 'f') c = '\f';
            else if (c == 'u') { /* config strings are ASCII; keep low byte */
                unsigned v = 0;
                for (int i = 0; i < 4 && jp[1]; i++) { jp++; v = v * 16 + (unsigned)(isdigit((unsigned char)*jp) ? *jp - '0' : (tolower((unsigned char)*jp) - 'a' + 10)); }
                c = (char)(v & 0x7f);
            }
            sb_add(&b, &c, 1);
            jp++;
        } else sb_add(&b, jp++, 1);
    }
    if (*jp != '"') fail_exit("config: unterminated string");
    jp++;
    return b.s;
}
static void jskip(void);
static void jskip(void) {
    jws();
    if (*jp == '"') { free(jstring()); return; }
    if (*jp == '{' || *jp == '[') {
        char close = *jp == '{' ? '}' : ']';
        jp++;
        jws();
        while (*jp && *jp != close) {
            if (close == '}') { free(jstring()); jws(); if (*jp == ':') jp++; }
            jskip();
            jws();
            if (*jp == ',') jp++;
            jws();
        }
        if (*jp) jp++;
        return;
    }
    while (*jp && *jp != ',' && *jp != '}' && *jp != ']') jp++;
}
static void parse_config(const char *text) {
    jp = text;
    jws();
    if (*jp != '{') fail_exit("config: a JSON object expected");
    jp++;
    for (;;) {
        jws();
        if (*jp == '}') break;
        char *key = jstring();
        jws();
        if (*jp != ':') fail_exit("config: ':' expected after %s", key);
        jp++;
        jws();
        struct cfgval *v = ncfg < MAXKEYS ? &cfgv[ncfg++] : NULL;
        if (v) snprintf(v->key, sizeof v->key, "%s", key);
        free(key);
        if (*jp == '"') {
            char *s = jstring();
            if (v) { v->type = J_STR; v->str = s; } else free(s);
        } else if (*jp == '[') {
            jp++;
            if (v) v->type = J_ARR;
            for (;;) {
                jws();
                if (*jp == ']') { jp++; break; }
                if (*jp == '"') {
                    char *s = jstring();
                    if (v) { v->arr = xrealloc(v->arr, sizeof(char *) * (size_t)(v->narr + 1)); v->arr[v->narr++] = s; } else free(s);
                } else jskip();
                jws();
                if (*jp == ',') jp++;
            }
        } else if (!strncmp(jp, "null", 4)) {
            jp += 4;
            if (v) v->type = J_NULL;
        } else if (!strncmp(jp, "true", 4) || !strncmp(jp, "false", 5)) {
            if (v) { v->type = J_BOOL; v->num = *jp == 't'; }
            jp += *jp == 't' ? 4 : 5;
        } else if (*jp == '{') {
            jskip();
            if (v) v->type = J_NULL;
        } else {
            char *end;
            double d = strtod(jp, &end);
            if (end == jp) fail_exit("config: bad value at '%.20s'", jp);
            jp = end;
            if (v) { v->type = J_NUM; v->num = d; }
        }
        jws();
        if (*jp == ',') { jp++; continue; }
        if (*jp == '}') break;
        fail_exit("config: ',' or '}' expected at '%.20s'", jp);
    }
}
static struct cfgval *cfg_get(const char *key) {
    for (int i = 0; i < ncfg; i++)
        if (!strcmp(cfgv[i].key, key)) return &cfgv[i];
    return NULL;
}
static double cfg_num(const char *key, double dflt) {
    struct cfgval *v = cfg_get(key);
    return v && (v->type == J_NUM || v->type == J_BOOL) ? v->num : dflt;
}
static const char *cfg_str(const char *key, const char *dflt) {
    struct cfgval *v = cfg_get(key);
    return v && v->type == J_STR ? v->str : dflt;
}

/* -------------------------------------------------------------------- /proc */
static long clk_tck = 100;
static long server_pid;

/* read a small /proc file into buf (NUL-terminated); its length, or -1 */
static ssize_t read_small(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return n;
}

static double cpu_ticks(long pid, int stime_only) {
    char path[64], buf[2048];
    if (pid > 0) snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    else snprintf(path, sizeof path, "/proc/self/stat");
    if (read_small(path, buf, sizeof buf) < 0) return NAN;
    char *p = strrchr(buf, ')');
    if (!p) return NAN;
    p += 2; /* fields from 3 on: state ppid ... utime is field 14, stime 15 */
    double f[13];
    for (int i = 0; i < 13; i++) {
        char *end;
        while (*p == ' ') p++;
        if (i == 0) { while (*p && *p != ' ') p++; f[0] = 0; continue; }
        f[i] = strtod(p, &end);
        if (end == p) return NAN;
        p = end;
    }
    return stime_only ? f[12] : f[11] + f[12];
}
static double rss_kib(long pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if (read_small(path, buf, sizeof buf) < 0) return NAN;
    char *p = strstr(buf, "VmRSS:");
    return p ? strtod(p + 6, NULL) : NAN;
}
/* busy ticks of the whole machine: user nice system steal */
static double machine_busy(void) {
    char buf[512];
    if (read_small("/proc/stat", buf, sizeof buf) < 0) return NAN;
    double f[8] = {0};
    char *p = buf + 3;
    for (int i = 0; i < 8; i++) f[i] = strtod(p, &p);
    return f[0] + f[1] + f[2] + f[7];
}
typedef struct { double t0, me0, sv0, all0, sys0; } cpu_win;
typedef struct { double lg, sv, sys, other; } cpu_use;
static cpu_win cpu_start(void) {
    cpu_win w = {now_ms(), cpu_ticks(0, 0), cpu_ticks(server_pid, 0), machine_busy(), cpu_ticks(server_pid, 1)};
    return w;
}
static double pct(double ticks, double secs) { return isnan(ticks) ? NAN : fround(1000.0 * ticks / (double)clk_tck / secs) / 10.0; }
static cpu_use cpu_stop(cpu_win w) {
    double secs = (now_ms() - w.t0) / 1000.0;
    double me = cpu_ticks(0, 0) - w.me0, sv = cpu_ticks(server_pid, 0) - w.sv0;
    double other = machine_busy() - w.all0 - me - sv;
    if (!(other > 0)) other = isnan(other) ? NAN : 0;
    cpu_use u = {pct(me, secs), pct(sv, secs), pct(cpu_ticks(server_pid, 1) - w.sys0, secs), pct(other, secs)};
    return u;
}

/* ------------------------------------------------------------- connections */
enum { K_WIREHUB, K_RAW, K_SIO };
enum { U_ECHO, U_RPC, U_FANOUT, U_IDLE, U_CHANNELS };
enum { ST_CONNECTING, ST_HANDSHAKE, ST_WELCOME, ST_EIO_OPEN, ST_SIO_CONNECT, ST_OPEN, ST_CLOSED };

typedef struct conn conn_t;
typedef void (*msg_fn)(conn_t *c, const uint8_t *p, size_t n);

struct conn {
    int fd, state, idx, want_out, dirty, frag_active, frag_op, pending, checked, failed_open;
    uint8_t mask[4];
    uint8_t *wbuf; size_t wlen, wcap, woff;   /* frames to send, flushed once per turn */
    uint8_t *cbuf; size_t clen, ccap;         /* carried partial frame (or handshake) */
    uint8_t *fbuf; size_t flen, fcap;         /* fragmented message being assembled */
    uint8_t *pre; size_t prelen;              /* a constant frame, masked ahead of time */
    char key[32];
    const char *path;
    double started;
    unsigned ack_id;
    msg_fn on_msg;
    struct opener *opener;
};

static int KIND;
/* turn_pause_us: sleep that long after a turn that had events, so that more
 * arrives per read (fewer reads, ACKs and wake-ups; burstier load).
 * delayed_ack: TCP_QUICKACK=0 after every read, so the kernel does not send one
 * ACK per read (on loopback that ACK is processed in the reader's context). */
static long pause_us;
static int delack;
static int ep;
static struct sockaddr_in server_addr;
static char host_hdr[64];
static char **sources;
static int nsources, source_next;
static double global_deadline = INFINITY;
static const char *scenario_name = "";

static conn_t **dirty;
static size_t ndirty, dirty_cap;

/* counters for the stderr summary: what a turn of the loop amounts to */
static unsigned long long st_turns, st_reads, st_frames, st_writes;

#define GBUF_SIZE (256 * 1024)
static uint8_t gbuf[GBUF_SIZE];
#define MAX_MESSAGE (64u << 20)

static void mark_dirty(conn_t *c) {
    if (c->dirty) return;
    if (ndirty == dirty_cap) {
        dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
        dirty = xrealloc(dirty, dirty_cap * sizeof *dirty);
    }
    dirty[ndirty++] = c;
    c->dirty = 1;
}
static uint8_t *wreserve(conn_t *c, size_t n) {
    if (c->wlen + n > c->wcap) {
        if (c->woff) { /* reclaim what was written */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff; c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 256;
            while (cap < c->wlen + n) cap *= 2;
            c->wbuf = xrealloc(c->wbuf, cap);
            c->wcap = cap;
        }
    }
    return c->wbuf + c->wlen;
}
static size_t put_header(uint8_t *h, int op, size_t n, const uint8_t mask[4]) {
    size_t hl;
    h[0] = (uint8_t)(0x80 | op);
    if (n < 126) { h[1] = (uint8_t)(0x80 | n); hl = 2; }
    else if (n < 65536) { h[1] = 0x80 | 126; h[2] = (uint8_t)(n >> 8); h[3] = (uint8_t)n; hl = 4; }
    else { h[1] = 0x80 | 127; for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i)); hl = 10; }
    memcpy(h + hl, mask, 4);
    return hl + 4;
}
static void xor_mask(uint8_t *p, size_t n, const uint8_t mask[4]) {
    uint64_t m8;
    uint8_t mm[8];
    for (int i = 0; i < 8; i++) mm[i] = mask[i & 3];
    memcpy(&m8, mm, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { uint64_t v; memcpy(&v, p + i, 8); v ^= m8; memcpy(p + i, &v, 8); }
    for (; i < n; i++) p[i] ^= mask[i & 3];
}
/* a masked client frame, built straight into the connection's output buffer */
static void send_frame(conn_t *c, int op, const void *data, size_t n) {
    if (c->state == ST_CLOSED) return;
    uint8_t *w = wreserve(c, n + 14);
    size_t hl = put_header(w, op, n, c->mask);
    memcpy(w + hl, data, n);
    xor_mask(w + hl, n, c->mask);
    c->wlen += hl + n;
    mark_dirty(c);
}
static void send_text(conn_t *c, const char *s, size_t n) { send_frame(c, 1, s, n); }
/* a constant message: masked once, copied afterwards */
static void prepare_const(conn_t *c, const char *s, size_t n) {
    free(c->pre);
    c->pre = xrealloc(NULL, n + 14);
    size_t hl = put_header(c->pre, 1, n, c->mask);
    memcpy(c->pre + hl, s, n);
    xor_mask(c->pre + hl, n, c->mask);
    c->prelen = hl + n;
}
static void send_pre(conn_t *c) {
    if (c->state == ST_CLOSED) return;
    memcpy(wreserve(c, c->prelen), c->pre, c->prelen);
    c->wlen += c->prelen;
    mark_dirty(c);
}
static void send_raw(conn_t *c, const char *s, size_t n) {
    memcpy(wreserve(c, n), s, n);
    c->wlen += n;
    mark_dirty(c);
}

/* -- opening many connections, `concurrency` handshakes at a time -- */
struct opener {
    int n, started, done, failed, concurrency, use, nerr;
    conn_t **conns;     /* the ones that opened, in order of index */
    conn_t **inflight;
    int ninflight;
    char errs[3][160];
};
static struct opener *cur_opener;

static void conn_close(conn_t *c) {
    if (c->state == ST_CLOSED) return;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = ST_CLOSED;
    c->wlen = c->woff = 0;
}
static void opener_remove(struct opener *o, conn_t *c) {
    for (int i = 0; i < o->ninflight; i++)
        if (o->inflight[i] == c) { o->inflight[i] = o->inflight[--o->ninflight]; break; }
    c->opener = NULL;
    o->done++;
}
static void open_failed(conn_t *c, const char *why) {
    struct opener *o = c->opener;
    conn_close(c);
    if (!o) return;
    opener_remove(o, c);
    o->failed++;
    if (o->nerr < 3) snprintf(o->errs[o->nerr++], sizeof o->errs[0], "%s", why);
}
static void open_succeeded(conn_t *c) {
    c->state = ST_OPEN;
    struct opener *o = c->opener;
    if (!o) return;
    opener_remove(o, c);
    o->conns[c->idx] = c;
}
/* a connection lost after it opened (or failed while opening) */
static void conn_lost(conn_t *c, const char *why) {
    if (c->opener) open_failed(c, why);
    else conn_close(c);
}

static const char *path_for(int use) {
    if (KIND == K_SIO) return "/socket.io/?EIO=4&transport=websocket";
    if (use == U_ECHO) return "/echo";
    if (KIND == K_WIREHUB) return "/ws";
    return use == U_CHANNELS ? "/pubsub" : "/broadcast";
}

static void conn_start(struct opener *o, int idx) {
    conn_t *c = calloc(1, sizeof *c);
    if (!c) fail_exit("out of memory");
    c->idx = idx;
    c->opener = o;
    c->path = path_for(o->use);
    c->started = now_ms();
    o->inflight[o->ninflight++] = c;
    uint64_t r = rnd();
    memcpy(c->mask, &r, 4);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { char e[128]; snprintf(e, sizeof e, "socket: %s", strerror(errno)); c->state = ST_CONNECTING; open_failed(c, e); free(c); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nsources) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        inet_pton(AF_INET, sources[source_next++ % nsources], &src.sin_addr);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
            char e[128]; snprintf(e, sizeof e, "bind: %s", strerror(errno));
            open_failed(c, e); free(c); return;
        }
    }
    c->state = ST_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 && errno != EINPROGRESS) {
        char e[128]; snprintf(e, sizeof e, "connect: %s", strerror(errno));
        open_failed(c, e); free(c); return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        char e[128]; snprintf(e, sizeof e, "epoll: %s", strerror(errno));
        open_failed(c, e); free(c); return;
    }
}
static void opener_fill(void) {
    struct opener *o = cur_opener;
    if (!o) return;
    double now = now_ms();
    for (int i = 0; i < o->ninflight;) {
        conn_t *c = o->inflight[i];
        if (now - c->started > 15000) open_failed(c, "timeout: handshake"); /* swaps in the last */
        else i++;
    }
    while (o->ninflight < o->concurrency && o->started < o->n) conn_start(o, o->started++);
}

static void send_handshake(conn_t *c) {
    uint8_t k[16];
    for (int i = 0; i < 2; i++) { uint64_t r = rnd(); memcpy(k + 8 * i, &r, 8); }
    base64(k, 16, c->key);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     c->path, host_hdr, c->key);
    send_raw(c, req, (size_t)n);
    c->state = ST_HANDSHAKE;
}

static void set_events(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_conn(conn_t *c) {
    if (c->state == ST_CLOSED) { c->wlen = c->woff = 0; return; }
    if (c->woff < c->wlen) {
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        st_writes++;
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            char e[128]; snprintf(e, sizeof e, "write: %s", strerror(errno));
            conn_lost(c, e);
            return;
        }
        if (w > 0) c->woff += (size_t)w;
    }
    if (c->woff == c->wlen) {
        c->woff = c->wlen = 0;
        if (c->want_out) { c->want_out = 0; set_events(c, EPOLLIN); }
    } else if (!c->want_out) { /* the socket is full: write the rest when it drains */
        c->want_out = 1;
        set_events(c, EPOLLIN | EPOLLOUT);
    }
}
static void flush_all(void) {
    for (size_t i = 0; i < ndirty; i++) {
        dirty[i]->dirty = 0;
        flush_conn(dirty[i]);
    }
    ndirty = 0;
}

/* ----------------------------------------------------------- frames, events */
static void socketio_packet(conn_t *c, const uint8_t *p, size_t n);

static void dispatch(conn_t *c, const uint8_t *p, size_t n) {
    switch (c->state) {
    case ST_WELCOME: open_succeeded(c); return; /* wirehub's welcome */
    case ST_EIO_OPEN:
        if (n && p[0] == '0') { send_text(c, "40", 2); c->state = ST_SIO_CONNECT; }
        else if (n && p[0] == '2') send_text(c, "3", 1);
        return;
    case ST_SIO_CONNECT:
        if (n >= 2 && p[0] == '4' && p[1] == '0') open_succeeded(c);
        else if (n >= 2 && p[0] == '4' && p[1] == '4') {
            char e[200]; snprintf(e, sizeof e, "socket.io connect_error: %.*s", (int)(n > 150 ? 150 : n), p);
            open_failed(c, e);
        } else if (n && p[0] == '2') send_text(c, "3", 1);
        return;
    case ST_OPEN:
        if (KIND == K_SIO) socketio_packet(c, p, n);
        else if (c->on_msg) c->on_msg(c, p, n);
        return;
    default: return;
    }
}

static void handle_frame(conn_t *c, int fin, int op, const uint8_t *p, size_t n) {
    switch (op) {
    case 0x0: /* continuation */
        if (!c->frag_active) { conn_lost(c, "protocol error: unexpected continuation frame"); return; }
        if (c->flen + n > MAX_MESSAGE) { conn_lost(c, "message too big"); return; }
        if (c->flen + n > c->fcap) { c->fcap = (c->flen + n) * 2; c->fbuf = xrealloc(c->fbuf, c->fcap); }
        memcpy(c->fbuf + c->flen, p, n);
        c->flen += n;
        if (fin) {
            size_t len = c->flen;
            c->frag_active = 0;
            c->flen = 0;
            dispatch(c, c->fbuf, len);
        }
        return;
    case 0x1: case 0x2:
        if (c->frag_active) { conn_lost(c, "protocol error: new message inside a fragmented one"); return; }
        if (fin) { dispatch(c, p, n); return; }
        c->frag_active = 1;
        c->frag_op = op;
        if (n > c->fcap) { c->fcap = n * 2 + 256; c->fbuf = xrealloc(c->fbuf, c->fcap); }
        memcpy(c->fbuf, p, n);
        c->flen = n;
        return;
    case 0x8: { /* close: answer with the same code, then drop the connection */
        send_frame(c, 0x8, p, n >= 2 ? 2 : 0);
        flush_conn(c);
        conn_lost(c, "closed by the server");
        return;
    }
    case 0x9: send_frame(c, 0xA, p, n); return; /* ping -> pong */
    case 0xA: return;
    default: conn_lost(c, "protocol error: unknown opcode"); return;
    }
}

/* every complete frame of b[0:n]; returns the bytes consumed */
static size_t parse_frames(conn_t *c, uint8_t *b, size_t n) {
    size_t off = 0;
    while (n - off >= 2 && c->state != ST_CLOSED) {
        uint8_t b0 = b[off], b1 = b[off + 1];
        size_t hl = 2;
        uint64_t len = b1 & 0x7f;
        if (len == 126) {
            if (n - off < 4) break;
            len = (uint64_t)b[off + 2] << 8 | b[off + 3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | b[off + 2 + i];
            hl = 10;
        }
        int masked = b1 & 0x80;
        if (masked) hl += 4;
        if (len > MAX_MESSAGE) { conn_lost(c, "message too big"); break; }
        if (n - off < hl + len) break;
        uint8_t *p = b + off + hl;
        if (masked) xor_mask(p, (size_t)len, b + off + hl - 4); /* servers do not mask; tolerated */
        off += hl + (size_t)len;
        st_frames++;
        handle_frame(c, b0 & 0x80, b0 & 0x0f, p, (size_t)len);
    }
    return off;
}

static int header_value(const char *h, size_t n, const char *name, char *out, size_t cap) {
    size_t ln = strlen(name);
    for (size_t i = 0; i + ln < n; i++) {
        if ((i == 0 || h[i - 1] == '\n') && !strncasecmp(h + i, name, ln) && h[i + ln] == ':') {
            size_t j = i + ln + 1;
            while (j < n && (h[j] == ' ' || h[j] == '\t')) j++;
            size_t k = j;
            while (k < n && h[k] != '\r' && h[k] != '\n') k++;
            while (k > j && (h[k - 1] == ' ' || h[k - 1] == '\t')) k--;
            size_t m = k - j < cap - 1 ? k - j : cap - 1;
            memcpy(out, h + j, m);
            out[m] = 0;
            return 1;
        }
    }
    return 0;
}

/* the HTTP answer to the upgrade: 101 and the right Sec-WebSocket-Accept */
static int handshake_done(conn_t *c) {
    uint8_t *end = memmem(c->cbuf, c->clen, "\r\n\r\n", 4);
    if (!end) {
        if (c->clen > 16384) open_failed(c, "handshake: response headers too long");
        return 0;
    }
    size_t hlen = (size_t)(end - c->cbuf) + 4;
    const char *h = (const char *)c->cbuf;
    if (hlen < 12 || strncmp(h, "HTTP/1.1 101", 12)) {
        char e[160];
        size_t l = 0;
        while (l < hlen && l < 100 && h[l] != '\r') l++;
        snprintf(e, sizeof e, "Unexpected server response: %.*s", (int)l, h);
        open_failed(c, e);
        return 0;
    }
    char got[128], want[64], src[96];
    uint8_t digest[20];
    snprintf(src, sizeof src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    sha1(src, strlen(src), digest);
    base64(digest, 20, want);
    if (!header_value(h, hlen, "sec-websocket-accept", got, sizeof got) || strcmp(got, want)) {
        open_failed(c, "handshake: invalid Sec-WebSocket-Accept header");
        return 0;
    }
    if (header_value(h, hlen, "sec-websocket-extensions", got, sizeof got)) {
        open_failed(c, "handshake: server sent an extension that was not offered");
        return 0;
    }
    memmove(c->cbuf, c->cbuf + hlen, c->clen - hlen);
    c->clen -= hlen;
    if (KIND == K_SIO) c->state = ST_EIO_OPEN;
    else if (KIND == K_WIREHUB && strcmp(c->path, "/ws") == 0) c->state = ST_WELCOME;
    else open_succeeded(c);
    return 1;
}

static void on_readable(conn_t *c) {
    int carry = c->state == ST_HANDSHAKE || c->clen > 0;
    uint8_t *buf;
    size_t room;
    if (carry) {
        if (c->ccap - c->clen < 65536) {
            c->ccap = c->ccap < 65536 ? 65536 + c->clen : c->ccap * 2;
            c->cbuf = xrealloc(c->cbuf, c->ccap);
        }
        buf = c->cbuf + c->clen;
        room = c->ccap - c->clen;
    } else {
        buf = gbuf;
        room = sizeof gbuf;
    }
    ssize_t r = read(c->fd, buf, room);
    st_reads++;
    if (delack && r > 0) { /* opt-in: ask for a delayed ACK rather than one per read */ int zero = 0; setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero); }
    if (r == 0) { conn_lost(c, "socket hang up"); return; }
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        char e[128]; snprintf(e, sizeof e, "read: %s", strerror(errno));
        conn_lost(c, e);
        return;
    }
    if (!carry) {
        size_t used = parse_frames(c, gbuf, (size_t)r);
        if (used < (size_t)r && c->state != ST_CLOSED) { /* keep the partial frame */
            size_t left = (size_t)r - used;
            if (c->ccap < left) { c->ccap = left < 4096 ? 4096 : left * 2; c->cbuf = xrealloc(c->cbuf, c->ccap); }
            memcpy(c->cbuf, gbuf + used, left);
            c->clen = left;
        }
        return;
    }
    c->clen += (size_t)r;
    if (c->state == ST_HANDSHAKE && !handshake_done(c)) return;
    size_t used = parse_frames(c, c->cbuf, c->clen);
    if (c->state == ST_CLOSED) { c->clen = 0; return; }
    memmove(c->cbuf, c->cbuf + used, c->clen - used);
    c->clen -= used;
    if (c->clen == 0 && c->ccap > 65536 * 4) { free(c->cbuf); c->cbuf = NULL; c->ccap = 0; }
}

static void on_event(conn_t *c, uint32_t ev) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            char e[128]; snprintf(e, sizeof e, "connect: %s", strerror(err ? err : ECONNREFUSED));
            open_failed(c, e);
            return;
        }
        set_events(c, EPOLLIN);
        send_handshake(c);
        return;
    }
    if (ev & EPOLLOUT) flush_conn(c);
    if (c->state != ST_CLOSED && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

/* ------------------------------------------------------------------ the loop */
static void (*tick_fn)(void);
static double tick_at = INFINITY;


typedef int (*pred_fn)(void);
static void run_until(pred_fn done, double until) {
    struct epoll_event evs[1024];
    for (;;) {
        opener_fill();
        flush_all();
        if (done && done()) return;
        double now = now_ms();
        if (now >= global_deadline) fail_exit("timeout: %s", scenario_name);
        if (now >= until) return;
        double wake = until < global_deadline ? until : global_deadline;
        if (tick_fn && tick_at < wake) wake = tick_at;
        if (cur_opener && now + 100 < wake) wake = now + 100;
        double ms = fceil(wake - now);
        int to = ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
        int n = epoll_wait(ep, evs, 1024, to);
        st_turns++;
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
        if (tick_fn) tick_fn();
        if (pause_us && n > 0) {
            flush_all();
            struct timespec ts = {0, pause_us * 1000L};
            nanosleep(&ts, NULL);
        }
    }
}
static void run_for(double ms) { run_until(NULL, now_ms() + ms); }

static struct opener *open_many(int n, int use, int concurrency) {
    struct opener *o = calloc(1, sizeof *o);
    o->n = n;
    o->use = use;
    o->concurrency = concurrency < 1 ? 1 : concurrency;
    o->conns = calloc((size_t)(n > 0 ? n : 1), sizeof(conn_t *));
    o->inflight = calloc((size_t)o->concurrency + 1, sizeof(conn_t *));
    cur_opener = o;
    /* each handshake is bounded by 15 s; the whole by the scenario timeout */
    while (o->done < o->n) run_until(NULL, now_ms() + 100);
    cur_opener = NULL;
    int k = 0; /* keep the opened ones, in order */
    for (int i = 0; i < n; i++)
        if (o->conns[i]) o->conns[k++] = o->conns[i];
    o->n = k;
    if (o->failed) logf_("%d of %d connections failed: %s%s%s%s%s", o->failed, n, o->errs[0],
                         o->nerr > 1 ? "; " : "", o->nerr > 1 ? o->errs[1] : "",
                         o->nerr > 2 ? "; " : "", o->nerr > 2 ? o->errs[2] : "");
    return o;
}
static void close_all(struct opener *o) {
    for (int i = 0; i < o->n; i++) conn_close(o->conns[i]);
}

/* ----------------------------------------------------------- message helpers */
static const uint8_t *find(const uint8_t *p, size_t n, const char *s) {
    return memmem(p, n, s, strlen(s));
}
/* the string value of "key" (first occurrence) into out; 0 when absent */
static int str_field(const uint8_t *p, size_t n, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const uint8_t *q = find(p, n, pat), *end = p + n;
    if (!q) return 0;
    q += strlen(pat);
    while (q < end && (*q == ' ' || *q == ':')) q++;
    if (q >= end || *q != '"') return 0;
    q++;
    size_t i = 0;
    while (q < end && *q != '"' && i + 1 < cap) out[i++] = (char)*q++;
    out[i] = 0;
    return 1;
}
/* the publish time "t" the load generator wrote in the payload, ms; NAN if absent */
static double find_t(const uint8_t *p, size_t n) {
    const uint8_t *q = p, *end = p + n;
    while ((q = memmem(q, (size_t)(end - q), "\"t\"", 3))) {
        q += 3;
        while (q < end && *q == ' ') q++;
        if (q < end && *q == ':') break;
    }
    if (!q) return NAN;
    q++;
    while (q < end && *q == ' ') q++;
    double v = 0, scale = 1;
    int any = 0, frac = 0;
    for (; q < end; q++) {
        if (*q >= '0' && *q <= '9') {
            any = 1;
            if (frac) { scale /= 10; v += (*q - '0') * scale; }
            else v = v * 10 + (*q - '0');
        } else if (*q == '.' && !frac) frac = 1;
        else if (*q == 'e' || *q == 'E') { /* not written by us, but parse it */
            char tmp[32];
            size_t k = 0;
            for (const uint8_t *s = q; s < end && k < sizeof tmp - 1 && strchr("eE+-0123456789", *s); s++) tmp[k++] = (char)*s;
            tmp[k] = 0;
            for (int e = atoi(tmp + 1); e > 0; e--) v *= 10;
            for (int e = atoi(tmp + 1); e < 0; e++) v /= 10;
            break;
        } else break;
    }
    return any ? v : NAN;
}
/* "12345.678" (ms, 3 decimals) into out */
static int fmt_ms(char *out, double ms) {
    uint64_t us = ms > 0 ? (uint64_t)(ms * 1000.0) : 0;
    char tmp[32];
    int k = 0;
    uint64_t ip = us / 1000;
    do { tmp[k++] = (char)('0' + ip % 10); ip /= 10; } while (ip);
    int n = 0;
    while (k) out[n++] = tmp[--k];
    unsigned f = (unsigned)(us % 1000);
    out[n++] = '.';
    out[n++] = (char)('0' + f / 100);
    out[n++] = (char)('0' + f / 10 % 10);
    out[n++] = (char)('0' + f % 10);
    return n;
}
static int fmt_u(char *out, uint64_t v) {
    char tmp[24];
    int k = 0, n = 0;
    do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) out[n++] = tmp[--k];
    return n;
}

/* ------------------------------------------------- socket.io (Engine.IO 4) */
/* packets: "2" ping, "42[...]" event, "43N[...]" ack, "41" disconnect */
static msg_fn sio_on_ack;
static void socketio_packet(conn_t *c, const uint8_t *p, size_t n) {
    if (!n) return;
    if (p[0] == '2') { send_text(c, "3", 1); return; }
    if (p[0] == '1') { conn_lost(c, "engine.io close"); return; }
    if (p[0] != '4' || n < 2) return;
    if (p[1] == '2') { if (c->on_msg) c->on_msg(c, p, n); }
    else if (p[1] == '3') { if (sio_on_ack) sio_on_ack(c, p, n); }
    else if (p[1] == '1') conn_lost(c, "socket.io disconnect");
}

/* -------------------------------------------------------------- subscribing */
static long subs_done;      /* connections whose subscriptions are all acknowledged */
static char sub_error[256];

static void sub_one_done(conn_t *c) {
    if (c->pending > 0 && --c->pending == 0) subs_done++;
}
static void sub_on_msg(conn_t *c, const uint8_t *p, size_t n) {
    char op[32];
    if (!str_field(p, n, "op", op, sizeof op)) return;
    if (!strcmp(op, "reply") || !strcmp(op, "subscribed")) sub_one_done(c);
    else if (!strcmp(op, "error") && !sub_error[0]) {
        char m[200] = "";
        str_field(p, n, "message", m, sizeof m);
        snprintf(sub_error, sizeof sub_error, "subscribe refused: %s", m);
    }
}
static void sub_on_ack(conn_t *c, const uint8_t *p, size_t n) { (void)p; (void)n; sub_one_done(c); }

static void subscribe_all(conn_t *c, const char *const *chans, int nch) {
    char buf[512];
    c->pending = nch;
    if (nch == 0) { subs_done++; return; }
    c->on_msg = sub_on_msg;
    for (int i = 0; i < nch; i++) {
        int n;
        if (KIND == K_SIO) n = snprintf(buf, sizeof buf, "42%u[\"subscribe\",\"%s\"]", c->ack_id++, chans[i]);
        else if (KIND == K_WIREHUB) n = snprintf(buf, sizeof buf, "{\"op\":\"subscribe\",\"id\":%d,\"channel\":\"%s\"}", i + 1, chans[i]);
        else n = snprintf(buf, sizeof buf, "{\"op\":\"subscribe\",\"channel\":\"%s\"}", chans[i]);
        send_text(c, buf, (size_t)n);
    }
}

/* the publisher expects nothing back (fire-and-forget): anything is an error */
static long pub_errors;
static char pub_first[256];
static void pub_on_msg(conn_t *c, const uint8_t *p, size_t n) {
    (void)c;
    pub_errors++;
    if (!pub_first[0]) snprintf(pub_first, sizeof pub_first, "%.*s", (int)(n > 200 ? 200 : n), p);
}

/* ------------------------------------------------------------------- output */
static sbuf out;
static int nrec;
static void rec_begin(void) {
    if (nrec++) sb_add(&out, ",{", 2);
    else sb_add(&out, "{", 1);
}
static void rec_end(void) { sb_add(&out, "}", 1); }
static void kv_sep(void) { if (out.s[out.n - 1] != '{') sb_add(&out, ",", 1); }
static void kv_num(const char *k, double v) {
    kv_sep();
    if (!isfinite(v)) sb_printf(&out, "\"%s\":null", k);
    else if (fabs_(v) < 9e15 && v == ffloor(v)) sb_printf(&out, "\"%s\":%.0f", k, v);
    else sb_printf(&out, "\"%s\":%.17g", k, v);
}
static void kv_str(const char *k, const char *v) {
    kv_sep();
    sb_printf(&out, "\"%s\":", k);
    if (v) sb_jstr(&out, v, strlen(v)); else sb_add(&out, "null", 4);
}
static void kv_null(const char *k) { kv_sep(); sb_printf(&out, "\"%s\":null", k); }
static void kv_usage(cpu_use u) {
    kv_num("lg_cpu", u.lg);
    kv_num("server_cpu", u.sv);
    kv_num("server_sys_cpu", u.sys);
    kv_num("other_cpu", u.other);
}

static double W, D; /* warm-up and measured window, ms */
static char *pad(int n) {
    if (n < 0) n = 0;
    char *s = xrealloc(NULL, (size_t)n + 1);
    memset(s, 'x', (size_t)n);
    s[n] = 0;
    return s;
}

/* --------------------------------------------------------------------- echo */
static long echo_count, echo_bad, rpc_id = 1000000;
static char echo_first_bad[256];
static int echo_rpc;
static char *rpc_data;
static size_t rpc_data_len;

static void echo_send(conn_t *c) {
    if (!echo_rpc) { send_pre(c); return; }
    /* {"op":"send","id":N,"type":"echo","data":"xxx"}: masked as it is built */
    char buf[8192];
    static const char a[] = "{\"op\":\"send\",\"id\":", b[] = ",\"type\":\"echo\",\"data\":\"";
    size_t n = 0;
    memcpy(buf, a, sizeof a - 1); n += sizeof a - 1;
    n += (size_t)fmt_u(buf + n, (uint64_t)rpc_id++);
    memcpy(buf + n, b, sizeof b - 1); n += sizeof b - 1;
    size_t dl = rpc_data_len < sizeof buf - n - 4 ? rpc_data_len : sizeof buf - n - 4;
    memcpy(buf + n, rpc_data, dl); n += dl;
    buf[n++] = '"'; buf[n++] = '}';
    send_text(c, buf, n);
}
static void echo_on_msg(conn_t *c, const uint8_t *p, size_t n) {
    echo_count++;
    if (echo_rpc && c->checked < 3) { /* the first answers of each connection must be replies */
        c->checked++;
        char op[32];
        if (!str_field(p, n, "op", op, sizeof op) || strcmp(op, "reply")) {
            echo_bad++;
            if (!echo_first_bad[0]) snprintf(echo_first_bad, sizeof echo_first_bad, "%.*s", (int)(n > 200 ? 200 : n), p);
        }
    }
    echo_send(c);
}

static void scen_echo(int rpc) {
    int n = (int)cfg_num("connections", 50), depth = (int)cfg_num("depth", 16), size = (int)cfg_num("size", 100);
    echo_rpc = rpc;
    struct opener *o = open_many(n, rpc ? U_RPC : U_ECHO, 64);
    if (!o->n) fail_exit("no connection could be opened");
    logf_("%s: %d connections open, %d in flight each", rpc ? "rpc" : "echo", o->n, depth);
    char *data;
    if (rpc) {
        int overhead = (int)strlen("{\"op\":\"send\",\"id\":1000000,\"type\":\"echo\",\"data\":\"\"}");
        rpc_data = pad(size - overhead);
        rpc_data_len = strlen(rpc_data);
        data = NULL;
    } else if (KIND == K_SIO) {
        char *x = pad(size);
        data = xrealloc(NULL, (size_t)size + 32);
        snprintf(data, (size_t)size + 32, "42[\"echo\",\"%s\"]", x);
        free(x);
    } else data = pad(size);
    for (int i = 0; i < o->n; i++) {
        conn_t *c = o->conns[i];
        if (data) prepare_const(c, data, strlen(data));
        c->on_msg = echo_on_msg;
        for (int k = 0; k < depth; k++) echo_send(c);
    }
    run_for(W);
    long c0 = echo_count;
    cpu_win w = cpu_start();
    double t0 = now_ms();
    run_for(D);
    long c1 = echo_count;
    double secs = (now_ms() - t0) / 1000.0;
    cpu_use u = cpu_stop(w);
    close_all(o);
    rec_begin();
    kv_str("scenario", rpc ? "rpc" : "echo");
    kv_num("value", (double)(c1 - c0) / secs);
    kv_str("unit", "msg/s");
    kv_num("connections", o->n);
    kv_num("failed", o->failed);
    kv_num("depth", depth);
    kv_num("size", size);
    kv_num("window_s", secs);
    kv_num("errors", (double)echo_bad);
    kv_str("first_error", echo_first_bad[0] ? echo_first_bad : NULL);
    kv_usage(u);
    rec_end();
}

/* ---------------------------------------------------- fanout and latency */
static long published, received;
static int nsubs, fan_window, pub_size;
static double measure_from = INFINITY;
static double *samples;
static size_t nsamples, samples_cap;
static conn_t *pub_conn;
static char *pub_pad;
static size_t pub_pad_len;
static double rate_start, rate_period;

/* one publish: {"t":ms,"s":N,"p":"xxx"} wrapped for the server kind */
static void publish(const char *channel, long seq) {
    char buf[8192];
    size_t n = 0;
#define PUT(s) do { size_t l_ = strlen(s); memcpy(buf + n, s, l_); n += l_; } while (0)
    if (KIND == K_SIO) {
        if (channel) { PUT("42[\"publish_to\",\""); PUT(channel); PUT("\","); }
        else PUT("42[\"publish\",");
    } else if (KIND == K_WIREHUB || channel) {
        PUT("{\"op\":\"publish\",\"channel\":\"");
        PUT(channel ? channel : "bench");
        PUT("\",\"data\":");
    }
    PUT("{\"t\":");
    n += (size_t)fmt_ms(buf + n, now_ms());
    PUT(",\"s\":");
    n += (size_t)fmt_u(buf + n, (uint64_t)seq);
    PUT(",\"p\":\"");
    size_t pl = pub_pad_len < sizeof buf - n - 8 ? pub_pad_len : sizeof buf - n - 8;
    memcpy(buf + n, pub_pad, pl); n += pl;
    PUT("\"}");
    if (KIND == K_SIO) PUT("]");
    else if (KIND == K_WIREHUB || channel) PUT("}");
#undef PUT
    send_text(pub_conn, buf, n);
}
static void fan_send(void) { publish(NULL, published++); }
static void fan_pump(void) {
    while ((double)published - (double)received / nsubs < fan_window) fan_send();
}
static void fan_on_msg_count(conn_t *c, const uint8_t *p, size_t n) { (void)c; (void)p; (void)n; received++; }
static void fan_on_msg_pump(conn_t *c, const uint8_t *p, size_t n) {
    (void)c; (void)p; (void)n;
    received++;
    if ((double)published - (double)received / nsubs < fan_window) fan_pump();
}
static void fan_on_msg_sample(conn_t *c, const uint8_t *p, size_t n) {
    (void)c;
    received++;
    double t = find_t(p, n);
    if (t >= measure_from) {
        if (nsamples == samples_cap) {
            samples_cap = samples_cap ? samples_cap * 2 : 65536;
            samples = xrealloc(samples, samples_cap * sizeof *samples);
        }
        samples[nsamples++] = now_ms() - t;
    }
}
static void rate_tick(void) { /* publish k is due at start + k / rate */
    double now = now_ms();
    long due = (long)ffloor((now - rate_start) / rate_period) + 1;
    while (published < due) fan_send();
    tick_at = rate_start + (double)published * rate_period;
}
static int all_subscribed_n;
static int pred_subscribed(void) { return subs_done >= all_subscribed_n || sub_error[0]; }
static long want_received;
static int pred_received(void) { return received >= want_received; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void scen_fanout(int rate, const char *name) {
    nsubs = (int)cfg_num("subscribers", 1000);
    pub_size = (int)cfg_num("size", 100);
    fan_window = (int)cfg_num("window", 8);
    struct opener *o = open_many(nsubs, U_FANOUT, 64);
    if (!o->n) fail_exit("no subscriber could connect");
    nsubs = o->n;
    logf_("%s: %d subscribers connected", name, nsubs);
    if (KIND == K_WIREHUB) {
        const char *ch[] = {"bench"};
        subs_done = 0;
        all_subscribed_n = nsubs;
        for (int i = 0; i < nsubs; i++) subscribe_all(o->conns[i], ch, 1);
        run_until(pred_subscribed, now_ms() + 60000);
        if (sub_error[0]) fail_exit("%s", sub_error);
        if (subs_done < nsubs) fail_exit("timeout: subscribe");
        logf_("%s: subscribed", name);
    }
    struct opener *po = open_many(1, U_FANOUT, 64);
    if (!po->n) fail_exit("the publisher could not connect");
    pub_conn = po->conns[0];
    if (KIND != K_SIO) pub_conn->on_msg = pub_on_msg;
    pub_pad = pad(pub_size - 40);
    pub_pad_len = strlen(pub_pad);
    /* latency: every `every`-th subscriber (the last one included) reads the timestamp */
    int sampled = (int)cfg_num("sampled_subscribers", 100);
    int every = (int)fceil((double)nsubs / (sampled > 0 ? sampled : 1));
    if (every < 1) every = 1;
    for (int i = 0; i < nsubs; i++) {
        conn_t *c = o->conns[i];
        if (rate && i % every == every - 1) c->on_msg = fan_on_msg_sample;
        else if (rate) c->on_msg = fan_on_msg_count;
        else c->on_msg = fan_on_msg_pump;
    }
    if (rate) {
        rate_start = now_ms();
        rate_period = 1000.0 / rate;
        tick_fn = rate_tick;
        rate_tick();
    } else fan_pump();
    run_for(W);
    measure_from = now_ms();
    long r0 = received, p0 = published;
    cpu_win w = cpu_start();
    double t0 = now_ms();
    run_for(D);
    long r1 = received, p1 = published;
    double secs = (now_ms() - t0) / 1000.0;
    cpu_use u = cpu_stop(w);
    tick_fn = NULL;
    tick_at = INFINITY;
    rec_begin();
    kv_str("scenario", name);
    kv_num("subscribers", nsubs);
    kv_num("failed", o->failed);
    kv_num("size", pub_size);
    kv_num("window_s", secs);
    kv_num("publishes_per_s", (double)(p1 - p0) / secs);
    kv_num("deliveries_per_s", (double)(r1 - r0) / secs);
    kv_num("errors", (double)pub_errors);
    kv_str("first_error", pub_first[0] ? pub_first : NULL);
    kv_usage(u);
    if (rate) {
        want_received = published * nsubs; /* let the last publishes arrive (bounded) */
        run_until(pred_received, now_ms() + 1000);
        qsort(samples, nsamples, sizeof *samples, cmp_double);
        double q50 = NAN, q99 = NAN, q999 = NAN, mx = NAN;
        if (nsamples) {
#define Q(p) samples[(size_t)ffloor((p) * (double)nsamples) < nsamples - 1 ? (size_t)ffloor((p) * (double)nsamples) : nsamples - 1]
            q50 = Q(0.5); q99 = Q(0.99); q999 = Q(0.999);
#undef Q
            mx = samples[nsamples - 1];
        }
        kv_num("rate", rate);
        kv_num("value", q99);
        kv_str("unit", "ms p99");
        kv_num("p50_ms", q50);
        kv_num("p99_ms", q99);
        kv_num("p999_ms", q999);
        kv_num("sampled_subscribers", ffloor((double)nsubs / every));
        kv_num("max_ms", mx);
        kv_num("samples", (double)nsamples);
        kv_num("lost", (double)(published * nsubs - received));
    } else {
        kv_num("value", (double)(r1 - r0) / secs);
        kv_str("unit", "deliveries/s");
        kv_num("window", fan_window);
    }
    rec_end();
    close_all(o);
    close_all(po);
}

/* --------------------------------------------------------------------- idle */
static void kv_common_idle(struct opener *o, int n) {
    kv_num("connections", o->n);
    kv_num("requested", n);
    kv_num("failed", o->failed);
    kv_sep();
    sb_add(&out, "\"first_errors\":[", 16);
    for (int i = 0; i < o->nerr; i++) {
        if (i) sb_add(&out, ",", 1);
        sb_jstr(&out, o->errs[i], strlen(o->errs[i]));
    }
    sb_add(&out, "]", 1);
    kv_num("sources", nsources ? nsources : 1);
}
static void scen_idle(void) {
    int n = (int)cfg_num("connections", 10000), conc = (int)cfg_num("concurrency", 64);
    double before = rss_kib(server_pid);
    cpu_win w = cpu_start();
    double t0 = now_ms();
    struct opener *o = open_many(n, U_IDLE, conc);
    double secs = (now_ms() - t0) / 1000.0;
    cpu_use u = cpu_stop(w);
    logf_("idle: %d of %d connections open in %.1f s", o->n, n, secs);
    run_for(cfg_num("settle", 2) * 1000);
    double after = rss_kib(server_pid);
    int open_ = 0;
    for (int i = 0; i < o->n; i++) open_ += o->conns[i]->state != ST_CLOSED;
    close_all(o);
    rec_begin();
    kv_str("scenario", "idle");
    kv_num("value", (after - before) / (open_ > 1 ? open_ : 1));
    kv_str("unit", "KiB/conn");
    kv_num("rss_before_kib", before);
    kv_num("rss_after_kib", after);
    kv_num("still_open", open_);
    kv_common_idle(o, n);
    kv_null("lg_cpu");
    kv_null("server_cpu");
    rec_end();
    rec_begin();
    kv_str("scenario", "connect");
    kv_num("value", o->n / secs);
    kv_str("unit", "conn/s");
    kv_num("window_s", secs);
    kv_num("concurrency", conc);
    kv_common_idle(o, n);
    kv_usage(u);
    rec_end();
}

/* ----------------------------------------------------------------- channels */
static long ch_expected, ch_seq;
static int ch_n, ch_window;
static uint32_t *subs_per_channel;
static void ch_pump(void) {
    char name[32];
    while (ch_expected - received < ch_window) {
        int j = (int)(ch_seq++ % ch_n);
        snprintf(name, sizeof name, "c%d", j);
        ch_expected += subs_per_channel[j];
        publish(name, ch_seq);
    }
}
static void ch_on_msg(conn_t *c, const uint8_t *p, size_t n) {
    (void)c; (void)p; (void)n;
    received++;
    if (ch_expected - received < ch_window) ch_pump();
}
/* 32 connections subscribing at a time, each its `per` channels at once */
static struct opener *ch_conns;
static int ch_next, ch_per;
static double ch_stride;
static char **ch_names;
static void ch_start_next(void) {
    int i = ch_next++;
    conn_t *c = ch_conns->conns[i];
    int first = (int)ffloor(i * ch_stride);
    const char *list[256];
    int per = ch_per < 256 ? ch_per : 256;
    for (int k = 0; k < per; k++) list[k] = ch_names[(first + k) % ch_n];
    subscribe_all(c, list, per);
}
static long ch_subs_seen;
static int pred_ch_subscribed(void) {
    while (ch_subs_seen < subs_done) { /* one finished: start the next */
        ch_subs_seen++;
        if (ch_next < ch_conns->n) ch_start_next();
    }
    return subs_done >= ch_conns->n || sub_error[0];
}
static void scen_channels(void) {
    ch_n = (int)cfg_num("channels", 10000);
    ch_per = (int)cfg_num("per_connection", 15);
    int spc = (int)cfg_num("subscribers_per_channel", 3);
    int nconns = (int)fceil((double)ch_n * spc / ch_per);
    pub_size = (int)cfg_num("size", 100);
    double before = rss_kib(server_pid);
    struct opener *o = open_many(nconns, U_CHANNELS, 64);
    ch_conns = o;
    logf_("channels: %d connections open", o->n);
    ch_stride = (double)ch_n / o->n;
    ch_names = calloc((size_t)ch_n, sizeof(char *));
    for (int j = 0; j < ch_n; j++) { char b[32]; snprintf(b, sizeof b, "c%d", j); ch_names[j] = strdup(b); }
    double t0 = now_ms();
    subs_done = 0;
    while (ch_next < o->n && ch_next < 32) ch_start_next();
    ch_subs_seen = 0;
    run_until(pred_ch_subscribed, now_ms() + 120000);
    if (sub_error[0]) fail_exit("%s", sub_error);
    if (subs_done < o->n) fail_exit("timeout: subscribe");
    double sub_secs = (now_ms() - t0) / 1000.0;
    logf_("channels: %d subscriptions in %.1f s", o->n * ch_per, sub_secs);
    run_for(500);
    double after = rss_kib(server_pid);
    subs_per_channel = calloc((size_t)ch_n, sizeof(uint32_t));
    for (int i = 0; i < o->n; i++) {
        int f = (int)ffloor(i * ch_stride);
        for (int k = 0; k < ch_per; k++) subs_per_channel[(f + k) % ch_n]++;
    }
    struct opener *po = open_many(1, U_CHANNELS, 64);
    if (!po->n) fail_exit("the publisher could not connect");
    pub_conn = po->conns[0];
    if (KIND != K_SIO) pub_conn->on_msg = pub_on_msg;
    ch_window = (int)cfg_num("window_deliveries", 8000);
    pub_pad = pad(pub_size - 40);
    pub_pad_len = strlen(pub_pad);
    for (int i = 0; i < o->n; i++) o->conns[i]->on_msg = ch_on_msg;
    ch_pump();
    run_for(W);
    long r0 = received, s0 = ch_seq;
    cpu_win w = cpu_start();
    double t1 = now_ms();
    run_for(D);
    long r1 = received, s1 = ch_seq;
    double secs = (now_ms() - t1) / 1000.0;
    cpu_use u = cpu_stop(w);
    close_all(o);
    close_all(po);
    double subscriptions = (double)o->n * ch_per;
    rec_begin();
    kv_str("scenario", "channels");
    kv_num("value", (double)(r1 - r0) / secs);
    kv_str("unit", "deliveries/s");
    kv_num("channels", ch_n);
    kv_num("connections", o->n);
    kv_num("failed", o->failed);
    kv_num("subscriptions", subscriptions);
    kv_num("subscribe_s", sub_secs);
    kv_num("publishes_per_s", (double)(s1 - s0) / secs);
    kv_num("deliveries_per_s", (double)(r1 - r0) / secs);
    kv_num("window_s", secs);
    kv_num("kib_per_subscription", (after - before) / (subscriptions > 1 ? subscriptions : 1));
    kv_num("rss_before_kib", before);
    kv_num("rss_after_kib", after);
    kv_num("errors", (double)pub_errors);
    kv_str("first_error", pub_first[0] ? pub_first : NULL);
    kv_usage(u);
    rec_end();
}

/* --------------------------------------------------------------------- main */
int main(int argc, char **argv) {
    t_origin = 0;
    t_origin = now_ms();
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) fail_exit("usage: loadgen '<json config>'");
    parse_config(argv[1]);
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) { if (read(fd, &seed, sizeof seed) < 0) seed = 0; close(fd); }
    rng_state = seed ^ (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    if (!rng_state) rng_state = 88172645463325252ULL;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *kind = cfg_str("kind", "raw");
    KIND = !strcmp(kind, "wirehub") ? K_WIREHUB : !strcmp(kind, "socketio") ? K_SIO : K_RAW;
    clk_tck = (long)cfg_num("clk_tck", 100);
    server_pid = (long)cfg_num("server_pid", 0);
    W = cfg_num("warmup", 1) * 1000;
    D = cfg_num("duration", 5) * 1000;
    struct cfgval *sv = cfg_get("source_addresses");
    if (sv && sv->type == J_ARR) { sources = sv->arr; nsources = sv->narr; }

    const char *url = cfg_str("url", "ws://127.0.0.1:8765");
    const char *hp = strstr(url, "://");
    hp = hp ? hp + 3 : url;
    char host[40] = "127.0.0.1", port[16] = "80";
    const char *colon = strrchr(hp, ':');
    if (colon) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
        snprintf(port, sizeof port, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    } else snprintf(host, sizeof host, "%.*s", (int)strcspn(hp, "/"), hp);
    snprintf(host_hdr, sizeof host_hdr, "%s:%s", host, port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) fail_exit("cannot resolve %s", host_hdr);
    memcpy(&server_addr, ai->ai_addr, sizeof server_addr);
    freeaddrinfo(ai);

    /* opt-in batching experiments (off by default: they change the load's shape) */
    pause_us = (long)cfg_num("turn_pause_us", 0);
    delack = (int)cfg_num("delayed_ack", 0);
    sio_on_ack = sub_on_ack;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail_exit("epoll_create1: %s", strerror(errno));
    scenario_name = cfg_str("scenario", "");
    global_deadline = now_ms() + cfg_num("timeout", 300) * 1000;
    sb_add(&out, "{\"results\":[", 12);
    if (!strcmp(scenario_name, "echo")) scen_echo(0);
    else if (!strcmp(scenario_name, "rpc")) scen_echo(1);
    else if (!strcmp(scenario_name, "fanout")) scen_fanout(0, "fanout");
    else if (!strcmp(scenario_name, "latency")) {
        int rate = (int)cfg_num("rate", 10);
        char name[32];
        snprintf(name, sizeof name, "latency%d", rate);
        scen_fanout(rate, name);
    } else if (!strcmp(scenario_name, "idle")) scen_idle();
    else if (!strcmp(scenario_name, "channels")) scen_channels();
    else fail_exit("unknown scenario %s", scenario_name);
    sb_add(&out, "]}\n", 3);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    logf_("%llu loop turns, %llu reads, %llu frames in, %llu writes; CPU user %.2f s, system %.2f s",
          st_turns, st_reads, st_frames, st_writes, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
          ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fwrite(out.s, 1, out.n, stdout);
    fflush(stdout);
    return 0;
}
