/*
 * smtp_sink.c - a fast, counting SMTP sink for smtpx's throughput harness.
 *
 * One thread, epoll, 127.0.0.1 only. It speaks just enough ESMTP for load generators
 * and keeps nothing it receives:
 *
 *   EHLO/HELO (advertising PIPELINING, CHUNKING, 8BITMIME, SIZE, SMTPUTF8,
 *   ENHANCEDSTATUSCODES), MAIL, RCPT, DATA (its end found with memmem, also across
 *   reads), BDAT n [LAST] (chunks are counted, not scanned), RSET, NOOP, VRFY, QUIT.
 *   Out-of-sequence commands get 503/554, bad syntax 501, unknown commands 500.
 *
 * All the replies to one read go out in one write, so pipelining clients get them
 * batched. A client that does not read its replies stops being read from until it does.
 *
 *   cc -O2 -o smtp_sink smtp_sink.c
 *   ./smtp_sink [--port N] [--count N] [--quiet]
 *
 * stdout (machine-readable): "listening 127.0.0.1 PORT" once bound, then, when stopped
 * by SIGINT/SIGTERM or after --count accepted messages, one line of JSON:
 *   {"messages": M, "recipients": R, "bytes": B, "connections": C}
 * "bytes" is the content of accepted messages as received: for DATA, dot-stuffed and up
 * to the CRLF before the final dot; for BDAT, the chunk sizes.
 * stderr: one line per connection opened and closed, unless --quiet.
 *
 * Plain C (POSIX + Linux epoll), no Python.h; built by benchmarks/throughput.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* One read: large, so that a 1 MiB BDAT body costs a handful of system calls. */
#define READ_SIZE (256 * 1024)
/* Longest command line, CRLF included (RFC 5321 asks for at least 512). */
#define MAX_LINE 2048
#define MAX_EVENTS 64
#define END_OF_DATA "\r\n.\r\n"

#define REPLY(c, literal) append((c), (literal), sizeof(literal) - 1)

static const char EHLO_REPLY[] =
    "250-localhost\r\n"
    "250-PIPELINING\r\n"
    "250-CHUNKING\r\n"
    "250-8BITMIME\r\n"
    "250-SIZE\r\n"
    "250-SMTPUTF8\r\n"
    "250 ENHANCEDSTATUSCODES\r\n";
static const char NEED_MAIL[] = "503 5.5.1 Need MAIL command\r\n";
static const char NO_RECIPIENTS[] = "554 5.5.1 No valid recipients\r\n";

enum mode {
    COMMAND, /* command lines */
    DATA,    /* DATA content, up to CRLF.CRLF */
    CHUNK,   /* the octets of a BDAT chunk */
    DISCARD, /* the rest of an over-long command line */
    CLOSING  /* after QUIT: flush the replies, then close */
};

struct conn {
    int fd;
    enum mode mode;
    int hello;                     /* EHLO or HELO seen */
    int mail;                      /* MAIL accepted: a transaction is open */
    int chunked;                   /* the transaction uses BDAT */
    unsigned long rcpts;           /* recipients accepted in the transaction */
    unsigned long long size;       /* content octets taken in the transaction */
    unsigned long long chunk_left; /* octets of the current BDAT chunk still to come */
    int chunk_last;                /* the current chunk is BDAT ... LAST */
    const char *chunk_refusal;     /* the reply a refused chunk gets once read, or NULL */
    char tail[4];                  /* the last octets of DATA content (marker across reads) */
    size_t tail_len;
    char *in; /* MAX_LINE + READ_SIZE: a partial command line, then what was read */
    size_t in_len;
    char *out; /* replies not yet written */
    size_t out_len, out_cap, out_sent;
};

static struct {
    unsigned long long messages, recipients, bytes, connections;
} stats;
static volatile sig_atomic_t stopping;
static int quiet;
static int epfd;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void on_signal(int signum)
{
    (void)signum;
    stopping = 1;
}

static void append(struct conn *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out)
            die("realloc");
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void reset_transaction(struct conn *c)
{
    c->mail = 0;
    c->chunked = 0;
    c->rcpts = 0;
    c->size = 0;
}

