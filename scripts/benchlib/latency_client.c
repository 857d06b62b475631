/* latency_client: a second measure of keep-alive latency, beside wrk's.
 *
 *   latency_client PORT CLIENTS SECONDS [PAUSE_US]
 *
 * CLIENTS connections to 127.0.0.1:PORT, each sending "GET /small" again as
 * soon as its answer is complete (after PAUSE_US microseconds, if given),
 * from one thread and one epoll. Each request's latency runs from just
 * before its write to the read that completes its answer (Content-Length),
 * on CLOCK_MONOTONIC. Prints one line: n=, p50=, p99=, p999=, max= (ms).
 *
 * Why a second client: on the stock WasmEdge build, wrk's p99 under this
 * load moved between 2 and 15 ms from run to run, while the packets of
 * wrk's own connections, captured on the loopback, showed every exchange
 * but one under 5 ms, and this client, run at the same time on the same
 * proxy, agreed with the packets (BENCHMARKS.md, issue 49). Against
 * HAProxy the two agree. The report prints both. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  double start;   /* when this request was written */
  double due;     /* when to write the next one (pacing); 0: now */
  size_t got, need;
  char buf[16384];
} conn;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The nearest-rank percentile's index among n sorted values. */
static size_t rank(size_t n, double q) {
  size_t r = (size_t)ceil(q * (double)n);
  return r == 0 ? 0 : r - 1;
}

static char req[128];
static int req_len;

static void send_request(conn *c) {
  c->start = now();
  c->due = 0;
  if (write(c->fd, req, req_len) != req_len) {
    perror("latency_client: write");
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: latency_client PORT CLIENTS SECONDS [PAUSE_US]\n");
    return 2;
  }
  int port = atoi(argv[1]), clients = atoi(argv[2]);
  double seconds = atof(argv[3]), pause = argc > 4 ? atof(argv[4]) / 1e6 : 0;
  req_len = snprintf(req, sizeof req, "GET /small HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
  size_t cap = 1 << 24, n = 0;
  double *lat = malloc(cap * sizeof *lat);
  conn *cs = calloc(clients, sizeof *cs);
  int ep = epoll_create1(0);
  if (!lat || !cs || ep < 0) {
    perror("latency_client: setup");
    return 1;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  for (int i = 0; i < clients; i++) {
    conn *c = &cs[i];
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      perror("latency_client: connect");
      return 1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
  }
  for (int i = 0; i < clients; i++) send_request(&cs[i]);
  double end = now() + seconds;
  struct epoll_event evs[256];
  while (now() < end) {
    int timeout = pause > 0 ? 1 : 100; /* ms: pacing looks at the clock each millisecond */
    int k = epoll_wait(ep, evs, 256, timeout);
    for (int i = 0; i < k; i++) {
      conn *c = evs[i].data.ptr;
      if (c->got == sizeof c->buf) {
        fprintf(stderr, "latency_client: an answer over %zu bytes (it reads /small)\n", sizeof c->buf);
        return 1;
      }
      ssize_t r = read(c->fd, c->buf + c->got, sizeof c->buf - c->got);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        fprintf(stderr, "latency_client: the proxy closed a connection (read %zd)\n", r);
        return 1;
      }
      c->got += (size_t)r;
      if (!c->need) {
        char *head_end = memmem(c->buf, c->got, "\r\n\r\n", 4);
        if (!head_end) continue;
        char *len = memmem(c->buf, (size_t)(head_end - c->buf), "Content-Length: ", 16);
        if (!len) {
          fprintf(stderr, "latency_client: an answer without Content-Length\n");
          return 1;
        }
        c->need = (size_t)(head_end - c->buf) + 4 + strtoul(len + 16, NULL, 10);
      }
      if (c->got < c->need) continue;
      if (n < cap) lat[n++] = now() - c->start;
      c->got = c->need = 0;
      if (pause > 0) c->due = now() + pause;
      else send_request(c);
    }
    if (pause > 0) {
      double t = now();
      for (int i = 0; i < clients; i++)
        if (cs[i].due > 0 && cs[i].due <= t) send_request(&cs[i]);
    }
  }
  if (n == 0) {
    fprintf(stderr, "latency_client: no answer in %g s\n", seconds);
    return 1;
  }
  qsort(lat, n, sizeof *lat, cmp);
  printf("n=%zu p50=%.3f p99=%.3f p999=%.3f max=%.3f\n", n, lat[rank(n, 0.5)] * 1e3, lat[rank(n, 0.99)] * 1e3,
         lat[rank(n, 0.999)] * 1e3, lat[n - 1] * 1e3);
  return 0;
}
