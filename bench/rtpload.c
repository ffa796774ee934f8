/*
 * rtpload: G.711 RTP load for bench/media.py, N calls through a media relay, both ways.
 *
 *   rtpload A_PORT B_PORT WARMUP_S MEASURE_S [LATE_MS] < calls
 *
 * stdin: one line per call, "RELAY_A_PORT RELAY_B_PORT" (host 127.0.0.1): party A of
 * call i sends to RELAY_A_PORT, party B to RELAY_B_PORT. All A parties share one UDP
 * socket (127.0.0.1:A_PORT, RTCP A_PORT+1), all B parties another (B_PORT, B_PORT+1):
 * the relay tells calls apart by its own ports, so the generator can batch sends with
 * sendmmsg() and reads with recvmmsg() and stays far below the relay's cost.
 *
 * Every stream (2 per call) sends one 172-byte RTP packet (12-byte header, 160 bytes of
 * PCMU payload) every 20 ms. The N calls' send times are spread evenly over the 20 ms,
 * B->A half a period after A->B. The payload carries the send time (CLOCK_REALTIME,
 * taken right before the sendmmsg() of a batch of at most 16), the stream and a flag
 * "in the measured window". Receive times are the kernel's (SO_TIMESTAMPNS: when the
 * relay's datagram reached our socket), so transit = relay's added latency + loopback,
 * free of this program's own scheduling. A packet whose transit exceeds LATE_MS
 * (default 50) is counted as "late": a receiver's jitter buffer would discard it, so a
 * relay that keeps up only by queueing (loss-free, but seconds behind) does not pass.
 *
 * Output (stdout, line-buffered): "ready", "start" when the measured window starts,
 * "stop" when it ends (the relay's CPU is read between the two), then one JSON object:
 * sent/received/lost packets of the window, the transit-time percentiles, the p99 of
 * the per-stream inter-packet delay variation |D(i-1,i)| (RFC 3550 §6.4.1: the jitter a
 * relay adds), the p99 of the per-stream RFC 3550 jitter estimate, and how far behind
 * its schedule the generator sent (behind_*) and its CPU time (is it keeping up?).
 *
 * Build: gcc -O2 -Wall -o rtpload rtpload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PTIME_NS 20000000LL
#define PKT 172
#define BATCH 16
#define RX_BATCH 64
#define HIST 200000 /* 1 µs buckets up to 200 ms, last bucket = overflow */
#define DRAIN_NS 500000000LL

struct stream {
    uint32_t seq;          /* next sequence number to send */
    uint32_t sent;         /* packets of the measured window sent */
    uint32_t received;     /* ... and received */
    uint32_t last_seq;     /* last received (for IPDV) */
    int64_t last_transit;  /* ns */
    double jitter;         /* RFC 3550 estimate, ns */
    int have_last;
};

struct event {
    int64_t phase; /* ns within the period */
    uint32_t stream;
};

static struct stream *streams;
static struct sockaddr_in *dests; /* per stream: the relay port it sends to */
static uint64_t lat_hist[HIST], ipdv_hist[HIST], behind_hist[HIST];
static uint64_t rx_packets, rx_measured, rx_bad, rx_rtcp, tx_errors, rx_late;
static int64_t late_ns = 50000000LL;

static int64_t now_ns(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void hist_add(uint64_t *h, int64_t ns) {
    int64_t us = ns / 1000;
    if (us < 0) us = 0;
    if (us >= HIST) us = HIST - 1;
    h[us]++;
}

static double hist_pct(const uint64_t *h, double p) {
    uint64_t total = 0, acc = 0;
    for (int i = 0; i < HIST; i++) total += h[i];
    if (!total) return -1;
    uint64_t want = (uint64_t)(p * (double)total);
    if (want >= total) want = total - 1;
    for (int i = 0; i < HIST; i++) {
        acc += h[i];
        if (acc > want) return i;
    }
    return HIST - 1;
}

static double hist_max(const uint64_t *h) {
    for (int i = HIST - 1; i >= 0; i--)
        if (h[i]) return i;
    return -1;
}

static int cmp_event(const void *x, const void *y) {
    const struct event *a = x, *b = y;
    if (a->phase != b->phase) return a->phase < b->phase ? -1 : 1;
    return a->stream < b->stream ? -1 : (a->stream > b->stream);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int udp_socket(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int size = 16 << 20, on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "bind 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(2);
    }
    return fd;
}

/* Batched sender for one socket. */
struct txq {
    int fd, n;
    unsigned char buf[BATCH][PKT];
    struct iovec iov[BATCH];
    struct mmsghdr msg[BATCH];
    uint32_t stream[BATCH];
    int64_t due[BATCH];
};

static void txq_flush(struct txq *q) {
    if (!q->n) return;
    int64_t stamp = now_ns(CLOCK_REALTIME), mono = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < q->n; i++) {
        memcpy(q->buf[i] + 12, &stamp, 8);
        hist_add(behind_hist, mono - q->due[i]);
    }
    int done = 0;
    while (done < q->n) {
        int r = sendmmsg(q->fd, q->msg + done, q->n - done, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            tx_errors += q->n - done; /* EAGAIN / ECONNREFUSED: count as not sent */
            break;
        }
        done += r;
    }
    q->n = 0;
}

