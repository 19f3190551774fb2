/*
 * pycontainer-init - a minimal pid 1 for containers (like `docker run --init`).
 *
 *   pycontainer-init [--exit-fd N] PATH ARGV0 [ARG...]
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
#include <unistd.h>

int main(int argc, char **argv)
{
    sigset_t all, none;
    pid_t child;
    int status = 0, exit_fd = -1, code;

    if (argc >= 5 && !strcmp(argv[1], "--exit-fd")) {
        exit_fd = atoi(argv[2]);
        fcntl(exit_fd, F_SETFD, FD_CLOEXEC);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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

    child = fork();
    if (child < 0) {
        fprintf(stderr, "pycontainer-init: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        setpgid(0, 0);
        if (isatty(STDIN_FILENO))
            tcsetpgrp(STDIN_FILENO, getpid()); /* SIGTTOU is blocked here */
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[1], argv + 2);
        fprintf(stderr, "pycontainer-init: exec %s: %s\n", argv[1], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            if (sig != SIGTTIN && sig != SIGTTOU)
                kill(child, sig);
            continue;
        }
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p <= 0)
                break;
            if (p == child) {
                status = st;
                child = -1;
            }
        }
        if (child < 0)
            break;
    }
    code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (exit_fd >= 0) {
        char text[96];
        int n = snprintf(text, sizeof text, "{\"code\": %d, \"signal\": null, \"oom_killed\": false}\n", code);
        if (ftruncate(exit_fd, 0) == 0 && n > 0)
            (void)!pwrite(exit_fd, text, (size_t)n, 0);
    }
    return code;
}
