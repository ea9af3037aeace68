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

#include "../../src/wirehub/bench/loadgen/sha1_base64.h"

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
