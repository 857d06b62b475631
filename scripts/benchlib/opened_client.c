/* The load for the opened-TLS figures (scripts/benchlib/opened.py): CLIENTS
 * threads, each asking a forward proxy for CONNECT HOST:PORT, then TLS
 * through the tunnel (SNI HOST, the certificate verified against CAFILE: the
 * proxy's CA, so the proxy must have opened it), then HTTP/1.1 GETs of PATH.
 *   ka:  one opened connection per thread, requests one after another on it
 *   new: a new connection per request (CONNECT + handshake + one GET, close)
 * wrk cannot CONNECT and curl --parallel spends more CPU than the proxies, so
 * this is C with OpenSSL: blocking sockets, a thread per client, no session
 * resumption (each new connection is a full handshake).
 *
 *   cc -O2 -pthread -o opened_client opened_client.c -lssl -lcrypto
 *   opened_client PROXY_PORT HOST PORT CAFILE PATH SECONDS CLIENTS ka|new [HEADER_LINE]
 *
 * Prints one line: `requests N errors E seconds S p50 MS p99 MS`, and the
 * first error, if any, on stderr. Exit 1 when no request was answered. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int proxy_port, new_each, seconds;
static const char *host, *port, *path, *extra;
static SSL_CTX *ctx;
static double deadline;
static pthread_mutex_t first_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];

struct worker {
    pthread_t thread;
    long done, errors;
    double *lat;
    long cap;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(struct worker *w, const char *what) {
    w->errors++;
    pthread_mutex_lock(&first_lock);
    if (!first_error[0]) {
        unsigned long e = ERR_peek_error();
        snprintf(first_error, sizeof first_error, "%s%s%s", what, e ? ": " : "", e ? ERR_reason_error_string(e) : "");
    }
    pthread_mutex_unlock(&first_lock);
    ERR_clear_error();
}

/* A TCP connection to the proxy with the tunnel open (its 200 read): the fd, or -1. */
static int tunnel(struct worker *w) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(proxy_port), .sin_addr.s_addr = htonl(0x7f000001)};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fail(w, "connect to the proxy");
        return -1;
    }
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", host, port, host, port);
    if (write(fd, buf, n) != n) {
        close(fd);
        fail(w, "CONNECT not sent");
        return -1;
    }
    /* Read the answer a byte at a time past its head: nothing of the TLS may be eaten. */
    int got = 0;
    while (got < (int)sizeof buf - 1 && !(got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0)) {
        if (read(fd, buf + got, 1) != 1)
            break;
        got++;
    }
    buf[got] = 0;
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0) {
        close(fd);
        fail(w, "CONNECT refused");
        return -1;
    }
    return fd;
}

static SSL *open_tls(struct worker *w, int fd) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) {
        fail(w, "TLS handshake through the tunnel");
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* One GET and its whole answer: 0, or -1. */
static int request(struct worker *w, SSL *ssl) {
    char req[1024], buf[65536];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n%s%s\r\n", path, host, port, extra, extra[0] ? "\r\n" : "");
    if (SSL_write(ssl, req, n) != n) {
        fail(w, "request not sent");
        return -1;
    }
    int got = 0;
    char *end = NULL;
    while (!end) {
        int r = SSL_read(ssl, buf + got, sizeof buf - 1 - got);
        if (r <= 0) {
            fail(w, "answer cut short");
            return -1;
        }
        got += r;
        buf[got] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && got >= (int)sizeof buf - 1) {
            fail(w, "answer head too long");
            return -1;
        }
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        char line[80];
        snprintf(line, sizeof line, "answer not 200: %.*s", (int)strcspn(buf, "\r\n"), buf);
        fail(w, line);
        return -1;
    }
    long length = -1;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            length = strtol(line + 17, NULL, 10);
    if (length < 0) {
        fail(w, "answer without Content-Length");
        return -1;
    }
    long body = got - (end + 4 - buf);
    while (body < length) {
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0) {
            fail(w, "body cut short");
            return -1;
        }
        body += r;
    }
    return 0;
}

static void record(struct worker *w, double started) {
    if (w->done == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 4096;
        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
    }
    w->lat[w->done++] = now() - started;
}

static void *run(void *arg) {
    struct worker *w = arg;
    SSL *ssl = NULL;
    int fd = -1;
    while (now() < deadline && w->errors < 100) {
        double t = now();
        if (!ssl) {
            if ((fd = tunnel(w)) < 0)
                continue;
            if (!(ssl = open_tls(w, fd))) {
                close(fd);
                continue;
            }
        }
        int ok = request(w, ssl) == 0;
        if (ok)
            record(w, t);
        if (!ok || new_each) {
            if (ok)
                SSL_shutdown(ssl); /* close_notify, not waiting for the proxy's */
            SSL_free(ssl);
            close(fd);
            ssl = NULL;
        }
    }
    if (ssl) {
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 9 || (strcmp(argv[8], "ka") && strcmp(argv[8], "new"))) {
        fprintf(stderr, "usage: %s PROXY_PORT HOST PORT CAFILE PATH SECONDS CLIENTS ka|new [HEADER_LINE]\n", argv[0]);
        return 2;
    }
    proxy_port = atoi(argv[1]);
    host = argv[2];
    port = argv[3];
    path = argv[5];
    seconds = atoi(argv[6]);
    int clients = atoi(argv[7]);
    new_each = strcmp(argv[8], "new") == 0;
    extra = argc > 9 ? argv[9] : "";
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, argv[4], NULL) != 1) {
        fprintf(stderr, "opened_client: cannot read the CA file %s\n", argv[4]);
        return 2;
    }
    struct worker *w = calloc(clients, sizeof *w);
    double start = now();
    deadline = start + seconds;
    for (int i = 0; i < clients; i++)
        pthread_create(&w[i].thread, NULL, run, &w[i]);
    long done = 0, errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].thread, NULL);
        done += w[i].done;
        errors += w[i].errors;
    }
    double took = now() - start;
    double *all = malloc((done + 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < clients; i++)
        for (long j = 0; j < w[i].done; j++)
            all[k++] = w[i].lat[j];
    qsort(all, done, sizeof *all, cmp);
    printf("requests %ld errors %ld seconds %.3f p50 %.3f p99 %.3f\n", done, errors, took,
           done ? all[done / 2] * 1000 : 0, done ? all[(long)(done * 0.99)] * 1000 : 0);
    if (first_error[0])
        fprintf(stderr, "opened_client: %ld errors, the first: %s\n", errors, first_error);
    return done ? 0 : 1;
}
