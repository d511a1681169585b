/* The benchmarks' load client (see harness.py; client.py does the same in Python).

     client rt   HOST PORT CONNECTIONS SECONDS HANDSHAKE_HEX PING_HEX
     client hs   HOST PORT IN_FLIGHT   SECONDS HANDSHAKE_HEX
     client hold HOST PORT CONNECTIONS SECONDS HANDSHAKE_HEX

   rt:   opens the connections, each sends HANDSHAKE and reads one whole frame back; then, in
         the window, each keeps one PING in flight and counts the Pong frames back.
   hs:   in the window, keeps IN_FLIGHT connections each connecting, sending HANDSHAKE, reading
         one whole frame back and closing; counts the connections that read their frame.
   hold: opens the connections as rt does, then in the window holds them and counts the ones
         still open at its end (a readable connection is lost).

   Prints "ready" once set up; then, for each line on standard input, runs one window and
   prints "done OPS ALL_OPS SECONDS" (ALL_OPS: with those in flight at the window's end,
   finished within 2 s after it); exits when standard input closes. "error WHAT" on a
   failure.
   Each connection binds its own source address in 127.32.0.0/10 so that no port runs out. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { HEADER = 16, BUFFER = 2048, SETUP_IN_FLIGHT = 64, TYPE_PONG = 3 };
enum { CLOSED, CONNECTING, HANDSHAKING, OPEN };

struct conn {
    int fd, state, used;
    unsigned char buf[BUFFER];
};

static struct sockaddr_in server;
static unsigned char *handshake, *ping;
static size_t handshake_len, ping_len;
static int ep;
static unsigned long sources;  /* connections opened so far: the next source address */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what) {
    printf("error %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static unsigned char *unhex(const char *text, size_t *len) {
    size_t n = strlen(text) / 2;
    unsigned char *out = malloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        if (sscanf(text + 2 * i, "%2x", &byte) != 1) {
            errno = EINVAL;
            fail("hex");
        }
        out[i] = (unsigned char)byte;
    }
    *len = n;
    return out;
}

static void start(struct conn *c, unsigned int index) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) fail("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    unsigned long k = sources++;
    struct sockaddr_in source = {.sin_family = AF_INET};
    source.sin_addr.s_addr = htonl((127u << 24) | ((32 + k / 62500 % 64) << 16) |
                                   ((k / 250 % 250) << 8) | (1 + k % 250));
    if (bind(fd, (struct sockaddr *)&source, sizeof source) < 0) fail("bind");
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS)
        fail("connect");
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = index};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl");
    c->fd = fd;
    c->state = CONNECTING;
    c->used = 0;
}

static void drop(struct conn *c) {
    close(c->fd);
    c->state = CLOSED;
}

static void send_all(struct conn *c, const unsigned char *data, size_t len) {
    if (write(c->fd, data, len) != (ssize_t)len) fail("write");
}

/* What happened on a connection's readiness: the frames it completed, or its loss. */
struct outcome {
    int opened, pongs, lost;
};

static struct outcome ready(struct conn *c, unsigned int index, unsigned int events) {
    struct outcome out = {0, 0, 0};
    if (c->state == CONNECTING) {
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error) {
            errno = error;
            drop(c);
            out.lost = 1;
            return out;
        }
        send_all(c, handshake, handshake_len);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = index};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->state = HANDSHAKING;
        return out;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return out;
    ssize_t got = read(c->fd, c->buf + c->used, BUFFER - (size_t)c->used);
    if (got <= 0) {
        if (got < 0 && errno == EAGAIN) return out;
        drop(c);
        out.lost = 1;
        return out;
    }
    c->used += (int)got;
    int offset = 0;
    while (c->used - offset >= HEADER) {
        unsigned char *h = c->buf + offset;
        unsigned int length = h[8] | h[9] << 8 | h[10] << 16 | (unsigned int)h[11] << 24;
        if (length > BUFFER - HEADER) {
            errno = EMSGSIZE;
            fail("frame");
        }
        if (c->used - offset < HEADER + (int)length) break;
        if (c->state == HANDSHAKING) {
            c->state = OPEN;
            out.opened++;
        } else if (h[4] == TYPE_PONG) {
            out.pongs++;
        }
        offset += HEADER + (int)length;
    }
    memmove(c->buf, c->buf + offset, (size_t)(c->used - offset));
    c->used -= offset;
    return out;
}