static void txq_add(struct txq *q, uint32_t s, int64_t due, int measured) {
    struct stream *st = &streams[s];
    unsigned char *p = q->buf[q->n];
    uint32_t seq = st->seq++;
    p[0] = 0x80;
    p[1] = 0; /* PCMU */
    p[2] = seq >> 8; p[3] = seq;
    uint32_t ts = htonl(seq * 160), ssrc = htonl(0x10000000u + s);
    memcpy(p + 4, &ts, 4);
    memcpy(p + 8, &ssrc, 4);
    memcpy(p + 20, &seq, 4);
    memcpy(p + 24, &s, 4);
    p[28] = (unsigned char)measured;
    memset(p + 29, 0xff, PKT - 29);
    q->iov[q->n] = (struct iovec){.iov_base = p, .iov_len = PKT};
    q->msg[q->n].msg_hdr = (struct msghdr){.msg_name = &dests[s], .msg_namelen = sizeof dests[s],
                                           .msg_iov = &q->iov[q->n], .msg_iovlen = 1};
    q->stream[q->n] = s;
    q->due[q->n] = due;
    if (measured) st->sent++;
    if (++q->n == BATCH) txq_flush(q);
}

static unsigned char rxbuf[RX_BATCH][2048];
static char rxctl[RX_BATCH][256];

