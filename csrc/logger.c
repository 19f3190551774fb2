/*
 * pycontainer-logger: keeps a detached container's output as Docker's
 * json-file driver does, outside the container, on the host.
 *
 *   _pclog MAX_SIZE MAX_FILES [COMMAND [ARG...]]
 *
 * fd 3: the container's stdout (a pipe, or a pty master: EIO is its end),
 * fd 4: its stderr (optional: may be closed), fd 5: the directory that
 * holds the log (an O_DIRECTORY fd: the directory may be renamed meanwhile).
 * Writes "container.log" there, one JSON object per line:
 *
 *   {"log":"text\n","stream":"stdout","time":"2026-11-28T07:00:00.123456789Z"}
 *
 * A line longer than 16 KiB is cut into parts (the last without "\n"), as
 * Docker's.  When MAX_SIZE > 0 and the file reaches it, the file rotates:
 * container.log.(N-1) ... container.log.1 shift up, container.log becomes
 * container.log.1 (MAX_FILES of them in all; with MAX_FILES = 1 the file is
 * truncated instead).  The logger forks once and the parent exits, so the
 * caller reaps it at once and nothing waits for the container; the child
 * holds an exclusive flock on "container.log.lock" until both streams end:
 * a reader that gets the lock knows no more lines will come.  Then, if a
 * COMMAND is given, the logger execs it (the lock is close-on-exec: gone by
 * then), e.g. to remove a container started with --rm -d.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384
#define LOG_NAME "container.log"

struct stream {
    int fd;
    const char *name;
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static int dir_fd = 5, log_fd = -1;
static long long max_size, size;
static int max_files;

static void open_log(int truncate)
{
    struct stat st;
    log_fd = openat(dir_fd, LOG_NAME, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    if (log_fd < 0) /* (the directory went: the output is read and dropped, never left to block the container) */
        perror("pycontainer-logger: " LOG_NAME);
    size = log_fd >= 0 && fstat(log_fd, &st) == 0 ? (long long)st.st_size : 0;
}

static void rotate(void)
{
    char from[64], to[64];
    if (log_fd >= 0)
        close(log_fd);
    if (max_files <= 1) {
        open_log(1);
        return;
    }
    for (int i = max_files - 1; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof from, "%s", LOG_NAME);
        else
            snprintf(from, sizeof from, "%s.%d", LOG_NAME, i - 1);
        snprintf(to, sizeof to, "%s.%d", LOG_NAME, i);
        if (renameat(dir_fd, from, dir_fd, to) < 0 && errno != ENOENT)
            perror("pycontainer-logger: rotate");
    }
    open_log(1);
}

static void write_all(const char *p, size_t n)
{
    if (log_fd < 0)
        return;
    while (n) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            perror("pycontainer-logger: write");
            return; /* a full disk loses lines, never the container */
        }
        p += w;
        n -= (size_t)w;
        size += w;
    }
}

/* One JSON object for `len` bytes of `s` (a line, or part of one). */
static void emit(const struct stream *st, const char *s, size_t len)
{
    static char out[LINE_MAX_BYTES * 6 + 256];
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    size_t o = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    o += (size_t)snprintf(out, sizeof out, "{\"log\":\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, sizeof out - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c; /* UTF-8 passes as it is */
        }
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "\",\"stream\":\"%s\",\"time\":\"%s.%09ldZ\"}\n", st->name, stamp,
                          ts.tv_nsec);
    write_all(out, o);
    if (max_size > 0 && size >= max_size)
        rotate();
}

/* Read what is there; emit every whole line, and a full buffer as a part. */
static int pump(struct stream *st)
{
    ssize_t n = read(st->fd, st->buf + st->len, sizeof st->buf - st->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (n <= 0) { /* EOF, or EIO from a pty whose other side is gone */
        if (st->len)
            emit(st, st->buf, st->len);
        st->len = 0;
        return 0;
    }
    st->len += (size_t)n;
    size_t start = 0;
    for (size_t i = 0; i < st->len; i++) {
        if (st->buf[i] == '\n') {
            emit(st, st->buf + start, i + 1 - start);
            start = i + 1;
        }
    }
    memmove(st->buf, st->buf + start, st->len - start);
    st->len -= start;
    if (st->len == sizeof st->buf) {
        emit(st, st->buf, st->len);
        st->len = 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static struct stream streams[2] = {{3, "stdout", {0}, 0}, {4, "stderr", {0}, 0}};
    struct pollfd pf[2];
    int lock, open_streams = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MAX_SIZE MAX_FILES [COMMAND...] (fds 3, 4: stdout, stderr; 5: the log directory)\n",
                argv[0]);
        return 2;
    }
    close_range(6, ~0U, 0); /* nothing else of the caller's stays open here */
    max_size = atoll(argv[1]);
    max_files = atoi(argv[2]);
    if (max_files < 1)
        max_files = 1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    /* the lock first, in the parent: once the caller has reaped us, a reader
     * that gets the lock knows the logger is done */
    lock = openat(dir_fd, LOG_NAME ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        perror("pycontainer-logger: lock");
        return 1;
    }
    open_log(0);
    if (log_fd < 0)
        return 1; /* at start it is an error the caller hears of */
    switch (fork()) {
    case -1:
        perror("pycontainer-logger: fork");
        return 1;
    case 0:
        break;
    default:
        _exit(0); /* the child holds the lock (flock is per open file) */
    }
    setsid();
    for (int i = 0; i < 2; i++) {
        if (fcntl(streams[i].fd, F_GETFD) < 0)
            streams[i].fd = -1;
        else
            open_streams++;
    }
    while (open_streams) {
        for (int i = 0; i < 2; i++) {
            pf[i].fd = streams[i].fd;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
        }
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("pycontainer-logger: poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (streams[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (!pump(&streams[i])) {
                close(streams[i].fd);
                streams[i].fd = -1;
                open_streams--;
            }
        }
    }
    if (log_fd >= 0)
        close(log_fd);
    if (argc > 3) {
        close(dir_fd);
        execv(argv[3], argv + 3);
        perror("pycontainer-logger: exec");
        return 1;
    }
    return 0; /* the lock goes with us */
}
