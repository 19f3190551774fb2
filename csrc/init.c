/*
 * pycontainer-init - a minimal pid 1 for containers (like `docker run --init`).
 *
 *   pycontainer-init PATH ARGV0 [ARG...]
 *
 * Starts PATH with the given argv in its own process group (made the terminal's
 * foreground group when stdin is a terminal), forwards every catchable signal
 * to it, reaps every zombie that gets re-parented to pid 1, and exits with the
 * child's status: its exit code, or 128 + the signal that killed it.
 *
 * Built static (it runs inside rootfs images that may have no libc) and
 * executed from a sealed memfd, so nothing in the container can write to it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    sigset_t all, none;
    pid_t child;
    int status = 0;

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
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