static void drain(int fd, uint32_t nstreams, int rtcp) {
    struct iovec iov[RX_BATCH];
    struct mmsghdr msg[RX_BATCH];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = rxbuf[i], .iov_len = sizeof rxbuf[i]};
            msg[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1,
                                             .msg_control = rxctl[i], .msg_controllen = sizeof rxctl[i]};
        }
        int r = recvmmsg(fd, msg, RX_BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) return;
        int64_t fallback = now_ns(CLOCK_REALTIME);
        for (int i = 0; i < r; i++) {
            rx_packets++;
            if (rtcp) { rx_rtcp++; continue; }
            unsigned char *p = rxbuf[i];
            if (msg[i].msg_len != PKT || p[0] != 0x80) { rx_bad++; continue; }
            int64_t rx = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg[i].msg_hdr); c; c = CMSG_NXTHDR(&msg[i].msg_hdr, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
                }
            }
            int64_t tx;
            uint32_t seq, s;
            memcpy(&tx, p + 12, 8);
            memcpy(&seq, p + 20, 4);
            memcpy(&s, p + 24, 4);
            if (s >= nstreams) { rx_bad++; continue; }
            if (!p[28]) continue; /* warm-up packet */
            struct stream *st = &streams[s];
            int64_t transit = rx - tx;
            rx_measured++;
            st->received++;
            if (transit > late_ns) rx_late++;
            hist_add(lat_hist, transit);
            if (st->have_last && seq == st->last_seq + 1) {
                int64_t d = transit - st->last_transit;
                if (d < 0) d = -d;
                hist_add(ipdv_hist, d);
                st->jitter += ((double)d - st->jitter) / 16.0;
            }
            st->have_last = 1;
            st->last_seq = seq;
            st->last_transit = transit;
        }
        if (r < RX_BATCH) return;
    }
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s A_PORT B_PORT WARMUP_S MEASURE_S [LATE_MS] < calls\n", argv[0]);
        return 2;
    }
    if (argc == 6) late_ns = (int64_t)(atof(argv[5]) * 1e6);
    int a_port = atoi(argv[1]), b_port = atoi(argv[2]);
    double warmup = atof(argv[3]), measure = atof(argv[4]);
    setvbuf(stdout, NULL, _IOLBF, 0);

    size_t cap = 1024, n = 0;
    int (*calls)[2] = malloc(cap * sizeof *calls);
    int x, y;
    while (scanf("%d %d", &x, &y) == 2) {
        if (n == cap) calls = realloc(calls, (cap *= 2) * sizeof *calls);
        calls[n][0] = x;
        calls[n][1] = y;
        n++;
    }
    if (!n) { fprintf(stderr, "no calls on stdin\n"); return 2; }
    uint32_t nstreams = 2 * n;
    streams = calloc(nstreams, sizeof *streams);
    dests = calloc(nstreams, sizeof *dests);
    struct event *ev = calloc(nstreams, sizeof *ev);
    for (size_t i = 0; i < n; i++) {
        for (int dir = 0; dir < 2; dir++) {
            uint32_t s = 2 * i + dir;
            dests[s] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(calls[i][dir])};
            dests[s].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ev[s].stream = s;
            ev[s].phase = ((int64_t)i * PTIME_NS / (int64_t)n + dir * PTIME_NS / 2) % PTIME_NS;
        }
    }
    qsort(ev, nstreams, sizeof *ev, cmp_event);

    int fd[4] = {udp_socket(a_port), udp_socket(a_port + 1), udp_socket(b_port), udp_socket(b_port + 1)};
    static struct txq qa, qb;
    qa.fd = fd[0];
    qb.fd = fd[2];
    struct pollfd pfd[4];
    for (int i = 0; i < 4; i++) pfd[i] = (struct pollfd){.fd = fd[i], .events = POLLIN};

    int64_t warm_periods = (int64_t)(warmup * 1e9 / PTIME_NS);
    int64_t meas_periods = (int64_t)(measure * 1e9 / PTIME_NS);
    int64_t end_period = warm_periods + meas_periods;
    printf("ready\n");

    struct rusage ru0, ru1;
    int64_t t0 = now_ns(CLOCK_MONOTONIC) + 20000000LL, wall0 = 0, wall1 = 0;
    int64_t period = 0, drain_until = 0;
    size_t idx = 0;
    int started = 0;
    for (;;) {
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (!drain_until) {
            while (period < end_period) {
                int64_t due = t0 + period * PTIME_NS + ev[idx].phase;
                if (due > now) break;
                if (!started && period >= warm_periods) {
                    txq_flush(&qa);
                    txq_flush(&qb);
                    started = 1;
                    getrusage(RUSAGE_SELF, &ru0);
                    wall0 = now;
                    printf("start\n");
                }
                uint32_t s = ev[idx].stream;
                txq_add((s & 1) ? &qb : &qa, s, due, period >= warm_periods);
                if (++idx == nstreams) { idx = 0; period++; }
            }
            txq_flush(&qa);
            txq_flush(&qb);
            if (period >= end_period) {
                getrusage(RUSAGE_SELF, &ru1);
                wall1 = now;
                printf("stop\n");
                drain_until = now + DRAIN_NS;
            }
        }
        int64_t wake = drain_until ? drain_until : t0 + period * PTIME_NS + ev[idx].phase;
        int64_t wait = wake - now_ns(CLOCK_MONOTONIC);
        if (drain_until && wait <= 0) break;
        if (wait < 0) wait = 0;
        struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
        int r = ppoll(pfd, 4, &ts, NULL);
        if (r > 0) {
            for (int i = 0; i < 4; i++)
                if (pfd[i].revents & POLLIN) drain(fd[i], nstreams, i & 1);
        }
    }

    uint64_t sent = 0, received = 0, lossy = 0;
    double *jit = malloc(nstreams * sizeof *jit);
    for (uint32_t s = 0; s < nstreams; s++) {
        sent += streams[s].sent;
        received += streams[s].received > streams[s].sent ? streams[s].sent : streams[s].received;
        if (streams[s].received < streams[s].sent) lossy++;
        jit[s] = streams[s].jitter / 1000.0;
    }
    qsort(jit, nstreams, sizeof *jit, cmp_double);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) / 1e6;
    double wall = (wall1 - wall0) / 1e9;
    printf("{\"calls\": %zu, \"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"late\": %llu, \"lossy_streams\": %llu, "
           "\"tx_errors\": %llu, \"rx_bad\": %llu, \"rx_rtcp\": %llu, "
           "\"transit_p50_us\": %.0f, \"transit_p99_us\": %.0f, \"transit_p999_us\": %.0f, \"transit_max_us\": %.0f, "
           "\"ipdv_p50_us\": %.0f, \"ipdv_p99_us\": %.0f, \"jitter_p99_us\": %.1f, "
           "\"behind_p99_us\": %.0f, \"behind_max_us\": %.0f, \"cpu_s\": %.3f, \"wall_s\": %.3f}\n",
           n, (unsigned long long)sent, (unsigned long long)received, (unsigned long long)(sent - received),
           (unsigned long long)rx_late, (unsigned long long)lossy, (unsigned long long)tx_errors, (unsigned long long)rx_bad,
           (unsigned long long)rx_rtcp, hist_pct(lat_hist, 0.5), hist_pct(lat_hist, 0.99),
           hist_pct(lat_hist, 0.999), hist_max(lat_hist), hist_pct(ipdv_hist, 0.5), hist_pct(ipdv_hist, 0.99),
           jit[(size_t)(0.99 * (nstreams - 1))], hist_pct(behind_hist, 0.99), hist_max(behind_hist), cpu, wall);
    return 0;
}
