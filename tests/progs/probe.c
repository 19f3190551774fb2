/*
 * probe - tries things from inside a container and prints what happened, one
 * line per attempt, for tests/test_security.py.  Built static by the test
 * session (it runs in any rootfs) and bound read-only at /probe.
 *
 *   probe sys NR[,A0[,A1...]] ...   raw system calls, each in a forked child:
 *                                   "ok RET", "err ERRNO" or "sig SIGNAL"
 *   probe open PATH[,FLAGS] ...     open(2) (FLAGS: r, w, rw): "ok" or "err ERRNO"
 *   probe fds                       the open fds, one per line
 *   probe capset                    try to put every capability in the
 *                                   effective, permitted and inheritable sets
 *   probe status                    the Uid and Cap* lines of /proc/self/status
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report_child(pid_t pid, int rd)
{
    long res[2] = {0, 0};
    int st = 0;
    ssize_t n = read(rd, res, sizeof res);
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        printf("sig %d\n", WTERMSIG(st));
    else if (n != (ssize_t)sizeof res)
        printf("lost %d\n", WEXITSTATUS(st));
    else if (res[0] < 0)
        printf("err %ld\n", res[1]);
    else
        printf("ok %ld\n", res[0]);
    fflush(stdout);
}

static void do_sys(const char *spec)
{
    long a[7] = {0};
    int n = 0, p[2];
    char *end;
    pid_t pid;
    const char *s = spec;
    while (n < 7) {
        a[n++] = (long)strtoull(s, &end, 0);
        if (*end != ',')
            break;
        s = end + 1;
    }
    if (pipe(p) < 0) {
        perror("pipe");
        exit(2);
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        long res[2];
        close(p[0]);
        errno = 0;
        res[0] = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        res[1] = errno;
        write(p[1], res, sizeof res);
        _exit(0);
    }
    close(p[1]);
    report_child(pid, p[0]);
    close(p[0]);
}

static void do_open(const char *spec)
{
    char path[4096];
    const char *comma = strrchr(spec, ',');
    int flags = O_RDONLY, fd;
    size_t len = comma ? (size_t)(comma - spec) : strlen(spec);
    if (len >= sizeof path)
        len = sizeof path - 1;
    memcpy(path, spec, len);
    path[len] = 0;
    if (comma && !strcmp(comma + 1, "w"))
        flags = O_WRONLY;
    else if (comma && !strcmp(comma + 1, "rw"))
        flags = O_RDWR;
    fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        printf("err %d\n", errno);
    else {
        printf("ok\n");
        close(fd);
    }
}

int main(int argc, char **argv)
{
    int i;
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "sys")) {
        for (i = 2; i < argc; i++)
            do_sys(argv[i]);
    } else if (!strcmp(argv[1], "open")) {
        for (i = 2; i < argc; i++)
            do_open(argv[i]);
    } else if (!strcmp(argv[1], "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int self = d ? dirfd(d) : -1;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && atoi(e->d_name) != self)
                printf("%s\n", e->d_name);
    } else if (!strcmp(argv[1], "capset")) {
        struct { unsigned version; int pid; } hdr = {0x20080522, 0};
        struct { unsigned e, p, i; } data[2];
        memset(data, 0xff, sizeof data);
        if (syscall(SYS_capset, &hdr, data) < 0)
            printf("err %d\n", errno);
        else
            printf("ok\n");
    } else if (!strcmp(argv[1], "status")) {
        char line[256];
        FILE *f = fopen("/proc/self/status", "r");
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Cap", 3))
                fputs(line, stdout);
    } else {
        return 2;
    }
    return 0;
}
