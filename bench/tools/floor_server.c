/* floor_server.c: the cheapest /broadcast a WebSocket server can be, to measure the machine.
 *
 * One thread, epoll, nonblocking sockets, libc only. A text frame from any /broadcast
 * client goes to every other client as one unmasked frame with one send() each: the
 * same work per delivery as the benchmark's peers, with nothing else. Not a server
 * for use: no fragmentation, no control frames (a close or anything unexpected drops
 * the connection), frames up to 64 KiB. bench/tools/floor_probe.py runs it under the
 * load generator's latency scenarios to find this machine's floor (docs/performance.md).
 *
 *     cc -O2 -o floor_server floor_server.c && ./floor_server PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------- SHA-1, base64 */
typedef struct { uint32_t h[5]; uint64_t len; uint8_t buf[64]; size_t n; } sha1_ctx;
#define ROL(x, c) (((x) << (c)) | ((x) >> (32 - (c))))
static void sha1_block(sha1_ctx *s, const uint8_t *p) {
    uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = b ^ c ^ d; k = 0xCA62C1D6; }
        uint32_t t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = c; c = ROL(b, 30); b = a; a = t;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}
static void sha1(const void *data, size_t len, uint8_t out[20]) {
    sha1_ctx s = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    const uint8_t *p = data;
    s.len = (uint64_t)len * 8;
    while (len >= 64) { sha1_block(&s, p); p += 64; len -= 64; }
    uint8_t last[128] = {0};
    memcpy(last, p, len);
    last[len] = 0x80;
    size_t total = len + 9 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++) last[total - 1 - i] = (uint8_t)(s.len >> (8 * i));
    sha1_block(&s, last);
    if (total == 128) sha1_block(&s, last + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s.h[i] >> 24); out[4 * i + 1] = (uint8_t)(s.h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s.h[i] >> 8); out[4 * i + 3] = (uint8_t)s.h[i];
    }
}
static void base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* ------------------------------------------------------------------ the server */
#define BUF 70000
typedef struct { int fd, open, idx; size_t n; uint8_t in[BUF]; } conn_t;
static conn_t *conns[65536];
static conn_t *ready[65536]; /* the open WebSockets, in no order */
static int nready, ep;

static void drop(conn_t *c) {
    if (c->open) { ready[c->idx] = ready[--nready]; ready[c->idx]->idx = c->idx; }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c);
}

static int handshake(conn_t *c) {
    uint8_t *end = memmem(c->in, c->n, "\r\n\r\n", 4);
    if (!end) return c->n < 8192 ? 0 : -1;
    const char *k = NULL;
    for (char *p = (char *)c->in; p < (char *)end; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, "Sec-WebSocket-Key:", 18) == 0) { k = p + 18; break; }
    if (!k) return -1;
    while (*k == ' ') k++;
    char key[128];
    size_t kn = strcspn(k, "\r\n ");
    if (kn > 60) return -1;
    memcpy(key, k, kn);
    memcpy(key + kn, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    uint8_t digest[20];
    char accept[32], resp[256];
    sha1(key, kn + 36, digest);
    base64(digest, 20, accept);
    int rn = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    if (send(c->fd, resp, (size_t)rn, MSG_NOSIGNAL) != rn) return -1;
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->n - used);
    c->n -= used;
    c->open = 1;
    c->idx = nready;
    ready[nready++] = c;
    return 1;
}

static void broadcast(conn_t *from, const uint8_t *payload, size_t n) {
    static uint8_t out[BUF];
    size_t h;
    out[0] = 0x81;
    if (n < 126) { out[1] = (uint8_t)n; h = 2; }
    else { out[1] = 126; out[2] = (uint8_t)(n >> 8); out[3] = (uint8_t)n; h = 4; }
    memcpy(out + h, payload, n);
    for (int i = 0; i < nready; i++)
        if (ready[i] != from) send(ready[i]->fd, out, h + n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Every complete masked frame in c->in: -1 to drop the connection. */
static int frames(conn_t *c) {
    size_t off = 0;
    while (c->n - off >= 6) {
        uint8_t *p = c->in + off;
        int op = p[0] & 15;
        size_t len = p[1] & 127, h = 2;
        if (!(p[1] & 128) || !(p[0] & 128) || len == 127) return -1;
        if (len == 126) { if (c->n - off < 8) break; len = (size_t)p[2] << 8 | p[3]; h = 4; }
        if (c->n - off < h + 4 + len) break;
        uint8_t *mask = p + h, *data = p + h + 4;
        for (size_t i = 0; i < len; i++) data[i] ^= mask[i & 3];
        if (op != 1 && op != 2) return -1;
        broadcast(c, data, len);
        off += h + 4 + len;
    }
    memmove(c->in, c->in + off, c->n - off);
    c->n -= off;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: floor_server PORT\n"); return 2; }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int s;
                while ((s = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (s >= 65536) { close(s); continue; }
                    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = s;
                    conns[s] = c;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = s};
                    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ce);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (!c) continue;
            ssize_t r = recv(fd, c->in + c->n, BUF - c->n, 0);
            if (r <= 0) { if (r == 0 || (errno != EAGAIN && errno != EINTR)) drop(c); continue; }
            c->n += (size_t)r;
            if (!c->open && handshake(c) < 0) drop(c);
            else if (c->open && frames(c) < 0) drop(c);
        }
    }
}