static void accept_message(struct conn *c, unsigned long long size)
{
    stats.messages++;
    stats.recipients += c->rcpts;
    stats.bytes += size;
    reset_transaction(c);
    REPLY(c, "250 2.0.0 Message accepted\r\n");
}

/* "verb" or "verb args", case-insensitive; the verb is a literal. */
static int is_verb(const char *line, size_t len, const char *verb, size_t vlen)
{
    return len >= vlen && strncasecmp(line, verb, vlen) == 0 && (len == vlen || line[vlen] == ' ');
}
#define IS(verb) is_verb(line, len, (verb), sizeof(verb) - 1)

/* BDAT size [LAST]: returns 0 and fills *size, *last; -1 on bad syntax. */
static int parse_bdat(const char *args, size_t len, unsigned long long *size, int *last)
{
    size_t i = 0;
    unsigned long long n = 0;
    while (i < len && args[i] >= '0' && args[i] <= '9' && i < 19)
        n = n * 10 + (unsigned long long)(args[i++] - '0');
    if (i == 0 || (i < len && args[i] != ' '))
        return -1;
    *size = n;
    *last = 0;
    if (i == len)
        return 0;
    if (len - i == 5 && strncasecmp(args + i, " LAST", 5) == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}

static void chunk_done(struct conn *c)
{
    c->mode = COMMAND;
    if (c->chunk_refusal)
        append(c, c->chunk_refusal, strlen(c->chunk_refusal));
    else if (c->chunk_last)
        accept_message(c, c->size);
    else
        REPLY(c, "250 2.0.0 Chunk accepted\r\n");
}

static void command(struct conn *c, const char *line, size_t len)
{
    if (IS("EHLO") || IS("HELO")) {
        if (len < 6) {
            REPLY(c, "501 5.5.4 Syntax: EHLO domain\r\n");
            return;
        }
        c->hello = 1;
        reset_transaction(c);
        if (line[0] == 'E' || line[0] == 'e')
            REPLY(c, EHLO_REPLY);
        else
            REPLY(c, "250 localhost\r\n");
    } else if (IS("MAIL")) {
        if (!c->hello)
            REPLY(c, "503 5.5.1 Send EHLO or HELO first\r\n");
        else if (c->mail)
            REPLY(c, "503 5.5.1 Sender already specified\r\n");
        else if (len < 10 || strncasecmp(line + 5, "FROM:", 5) != 0)
            REPLY(c, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
        else {
            c->mail = 1;
            REPLY(c, "250 2.1.0 Sender OK\r\n");
        }
    } else if (IS("RCPT")) {
        if (!c->mail)
            REPLY(c, NEED_MAIL);
        else if (len < 8 || strncasecmp(line + 5, "TO:", 3) != 0)
            REPLY(c, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
        else {
            c->rcpts++;
            REPLY(c, "250 2.1.5 Recipient OK\r\n");
        }
    } else if (IS("DATA")) {
        if (len != 4)
            REPLY(c, "501 5.5.4 This command takes no arguments\r\n");
        else if (!c->mail)
            REPLY(c, NEED_MAIL);
        else if (!c->rcpts)
            REPLY(c, NO_RECIPIENTS);
        else if (c->chunked)
            REPLY(c, "503 5.5.1 DATA not allowed after BDAT\r\n");
        else {
            c->mode = DATA;
            memcpy(c->tail, "\r\n", 2); /* the DATA line's CRLF: ".\r\n" next ends it */
            c->tail_len = 2;
            REPLY(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
        }
    } else if (IS("BDAT")) {
        if (len < 6 || parse_bdat(line + 5, len - 5, &c->chunk_left, &c->chunk_last) < 0) {
            REPLY(c, "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
            return;
        }
        /* The chunk's octets follow whatever the verdict: read them, then answer. */
        c->chunk_refusal = !c->mail ? NEED_MAIL : !c->rcpts ? NO_RECIPIENTS : NULL;
        if (!c->chunk_refusal)
            c->chunked = 1;
        if (c->chunk_left == 0)
            chunk_done(c);
        else
            c->mode = CHUNK;
    } else if (IS("RSET")) {
        reset_transaction(c);
        REPLY(c, "250 2.0.0 OK\r\n");
    } else if (IS("NOOP")) {
        REPLY(c, "250 2.0.0 OK\r\n");
    } else if (IS("VRFY")) {
        REPLY(c, "252 2.5.2 Cannot VRFY user, but will accept message\r\n");
    } else if (IS("QUIT")) {
        REPLY(c, "221 2.0.0 Bye\r\n");
        c->mode = CLOSING;
    } else if (IS("STARTTLS") || IS("AUTH")) {
        REPLY(c, "502 5.5.1 Command not implemented\r\n");
    } else {
        REPLY(c, "500 5.5.2 Command unrecognized\r\n");
    }
}

/* DATA content: count it up to CRLF.CRLF; returns the octets taken from p. */
static size_t take_data(struct conn *c, const char *p, size_t n)
{
    char probe[8];
    size_t head = n < 4 ? n : 4, stop;
    const char *hit;

    /* A marker that starts in the previous read ends in the first 4 octets of this one. */
    memcpy(probe, c->tail, c->tail_len);
    memcpy(probe + c->tail_len, p, head);
    hit = memmem(probe, c->tail_len + head, END_OF_DATA, 5);
    if (hit) {
        stop = (size_t)(hit - probe) + 5 - c->tail_len;
    } else {
        hit = memmem(p, n, END_OF_DATA, 5);
        if (!hit) {
            c->size += n;
            if (n >= 4) {
                memcpy(c->tail, p + n - 4, 4);
            } else { /* keep the last 4 octets of tail + p */
                size_t keep = c->tail_len + n > 4 ? 4 - n : c->tail_len;
                memmove(c->tail, c->tail + c->tail_len - keep, keep);
                memcpy(c->tail + keep, p, n);
                c->tail_len = keep + n;
                return n;
            }
            c->tail_len = 4;
            return n;
        }
        stop = (size_t)(hit - p) + 5;
    }
    c->size += stop;
    c->mode = COMMAND;
    accept_message(c, c->size - 3); /* the final ".\r\n" is not content */
    return stop;
}

static void process(struct conn *c, size_t n)
{
    char *p = c->in;
    size_t pos = 0;

    c->in_len = 0;
    while (pos < n && c->mode != CLOSING) {
        switch (c->mode) {
        case COMMAND: {
            size_t avail = n - pos;
            char *nl = memchr(p + pos, '\n', avail < MAX_LINE ? avail : MAX_LINE);
            size_t len;
            if (!nl) {
                if (avail >= MAX_LINE) {
                    REPLY(c, "500 5.5.2 Line too long\r\n");
                    c->mode = DISCARD;
                } else { /* keep the start of the line for the next read */
                    memmove(c->in, p + pos, avail);
                    c->in_len = avail;
                    pos = n;
                }
                break;
            }
            len = (size_t)(nl - (p + pos));
            if (len == 0 || p[pos + len - 1] != '\r' || memchr(p + pos, '\0', len))
                REPLY(c, "500 5.5.2 Bare LF or NUL in command line\r\n");
            else
                command(c, p + pos, len - 1);
            pos += len + 1;
            break;
        }
        case DATA:
            pos += take_data(c, p + pos, n - pos);
            break;
        case CHUNK: {
            size_t take = n - pos < c->chunk_left ? n - pos : (size_t)c->chunk_left;
            if (!c->chunk_refusal)
                c->size += take;
            c->chunk_left -= take;
            pos += take;
            if (c->chunk_left == 0)
                chunk_done(c);
            break;
        }
        case DISCARD: {
            char *nl = memchr(p + pos, '\n', n - pos);
            if (nl) {
                pos = (size_t)(nl - p) + 1;
                c->mode = COMMAND;
            } else {
                pos = n;
            }
            break;
        }
        case CLOSING:
            break;
        }
    }
}

static void watch(struct conn *c, int op, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void drop(struct conn *c)
{
    if (!quiet)
        fprintf(stderr, "smtp_sink: connection %d closed\n", c->fd);
    close(c->fd); /* also removes it from the epoll set */
    free(c->in);
    free(c->out);
    free(c);
}

/* Write what is pending; returns 0 when all is out, 1 when it would block, -1 on error. */
static int flush(struct conn *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        c->out_sent += (size_t)w;
    }
    c->out_len = c->out_sent = 0;
    return 0;
}

/* After processing: send the replies; stop reading while a slow reader lags behind. */
static void settle(struct conn *c, int was_blocked)
{
    int status = flush(c);
    if (status < 0 || (status == 0 && c->mode == CLOSING)) {
        drop(c);
    } else if (status == 1 && !was_blocked) {
        watch(c, EPOLL_CTL_MOD, EPOLLOUT);
    } else if (status == 0 && was_blocked) {
        watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }
}

static void on_readable(struct conn *c)
{
    ssize_t r = recv(c->fd, c->in + c->in_len, READ_SIZE, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        drop(c);
        return;
    }
    process(c, c->in_len + (size_t)r);
    settle(c, 0);
}

static void on_connect(int listener)
{
    for (;;) {
        struct conn *c;
        int one = 1;
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("accept4");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (!c || !(c->in = malloc(MAX_LINE + READ_SIZE)))
            die("malloc");
        c->fd = fd;
        stats.connections++;
        if (!quiet)
            fprintf(stderr, "smtp_sink: connection %d opened\n", fd);
        REPLY(c, "220 localhost ESMTP smtpx C sink ready\r\n");
        watch(c, EPOLL_CTL_ADD, EPOLLIN);
        settle(c, 0);
    }
}

static int listen_on(unsigned short port, unsigned short *bound)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t addrlen = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(fd, SOMAXCONN) < 0)
        die("listen");
    if (getsockname(fd, (struct sockaddr *)&addr, &addrlen) < 0)
        die("getsockname");
    *bound = ntohs(addr.sin_port);
    return fd;
}

static unsigned long long number(const char *option, const char *text, unsigned long long max)
{
    char *end;
    unsigned long long n;
    errno = 0;
    n = strtoull(text ? text : "", &end, 10);
    if (!text || !*text || *end || errno || n > max) {
        fprintf(stderr, "smtp_sink: %s needs a number up to %llu\n", option, max);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    unsigned long long count = 0;
    unsigned short port = 0, bound;
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t blocked, during_wait;
    struct epoll_event events[MAX_EVENTS];
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.ptr = NULL};
    int listener, i;

    for (i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--port") == 0) {
            port = (unsigned short)number("--port", value, 65535);
            i++;
        } else if (strcmp(argv[i], "--count") == 0) {
            count = number("--count", value, (unsigned long long)-1);
            i++;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else {
            fprintf(stderr, "usage: %s [--port N] [--count N] [--quiet]\n", argv[0]);
            return 2;
        }
    }

    /* SIGINT/SIGTERM are delivered only inside epoll_pwait: no race with the flag. */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &blocked, &during_wait) < 0)
        die("sigprocmask");
    sigdelset(&during_wait, SIGINT);
    sigdelset(&during_wait, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    listener = listen_on(port, &bound);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &listen_ev) < 0)
        die("epoll_ctl");
    printf("listening 127.0.0.1 %u\n", (unsigned)bound);
    fflush(stdout);

    while (!stopping && (!count || stats.messages < count)) {
        int n = epoll_pwait(epfd, events, MAX_EVENTS, -1, &during_wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_pwait");
        }
        for (i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c)
                on_connect(listener);
            else if (events[i].events & EPOLLOUT)
                settle(c, 1);
            else
                on_readable(c);
        }
    }
    printf("{\"messages\": %llu, \"recipients\": %llu, \"bytes\": %llu, \"connections\": %llu}\n",
           stats.messages, stats.recipients, stats.bytes, stats.connections);
    fflush(stdout);
    return 0;
}