/* Open every connection, SETUP_IN_FLIGHT at a time, each with its handshake answered. */
static void open_all(struct conn *conns, unsigned int count) {
    unsigned int started = 0, open = 0;
    struct epoll_event events[256];
    double deadline = now() + 1800; /* opening 10,000 can take minutes */
    while (started < count && started < SETUP_IN_FLIGHT) start(&conns[started], started), started++;
    while (open < count) {
        if (now() > deadline) {
            errno = ETIMEDOUT;
            fail("setup");
        }
        int n = epoll_wait(ep, events, 256, 1000);
        for (int i = 0; i < n; i++) {
            unsigned int index = events[i].data.u32;
            struct outcome o = ready(&conns[index], index, events[i].events);
            if (o.lost) fail("a connection closed during setup");
            if (o.opened) {
                open++;
                if (started < count) start(&conns[started], started), started++;
            }
        }
    }
}

/* One window: see the text at the top. */
static void window(const char *mode, struct conn *conns, unsigned int count, double seconds) {
    int hs = strcmp(mode, "hs") == 0, rt = strcmp(mode, "rt") == 0;
    unsigned long ops = 0, all_ops = 0, lost = 0;
    unsigned int in_flight = hs || rt ? count : 0; /* hold: nothing to finish after it */
    struct epoll_event events[1024];
    double begin = now(), end = begin + seconds, stopped = 0;
    int running = 1;
    if (hs)
        for (unsigned int i = 0; i < count; i++) start(&conns[i], i);
    if (rt)
        for (unsigned int i = 0; i < count; i++) send_all(&conns[i], ping, ping_len);
    while (running || (in_flight > 0 && now() < stopped + 2)) {
        double t = now();
        if (running && t >= end) {
            running = 0;
            stopped = t;
        }
        double left = running ? end - t : stopped + 2 - t;
        int n = epoll_wait(ep, events, 1024, (int)(left * 1000) + 1);
        for (int i = 0; i < n; i++) {
            unsigned int index = events[i].data.u32;
            struct conn *c = &conns[index];
            if (c->state == CLOSED) continue;
            struct outcome o = ready(c, index, events[i].events);
            if (hs && (o.opened || o.lost)) {
                lost += (unsigned long)o.lost;
                if (o.opened) {
                    all_ops++;
                    ops += (unsigned long)running;
                    drop(c);
                }
                if (running) start(c, index);
                else in_flight--;
            } else if (rt && o.pongs) {
                all_ops += (unsigned long)o.pongs;
                ops += running ? (unsigned long)o.pongs : 0;
                if (running) send_all(c, ping, ping_len);
                else in_flight--;
            } else if (rt && o.lost) {
                errno = ECONNRESET;
                fail("a connection closed");
            }
        }
    }
    if (!hs && !rt) { /* hold: count the connections still open */
        for (unsigned int i = 0; i < count; i++) {
            struct conn *c = &conns[i];
            char probe;
            if (c->state != OPEN) continue;
            if (recv(c->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN) ops++;
        }
        all_ops = ops;
    }
    if (lost) fprintf(stderr, "client: %lu connections closed before their handshake\n", lost);
    printf("done %lu %lu %.6f\n", ops, all_ops, (stopped ? stopped : now()) - begin);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: client rt|hs|hold HOST PORT COUNT SECONDS HANDSHAKE [PING]\n");
        return 2;
    }
    const char *mode = argv[1];
    unsigned int count = (unsigned int)atoi(argv[4]);
    double seconds = atof(argv[5]);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    server.sin_family = AF_INET;
    server.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &server.sin_addr) != 1) fail("address");
    handshake = unhex(argv[6], &handshake_len);
    ping = unhex(argc > 7 ? argv[7] : "", &ping_len);
    ep = epoll_create1(0);
    struct conn *conns = calloc(count, sizeof *conns);
    if (!conns || ep < 0) fail("setup");
    if (strcmp(mode, "hs") != 0) open_all(conns, count);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) window(mode, conns, count, seconds);
    return 0;
}
