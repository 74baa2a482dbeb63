/* A user-space link emulator between two TUN devices (this kernel has no sch_netem).
 *
 * wanlink TUN_A TUN_B RATE_BPS DELAY_US LOSS BUFFER_BYTES SEED STATS_FILE
 *
 * Creates both TUN devices (IFF_TUN | IFF_NO_PI) and moves IP packets between them, per direction:
 * random loss (probability LOSS), then a drop-tail queue of BUFFER_BYTES in front of a bottleneck of RATE_BPS
 * bits per second, then DELAY_US microseconds of one-way delay. Packets keep their order. Every half second
 * and at exit it writes "a_to_b_bytes b_to_a_bytes a_to_b_dropped b_to_a_dropped" to STATS_FILE (bytes that
 * left the link, packets lost or dropped). Ends on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 32768
#define MTU 2048

struct packet {
    uint64_t due_ns; /* when it leaves the far end of the link */
    uint16_t len;
    unsigned char data[MTU];
};

struct direction {
    int in, out;
    struct packet *ring;
    unsigned head, tail; /* ring[head..tail) wait for their due time */
    uint64_t free_at_ns; /* when the bottleneck has sent everything queued so far */
    uint64_t bytes, dropped;
};

static volatile sig_atomic_t stop;
static double rate_bps, loss;
static uint64_t delay_ns, buffer_bytes;

static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_tun(const char *name) {
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd < 0) { perror("/dev/net/tun"); exit(1); }
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(1); }
    return fd;
}

/* Read every packet waiting on d->in and queue (or drop) it. */
static void take(struct direction *d) {
    for (;;) {
        struct packet *p = &d->ring[d->tail % SLOTS];
        ssize_t n = read(d->in, p->data, MTU);
        if (n <= 0) return;
        uint64_t now = now_ns();
        if (loss > 0 && (double)rand() / RAND_MAX < loss) { d->dropped++; continue; }
        uint64_t start = d->free_at_ns > now ? d->free_at_ns : now;
        /* Bytes still waiting for the bottleneck: its backlog in time, times the rate. */
        uint64_t backlog = (uint64_t)((double)(start - now) * rate_bps / 8e9);
        if (backlog + (uint64_t)n > buffer_bytes || d->tail - d->head >= SLOTS) { d->dropped++; continue; }
        d->free_at_ns = start + (uint64_t)((double)n * 8e9 / rate_bps);
        p->len = (uint16_t)n;
        p->due_ns = d->free_at_ns + delay_ns;
        d->tail++;
    }
}

/* Deliver every packet that is due; returns ns until the next one (or -1 when none waits). */
static int64_t give(struct direction *d) {
    uint64_t now = now_ns();
    while (d->head != d->tail) {
        struct packet *p = &d->ring[d->head % SLOTS];
        if (p->due_ns > now) return (int64_t)(p->due_ns - now);
        if (write(d->out, p->data, p->len) == p->len) d->bytes += p->len;
        d->head++;
    }
    return -1;
}

static void write_stats(const char *path, struct direction *ab, struct direction *ba) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "%llu %llu %llu %llu\n", (unsigned long long)ab->bytes, (unsigned long long)ba->bytes,
            (unsigned long long)ab->dropped, (unsigned long long)ba->dropped);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s TUN_A TUN_B RATE_BPS DELAY_US LOSS BUFFER_BYTES SEED STATS_FILE\n", argv[0]);
        return 2;
    }
    rate_bps = atof(argv[3]);
    delay_ns = (uint64_t)atoll(argv[4]) * 1000ull;
    loss = atof(argv[5]);
    buffer_bytes = (uint64_t)atoll(argv[6]);
    srand((unsigned)atoi(argv[7]));
    const char *stats = argv[8];
    int a = open_tun(argv[1]), b = open_tun(argv[2]);
    struct direction ab = {a, b, calloc(SLOTS, sizeof(struct packet)), 0, 0, 0, 0, 0};
    struct direction ba = {b, a, calloc(SLOTS, sizeof(struct packet)), 0, 0, 0, 0, 0};
    if (!ab.ring || !ba.ring) { perror("calloc"); return 1; }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready\n");
    fflush(stdout);
    uint64_t next_stats = now_ns();
    while (!stop) {
        int64_t w1 = give(&ab), w2 = give(&ba);
        int64_t wait = 200000000; /* 200 ms at most, for the stats and the signal */
        if (w1 >= 0 && w1 < wait) wait = w1;
        if (w2 >= 0 && w2 < wait) wait = w2;
        struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        struct timespec timeout = {wait / 1000000000, wait % 1000000000}; /* ppoll: ns, not ms */
        if (ppoll(fds, 2, &timeout, NULL) < 0 && errno != EINTR) { perror("ppoll"); break; }
        if (fds[0].revents & POLLIN) take(&ab);
        if (fds[1].revents & POLLIN) take(&ba);
        if (now_ns() >= next_stats) {
            write_stats(stats, &ab, &ba);
            next_stats = now_ns() + 500000000ull;
        }
    }
    write_stats(stats, &ab, &ba);
    return 0;
}
