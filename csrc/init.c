/*
 * pycontainer-init - a minimal pid 1 for containers (like `docker run --init`).
 *
 *   pycontainer-init [--exit-fd N] [--restart always|unless-stopped|on-failure[:MAX][@STOPSIG]] PATH ARGV0 [ARG...]
 *
 * Starts PATH with the given argv in its own process group (made the terminal's
 * foreground group when stdin is a terminal), forwards every catchable signal
 * to it, reaps every zombie that gets re-parented to pid 1, and exits with the
 * child's status: its exit code, or 128 + the signal that killed it.
 *
 * With --exit-fd, N is the container's exit.json in the runtime's state
 * directory, opened for writing by the runtime: the status is written there
 * before exiting, so it stays known when the process that created the
 * container is gone.  The fd is kept from the child (close-on-exec) and
 * this process made non-dumpable, so that nothing in the container can reach
 * it through /proc/1/fd.
 *
 * With --restart, a child that exits is started again, as Docker's restart
 * policies do, but without leaving the container: the same namespaces,
 * rootfs and cgroup (what the process wrote stays), every other process of
 * the pid namespace killed first.  ``always``/``unless-stopped``: whatever
 * its status; ``on-failure``: when it is not 0, at most MAX times (0: no
 * limit).  Not after a stop: SIGTERM, SIGINT, SIGQUIT or the container's
 * stop signal (@STOPSIG, its image's StopSignal) sent to this init; other
 * signals are forwarded and change nothing.  Not without a pause: 100 ms,
 * doubled each time up to a minute, back to 100 ms after 10 s of running,
 * as Docker's.  The status recorded is the last run's; the exit fd holds
 * {"restarts": N} meanwhile (N so far), and the final status N too.
 *
 * Built static (it runs inside rootfs images that may have no libc) and
 * executed from a sealed memfd, so nothing in the container can write to it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static pid_t start(char **argv, sigset_t *none)
{
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "pycontainer-init: fork: %s\n", strerror(errno));
        return -1;
    }
    if (child == 0) {
        setpgid(0, 0);
        if (isatty(STDIN_FILENO))
            tcsetpgrp(STDIN_FILENO, getpid()); /* SIGTTOU is blocked here */
        sigprocmask(SIG_SETMASK, none, NULL);
        execv(argv[1], argv + 2);
        fprintf(stderr, "pycontainer-init: exec %s: %s\n", argv[1], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    return child;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    sigset_t all, none;
    pid_t child;
    int status = 0, exit_fd = -1, code, stopping = 0;
    int restart = 0, on_failure = 0, max_restarts = 0, restarts = 0, stop_sig = SIGTERM, reaped_main;
    long long delay = 100, started;

    if (argc >= 5 && !strcmp(argv[1], "--exit-fd")) {
        exit_fd = atoi(argv[2]);
        fcntl(exit_fd, F_SETFD, FD_CLOEXEC);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        argv += 2;
        argc -= 2;
    }
    if (argc >= 5 && !strcmp(argv[1], "--restart")) {
        char *p = argv[2], *at = strchr(p, '@');
        restart = 1;
        if (at) {
            *at = '\0';
            stop_sig = atoi(at + 1);
        }
        if (!strncmp(p, "on-failure", 10)) {
            on_failure = 1;
            max_restarts = p[10] == ':' ? atoi(p + 11) : 0;
        } else if (strcmp(p, "always") && strcmp(p, "unless-stopped")) {
            fprintf(stderr, "pycontainer-init: unknown restart policy %s\n", p);
            return 2;
        }
        argv += 2;
        argc -= 2;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: pycontainer-init PATH ARGV0 [ARG...]\n");
        return 2;
    }
    sigfillset(&all);
    sigemptyset(&none);
    /* Synchronous faults must stay deliverable to ourselves. */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigprocmask(SIG_SETMASK, &all, NULL);

    if ((child = start(argv, &none)) < 0)
        return 1;
    started = now_ms();
    for (;;) {
        siginfo_t info;
        struct timespec wait_for = {0, 0}, *timeout = NULL;
        int sig;
        if (child < 0) { /* between two runs: the pause, signals still heard */
            long long left = delay - (now_ms() - started);
            wait_for.tv_sec = left > 0 ? left / 1000 : 0;
            wait_for.tv_nsec = left > 0 ? (left % 1000) * 1000000 : 0;
            timeout = &wait_for;
        }
        sig = sigtimedwait(&all, &info, timeout);
        if (sig < 0 && errno == EAGAIN && child < 0) {
            if ((child = start(argv, &none)) < 0)
                return 1;
            started = now_ms();
            continue;
        }
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || sig == stop_sig)
                stopping = 1; /* a stop: the child is not started again */
            if (child > 0 && sig != SIGTTIN && sig != SIGTTOU)
                kill(child, sig);
            else if (child < 0 && stopping)
                break;
            continue;
        }
        reaped_main = 0;
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p <= 0)
                break;
            if (p == child) {
                status = st;
                child = -1;
                reaped_main = 1;
            }
        }
        if (!reaped_main)
            continue; /* only orphans (also those of a run being restarted) */
        code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        if (!restart || stopping || (on_failure && code == 0) || (max_restarts && restarts >= max_restarts))
            break;
        /* again: the rest of the last run goes first, then a pause */
        if (getpid() == 1)
            kill(-1, SIGKILL);
        restarts++;
        if (exit_fd >= 0) { /* how many so far, for inspect's RestartCount (no "code": still running) */
            char text[64];
            int n = snprintf(text, sizeof text, "{\"restarts\": %d}\n", restarts);
            if (ftruncate(exit_fd, 0) == 0 && n > 0)
                (void)!pwrite(exit_fd, text, (size_t)n, 0);
        }
        delay = now_ms() - started >= 10000 ? 100 : (restarts == 1 ? 100 : delay * 2);
        if (delay > 60000)
            delay = 60000;
        started = now_ms();
        child = -1; /* (status keeps the last run's, should a stop come in the pause) */
    }
    code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (exit_fd >= 0) {
        char text[128];
        int n = snprintf(text, sizeof text, "{\"code\": %d, \"signal\": null, \"oom_killed\": false, \"restarts\": %d}\n",
                         code, restarts);
        if (ftruncate(exit_fd, 0) == 0 && n > 0)
            (void)!pwrite(exit_fd, text, (size_t)n, 0);
    }
    return code;
}
