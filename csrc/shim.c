/*
 * shim.c - pycontainer's clone-to-exec hot path.
 *
 * The parent (a Python process, possibly with many threads) calls pc_spawn().
 * It copies the plan into an arena that also holds the child's stack, and
 * clones the child with CLONE_VM, like posix_spawn: no page tables are copied,
 * which is what makes a container start cost about as much as the kernel's
 * own work.  Sharing the address space has three rules, kept everywhere below:
 *
 *   1. The child calls no libc function that touches shared state: it makes
 *      raw system calls (errno lives in the parent thread's TLS) and uses only
 *      its stack and the arena, which the parent never frees before the child
 *      has exec'd or died (the sync socket is close-on-exec: EOF says so).
 *   2. Signals are blocked in the parent thread across clone, and the child
 *      resets every handler to SIG_DFL before unblocking them, so no Python
 *      signal handler can run in the child.
 *   3. The child never returns into the parent's stack frames: it runs on its
 *      own stack from child_main() and leaves by execve or exit.
 *
 * The child then interprets the plan (see shim.h) and reports a failing step
 * as a struct pc_msg on the sync socket, or on the exec fifo once `start` has
 * released it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <linux/sched.h>
#include <linux/openat2.h>
#ifndef PC_HELPER
#include <linux/bpf.h>
#endif
#include <net/if.h>
#include <unistd.h>

#include "shim.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif

struct pc_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#define PC_OPEN_TREE_CLONE 1
#define PC_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define PC_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define PC_MOUNT_ATTR_IDMAP 0x00100000

/* ---- raw system calls: no errno, no libc state ------------------------- */

#if defined(__x86_64__)
static inline long rsys(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static inline long rsys(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "pycontainer's shim has raw system calls for x86_64 and aarch64 only"
#endif

#define S0(n) rsys((n), 0, 0, 0, 0, 0, 0)
#define S1(n, a) rsys((n), (long)(a), 0, 0, 0, 0, 0)
#define S2(n, a, b) rsys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define S3(n, a, b, c) rsys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define S4(n, a, b, c, d) rsys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define S5(n, a, b, c, d, e) rsys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* ---- the child's state, kept in the arena ------------------------------- */

struct child {
    const struct pc_op *ops;
    uint32_t nops;
    const char *blob;
    uint32_t blob_len;
    int sync_fd;
    int rootfd;          /* O_PATH fd of the container's root */
    int fifo_fd;         /* O_PATH fd of the exec fifo */
    int fifo_wr;         /* write end once `start` released us, for late errors */
    int mask_fd;         /* the empty read-only tmpfs that hides masked directories */
    int dir_fd;          /* the last parent dir MKNOD/SYMLINK resolved (consecutive ops share it) */
    char dir_path[256];
    uint32_t pc;         /* next op to run */
    char **ptrs;         /* argv/envp pointer slots */
    uint32_t nptrs;
    int fd_base;         /* the child's own fds live at or above this */
    const int *keep;     /* fds the plan uses, sorted */
    uint32_t nkeep;
    char exe[4096];      /* resolved executable */
    int ready;           /* READY was sent and the parent no longer reads the sync socket (not run's READY) */
    int late_err;        /* a step that failed after READY, reported once the fifo is open */
    int late_op;
    uint32_t late_pc;
    char late_text[64];
};

/* Move one of the child's own fds to >= fd_base, out of reach of the fds
 * the plan dups into place (stdio, preserved fds). */
static int high_fd(const struct child *c, int fd)
{
    int n;
    if (fd < 0 || fd >= c->fd_base)
        return fd;
    n = (int)S3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, c->fd_base);
    S1(SYS_close, fd);
    return n;
}

static const char *str(const struct child *c, const struct pc_op *op, int i)
{
    return op->s[i] == PC_NONE ? NULL : c->blob + op->s[i];
}

static size_t slen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void scopy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src)
        for (; src[i] && i + 1 < cap; i++)
            dst[i] = src[i];
    dst[i] = '\0';
}

/* "/proc/self/fd/<fd>": mount(2) follows it to what the fd resolved to. */
static void fd_path(char out[32], int fd)
{
    const char pre[] = "/proc/self/fd/";
    char digits[12];
    int n = 0, i = 0;
    memcpy(out, pre, sizeof pre);
    do {
        digits[n++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd && n < 11);
    while (n)
        out[sizeof pre - 1 + i++] = digits[--n];
    out[sizeof pre - 1 + i] = '\0';
}

static __attribute__((noreturn)) void child_exit(int code)
{
    for (;;)
        S1(SYS_exit, code);
}

static void send_msg(struct child *c, struct pc_msg *m)
{
    long r = S4(SYS_sendto, c->sync_fd, m, sizeof *m, MSG_NOSIGNAL);
    if (r < 0 && r != -EPIPE && r != -ECONNRESET)
        S3(SYS_write, c->sync_fd, m, sizeof *m); /* a seccomp profile (installed already) may refuse sendto */
    if (c->fifo_wr >= 0)
        S3(SYS_write, c->fifo_wr, m, sizeof *m);
}

static __attribute__((noreturn)) void fail(struct child *c, int op, int err, const char *text)
{
    struct pc_msg m;
    memset(&m, 0, sizeof m);
    m.type = PC_MSG_ERROR;
    m.step = (int32_t)(c->pc);
    m.op = op;
    m.err = err;
    scopy(m.text, sizeof m.text, text);
    send_msg(c, &m);
    child_exit(127);
}

/* ---- safe paths inside the rootfs --------------------------------------- */

/* Resolve `path` with the rootfs as "/": symlinks and ".." cannot leave it. */
static int open_in_root(struct child *c, const char *path, int flags)
{
    struct open_how how;
    long fd;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    fd = S4(SYS_openat2, c->rootfd, path, &how, sizeof how);
    if (fd != -ENOSYS)
        return (int)fd;
    /* Kernels before 5.6: walk with O_NOFOLLOW, refusing symlinks outright. */
    {
        char buf[4096];
        int dir, next;
        char *p, *comp;
        scopy(buf, sizeof buf, path);
        dir = (int)S3(SYS_fcntl, c->rootfd, F_DUPFD_CLOEXEC, 3);
        if (dir < 0)
            return dir;
        p = buf;
        for (;;) {
            while (*p == '/')
                p++;
            if (!*p)
                break;
            comp = p;
            while (*p && *p != '/')
                p++;
            if (*p)
                *p++ = '\0';
            if (comp[0] == '.' && comp[1] == '.' && comp[2] == '\0') {
                S1(SYS_close, dir);
                return -EXDEV;
            }
            next = (int)S4(SYS_openat, dir, comp,
                           (*p ? O_PATH | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC, 0);
            S1(SYS_close, dir);
            if (next < 0)
                return next;
            dir = next;
        }
        return dir;
    }
}

/* Create `path` (and the missing directories above it) inside the rootfs,
 * the last one as an empty file when `as_file`; the O_PATH fd of `path`.
 * Bottom-up: the deepest ancestor that exists is found by walking up from
 * `path` (the usual missing mountpoint has a parent: one lookup), then each
 * missing one is made in its parent's fd and opened from there, O_NOFOLLOW.
 * Every lookup is resolved in the root, so a symlink planted in the rootfs
 * can at worst redirect the creation to another place inside it; one that
 * appears where we create something (a dangling symlink, a race) is refused. */
static int make_in_root(struct child *c, const char *path, int as_file)
{
    char buf[4096];
    size_t n = slen(path), end;
    int pfd, up = 0;

    if (n >= sizeof buf)
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    /* Up: `end` is where the prefix that exists ends (0: the root). */
    end = n;
    for (;;) {
        while (end > 0 && buf[end - 1] != '/')
            end--; /* to the start of the last component of the prefix */
        while (end > 0 && buf[end - 1] == '/')
            end--; /* and the slashes before it */
        if (end == 0) {
            pfd = (int)S3(SYS_fcntl, c->rootfd, F_DUPFD_CLOEXEC, 3);
            break;
        }
        buf[end] = '\0';
        pfd = open_in_root(c, buf, O_PATH | O_DIRECTORY);
        buf[end] = '/';
        if (pfd != -ENOENT)
            break;
    }
    if (pfd < 0)
        return pfd;
    /* Down: make each missing component in its parent.  After a "..", what
     * follows may exist (/a/../etc): look each one up first. */
    while (end < n) {
        size_t start = end, len;
        char name[256];
        int last, r, fd, dotdot;
        while (start < n && buf[start] == '/')
            start++;
        end = start;
        while (end < n && buf[end] != '/')
            end++;
        len = end - start;
        last = (end == n);
        if (len == 0)
            break;
        if (len >= sizeof name) {
            S1(SYS_close, pfd);
            return -ENAMETOOLONG;
        }
        memcpy(name, buf + start, len);
        name[len] = '\0';
        if (len == 1 && name[0] == '.')
            continue; /* (the directory itself) */
        dotdot = len == 2 && name[0] == '.' && name[1] == '.';
        if (up || dotdot) {
            /* The prefix so far, resolved in the root (which ".." never
             * leaves), as every lookup here is: up, or what may exist. */
            char saved = buf[end];
            buf[end] = '\0';
            fd = open_in_root(c, buf, O_PATH | ((last && as_file) ? 0 : O_DIRECTORY));
            buf[end] = saved;
            if (fd != -ENOENT || dotdot) {
                S1(SYS_close, pfd);
                if (fd < 0)
                    return fd;
                pfd = fd;
                up = 1;
                continue;
            }
            /* (missing after a "..": made in its parent, below) */
        }
        if (last && as_file) {
            r = (int)S4(SYS_openat, pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (r >= 0)
                S1(SYS_close, r);
        } else {
            r = (int)S3(SYS_mkdirat, pfd, name, 0755);
        }
        if (r == 0 || r > 0)
            fd = (int)S4(SYS_openat, pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | ((last && as_file) ? 0 : O_DIRECTORY), 0);
        else
            fd = r == -EEXIST ? -ELOOP : r; /* (a dangling symlink, or a race) */
        S1(SYS_close, pfd);
        if (fd < 0)
            return fd;
        pfd = fd;
    }
    return pfd;
}

static int mkdirs_in_root(struct child *c, const char *path, int as_file)
{
    int fd = make_in_root(c, path, as_file);
    if (fd < 0)
        return fd;
    S1(SYS_close, fd);
    return 0;
}

/* Apply MOUNT_ATTR_* bits (read-only, nosuid, nodev, noexec, atime) to the
 * mount `fd` is on; mount_setattr only sets what it is asked to. */
static int set_attrs(int fd, uint64_t attrs, int recursive)
{
    struct pc_mount_attr attr;
    long r;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attrs;
    if (attrs & 0x70)
        attr.attr_clr = 0x70; /* MOUNT_ATTR__ATIME: the atime bits are one field */
    r = S5(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
    if (r != -ENOSYS)
        return (int)r;
    {
        /* Before 5.12: remount, keeping the flags a user namespace locks. */
        char p[32];
        struct statfs st;
        unsigned long flags = 0;
        fd_path(p, fd);
        if (S2(SYS_statfs, p, &st) == 0)
            flags = st.f_flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
        if (attrs & 0x01) flags |= MS_RDONLY;
        if (attrs & 0x02) flags |= MS_NOSUID;
        if (attrs & 0x04) flags |= MS_NODEV;
        if (attrs & 0x08) flags |= MS_NOEXEC;
        if (attrs & 0x10) flags |= MS_NOATIME;
        if (attrs & 0x80) flags |= MS_NODIRATIME;
        return (int)S5(SYS_mount, 0, p, 0, MS_BIND | MS_REMOUNT | flags, 0);
    }
}

/* ---- plan operations ---------------------------------------------------- */

static int child_main(void *arg);

/* The mount target, resolved in the root; made (a directory, or an empty
 * file with PC_M_MKFILE) where it is missing and PC_M_MKDIR/MKFILE asks. */
static int open_target(struct child *c, const char *tgt, long mflags)
{
    int fd = open_in_root(c, tgt, O_PATH);
    if (fd == -ENOENT && (mflags & (PC_M_MKDIR | PC_M_MKFILE)))
        fd = make_in_root(c, tgt, (mflags & PC_M_MKFILE) != 0);
    return fd;
}

static int op_mount(struct child *c, const struct pc_op *op, const char **what)
{
    const char *src = str(c, op, 0), *tgt = str(c, op, 1);
    const char *fstype = str(c, op, 2), *data = str(c, op, 3);
    unsigned long flags = (unsigned long)op->v[0];
    long mflags = op->v[1];
    char p[32];
    int fd, r;

    *what = tgt;
    if (mflags & PC_M_HOST) {
        r = (int)S5(SYS_mount, src, tgt, fstype, flags, data);
        if (r < 0 && (mflags & PC_M_OPTIONAL))
            return 0;
        if (r == 0 && op->v[2])
            r = (int)S5(SYS_mount, 0, tgt, 0, op->v[2], 0);
        return r;
    }
    fd = open_target(c, tgt, mflags);
    if (fd < 0)
        return fd;
    fd_path(p, fd);
    r = (int)S5(SYS_mount, src, p, fstype, flags, data);
    S1(SYS_close, fd);
    if (r < 0) {
        if ((mflags & PC_M_OPTIONAL) && (r == -ENOENT || r == -ENODEV || r == -EPERM || r == -EINVAL))
            return 0;
        if (r == -ENOENT && src)
            *what = src;
        return r;
    }
    if (!op->v[3] && !op->v[2])
        return 0;
    /* Reopen: the new mount now sits on top of the old path. */
    fd = open_in_root(c, tgt, O_PATH);
    if (fd < 0)
        return fd;
    r = 0;
    if (op->v[3])
        r = set_attrs(fd, (uint64_t)op->v[3], (mflags & PC_M_RECURSIVE) != 0);
    if (r == 0 && op->v[2]) {
        fd_path(p, fd);
        r = (int)S5(SYS_mount, 0, p, 0, op->v[2], 0);
    }
    S1(SYS_close, fd);
    return r;
}

/* Attach an idmapped tree the parent made (pc_idmapped_tree) at the target,
 * resolved in the root. */
static int op_idmount(struct child *c, const struct pc_op *op, const char **what)
{
    const char *tgt = str(c, op, 1);
    long mflags = op->v[1];
    char p[32];
    int fd, r;

    *what = tgt;
    fd = open_target(c, tgt, mflags);
    if (fd < 0)
        return fd;
    /* onto the fd itself: move_mount does not follow a /proc/self/fd link */
    r = (int)S5(SYS_move_mount, (int)op->v[0], "", fd, "", PC_MOVE_MOUNT_F_EMPTY_PATH | PC_MOVE_MOUNT_T_EMPTY_PATH);
    S1(SYS_close, fd);
    S1(SYS_close, (int)op->v[0]);
    if (r == 0 && op->v[2]) {
        fd = open_in_root(c, tgt, O_PATH);
        if (fd < 0)
            return fd;
        fd_path(p, fd);
        r = (int)S5(SYS_mount, 0, p, 0, op->v[2], 0);
        S1(SYS_close, fd);
    }
    return r;
}

/* The parent of `path` (resolved in the root) and its last component.  Runs
 * of MKNOD/SYMLINK ops in one directory (/dev) resolve it once; a mount
 * between two of them drops the cache, since it may cover the directory. */
static int parent_dir(struct child *c, const char *path, const char **name)
{
    const char *n = path + slen(path);
    size_t len;
    char dir[256];
    while (n > path && n[-1] != '/')
        n--;
    *name = n;
    len = (size_t)(n - path);
    if (len >= sizeof dir)
        return -ENAMETOOLONG;
    memcpy(dir, path, len);
    dir[len] = '\0';
    if (!len)
        memcpy(dir, "/", 2);
    if (c->dir_fd >= 0) {
        size_t i = 0;
        while (dir[i] && dir[i] == c->dir_path[i])
            i++;
        if (dir[i] == c->dir_path[i])
            return c->dir_fd;
        S1(SYS_close, c->dir_fd);
        c->dir_fd = -1;
    }
    c->dir_fd = high_fd(c, open_in_root(c, dir, O_PATH | O_DIRECTORY));
    if (c->dir_fd >= 0)
        scopy(c->dir_path, sizeof c->dir_path, dir);
    return c->dir_fd;
}

static void drop_dir_cache(struct child *c)
{
    if (c->dir_fd >= 0)
        S1(SYS_close, c->dir_fd);
    c->dir_fd = -1;
}

static int op_mknod(struct child *c, const struct pc_op *op)
{
    const char *hostdev = str(c, op, 0), *name;
    int pfd = parent_dir(c, str(c, op, 1), &name), r;
    if (pfd == -ENOENT) {
        /* a nested node (/dev/net/tun): make its directories, in the root */
        char dir[4096];
        size_t len = (size_t)(name - str(c, op, 1));
        if (len > 1)
            len--; /* no trailing '/' */
        if (len >= sizeof dir)
            return -ENAMETOOLONG;
        memcpy(dir, str(c, op, 1), len);
        dir[len] = '\0';
        if ((r = mkdirs_in_root(c, dir, 0)) < 0)
            return r;
        drop_dir_cache(c);
        pfd = parent_dir(c, str(c, op, 1), &name);
    }
    if (pfd < 0)
        return pfd;
    /* Exact modes: the child runs with umask 0 until PC_OP_UMASK.  A
     * directory (mknod makes none) is a mountpoint in /dev, made in the same
     * run of /dev steps on one dir fd. */
    if (S_ISDIR((mode_t)op->v[0]))
        r = (int)S3(SYS_mkdirat, pfd, name, op->v[0] & 07777);
    else
        r = (int)S4(SYS_mknodat, pfd, name, op->v[0], op->v[1]);
    if (r == 0 && (op->v[2] || op->v[3]))
        r = (int)S5(SYS_fchownat, pfd, name, op->v[2], op->v[3], AT_SYMLINK_NOFOLLOW);
    if (r == -EPERM && hostdev) {
        /* In a user namespace mknod is refused: bind the host's node. */
        struct pc_op bind;
        const char *what;
        memset(&bind, 0, sizeof bind);
        bind.kind = PC_OP_MOUNT;
        bind.s[0] = op->s[0];
        bind.s[1] = op->s[1];
        bind.s[2] = bind.s[3] = PC_NONE;
        bind.v[0] = MS_BIND;
        bind.v[1] = PC_M_MKFILE;
        return op_mount(c, &bind, &what);
    }
    if (r == -EEXIST) {
        /* The very node there already (a bundle's /dev that holds it) is
         * fine; anything else at that path is not what was asked for. */
        struct stat st;
        if (S4(SYS_newfstatat, pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            (st.st_mode & S_IFMT) == ((unsigned)op->v[0] & S_IFMT) && st.st_rdev == (dev_t)op->v[1])
            return 0;
    }
    return r;
}

static int op_symlink(struct child *c, const struct pc_op *op)
{
    const char *name;
    int pfd = parent_dir(c, str(c, op, 1), &name), r;
    if (pfd < 0)
        return pfd;
    r = (int)S3(SYS_symlinkat, str(c, op, 0), pfd, name);
    return r == -EEXIST ? 0 : r;
}

/* After the switch of root: cwd "/" and the root fd on the new root. */
static int enter_new_root(struct child *c)
{
    int r;
    if ((r = (int)S1(SYS_chdir, "/")) < 0)
        return r;
    S1(SYS_close, c->rootfd);
    c->rootfd = high_fd(c, (int)S4(SYS_openat, AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
    return c->rootfd < 0 ? c->rootfd : 0;
}

/* runc --no-pivot: where pivot_root cannot work (the root is a ramfs),
 * move the rootfs mount onto "/" and chroot into it.  The old root stays
 * underneath, out of reach but for a chroot escape (hence the HIDE steps
 * before, which detach the host's procfs and sysfs). */
static int op_move_root(struct child *c)
{
    int r;
    if ((r = (int)S1(SYS_fchdir, c->rootfd)) < 0)
        return r;
    if ((r = (int)S5(SYS_mount, ".", "/", 0, MS_MOVE, 0)) < 0)
        return r;
    if ((r = (int)S1(SYS_chroot, ".")) < 0)
        return r;
    return enter_new_root(c);
}

static int op_hide(const char *path)
{
    long r = S5(SYS_mount, 0, path, 0, MS_SLAVE | MS_REC, 0);
    if (r == -EINVAL)
        return 0; /* no longer a mount point: went with a parent detached before */
    if (r < 0)
        return (int)r;
    r = S2(SYS_umount2, path, MNT_DETACH);
    if (r == -EINVAL || r == -EPERM) /* locked (a user namespace's): cover it instead */
        r = S5(SYS_mount, "tmpfs", path, "tmpfs", 0, 0);
    return (int)r;
}

#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_DESCRIBE 6
#define KEYCTL_SETPERM 5
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif

/* A session keyring of the container's own, as runc joins "_ses.<id>":
 * the host's session keyring is not inherited.  ENOSYS (no keyrings) is
 * not an error, as with runc. */
static int op_keyring(struct child *c, const struct pc_op *op)
{
    char desc[256];
    long id = S2(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, str(c, op, 0)), n;
    unsigned long perm = 0;
    int field = 0;
    if (id == -ENOSYS)
        return 0;
    if (id < 0 || op->v[0] == 0)
        return id < 0 ? (int)id : 0;
    /* "type;uid;gid;perm;description": perm is hex */
    n = S4(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc - 1);
    if (n < 0)
        return (int)n;
    desc[n < (long)sizeof desc - 1 ? n : (long)sizeof desc - 1] = 0;
    for (char *p = desc; *p && field <= 3; p++) {
        if (*p == ';') {
            field++;
            continue;
        }
        if (field == 3) {
            int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
            if (d < 0)
                return -EINVAL;
            perm = perm * 16 + (unsigned long)d;
        }
    }
    return (int)S3(SYS_keyctl, KEYCTL_SETPERM, id, perm | (unsigned long)op->v[0]);
}

static int op_pivot(struct child *c)
{
    int r;
    if ((r = (int)S1(SYS_fchdir, c->rootfd)) < 0)
        return r;
    if ((r = (int)S2(SYS_pivot_root, ".", ".")) < 0)
        return r;
    /* The old root is stacked under "/" now: keep its unmount from
     * propagating to the host, then detach it. */
    if ((r = (int)S5(SYS_mount, 0, ".", 0, MS_SLAVE | MS_REC, 0)) < 0)
        return r;
    if ((r = (int)S2(SYS_umount2, ".", MNT_DETACH)) < 0)
        return r;
    return enter_new_root(c);
}

static int op_mask(struct child *c, const struct pc_op *op)
{
    struct stat st;
    char p[32], src[32];
    const char *path = str(c, op, 1);
    int fd = open_in_root(c, path, O_PATH | O_NOFOLLOW), r;
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return fd;
    fd_path(p, fd);
    r = (int)S5(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH, 0);
    if (r == 0) {
        if (!S_ISDIR(st.st_mode)) {
            r = (int)S5(SYS_mount, "/dev/null", p, 0, MS_BIND, 0);
        } else if (c->mask_fd >= 0) {
            /* One empty read-only tmpfs serves every masked directory:
             * a bind is much cheaper than a new superblock. */
            fd_path(src, c->mask_fd);
            r = (int)S5(SYS_mount, src, p, 0, MS_BIND, 0);
        } else {
            r = (int)S5(SYS_mount, "tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k,mode=555");
            if (r == 0)
                c->mask_fd = high_fd(c, open_in_root(c, path, O_PATH | O_DIRECTORY));
        }
    }
    S1(SYS_close, fd);
    return r;
}

static int op_readonly(struct child *c, const struct pc_op *op)
{
    const char *path = str(c, op, 1);
    char p[32];
    int fd = open_in_root(c, path, O_PATH), r, tree;
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return fd;
    /* The recursive bind of the path onto itself is made read-only before
     * it is attached (open_tree, mount_setattr, move_mount): no second
     * lookup of the path, none through /proc/self/fd.  Kernels without
     * mount_setattr (before 5.12): bind, then set it on a new lookup. */
    tree = (int)S3(SYS_open_tree, fd, "", PC_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    r = tree;
    if (tree >= 0) {
        struct pc_mount_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.attr_set = MOUNT_ATTR_RDONLY;
        r = (int)S5(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
        if (r == 0)
            r = (int)S5(SYS_move_mount, tree, "", fd, "", PC_MOVE_MOUNT_F_EMPTY_PATH | PC_MOVE_MOUNT_T_EMPTY_PATH);
        S1(SYS_close, tree);
    }
    /* Where these calls are missing or refused (a seccomp profile, an LSM
     * that allows mount(2) but not them), the bind and remount as before. */
    if (r != -ENOSYS && r != -EPERM && r != -EACCES) {
        S1(SYS_close, fd);
        return r;
    }
    fd_path(p, fd);
    r = (int)S5(SYS_mount, p, p, 0, MS_BIND | MS_REC, 0);
    S1(SYS_close, fd);
    if (r < 0)
        return r;
    fd = open_in_root(c, path, O_PATH);
    if (fd < 0)
        return fd;
    r = set_attrs(fd, MOUNT_ATTR_RDONLY, 1);
    S1(SYS_close, fd);
    return r;
}

static int op_stdio(struct child *c, const struct pc_op *op)
{
    const int32_t *pairs = (const int32_t *)(const void *)str(c, op, 0);
    int tmp[64];
    int32_t i, n = (int32_t)op->v[0], base = 3;
    if (n > 64)
        return -E2BIG;
    for (i = 0; i < 2 * n; i++)
        if (pairs[i] >= base)
            base = pairs[i] + 1;
    /* Move every source out of the way first, so sources and targets may overlap. */
    for (i = 0; i < n; i++) {
        tmp[i] = (int)S3(SYS_fcntl, pairs[2 * i], F_DUPFD_CLOEXEC, base);
        if (tmp[i] < 0)
            return tmp[i];
    }
    for (i = 0; i < n; i++) {
        int r = (int)S3(SYS_dup3, tmp[i], pairs[2 * i + 1], 0);
        S1(SYS_close, tmp[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int op_pty(struct child *c)
{
    int master, slave, zero = 0, i, r;
    struct pc_msg m;
    struct msghdr mh;
    struct iovec iov;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cm;
    struct cmsghdr *h;

    master = (int)S3(SYS_openat, AT_FDCWD, "/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return master;
    if ((r = (int)S3(SYS_ioctl, master, TIOCSPTLCK, &zero)) < 0)
        return r;
    slave = (int)S3(SYS_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0)
        return slave;

    memset(&m, 0, sizeof m);
    m.type = PC_MSG_PTY;
    memset(&mh, 0, sizeof mh);
    memset(&cm, 0, sizeof cm);
    iov.iov_base = &m;
    iov.iov_len = sizeof m;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cm.buf;
    mh.msg_controllen = sizeof cm.buf;
    h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &master, sizeof(int));
    if ((r = (int)S3(SYS_sendmsg, c->sync_fd, &mh, MSG_NOSIGNAL)) < 0)
        return r;
    S1(SYS_close, master);

    S0(SYS_setsid);
    if ((r = (int)S3(SYS_ioctl, slave, TIOCSCTTY, 0)) < 0)
        return r;
    for (i = 0; i < 3; i++)
        if ((r = (int)S3(SYS_dup3, slave, i, 0)) < 0)
            return r;
    if (slave > 2)
        S1(SYS_close, slave);
    return 0;
}

static int loopback_up(void)
{
    struct ifreq ifr;
    int r, fd = (int)S3(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    r = (int)S3(SYS_ioctl, fd, SIOCGIFFLAGS, &ifr);
    if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        r = (int)S3(SYS_ioctl, fd, SIOCSIFFLAGS, &ifr);
    }
    S1(SYS_close, fd);
    return r;
}

static int is_exec_file(const char *path)
{
    struct stat st;
    int r = (int)S4(SYS_newfstatat, AT_FDCWD, path, &st, 0);
    if (r < 0)
        return r;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    return (st.st_mode & 0111) ? 0 : -EACCES;
}

static int op_resolve(struct child *c, const struct pc_op *op)
{
    const char *name = str(c, op, 0), *path = str(c, op, 1);
    size_t nlen = slen(name);
    int saw_eacces = 0;
    const char *p;
    if (nlen == 0)
        return -ENOENT;
    for (p = name; *p; p++)
        if (*p == '/') {
            scopy(c->exe, sizeof c->exe, name);
            return is_exec_file(c->exe);
        }
    p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (1) {
        const char *end = p;
        size_t dlen;
        int r;
        while (*end && *end != ':')
            end++;
        dlen = (size_t)(end - p);
        if (dlen + 1 + nlen + 1 <= sizeof c->exe) {
            if (dlen) {
                memcpy(c->exe, p, dlen);
                c->exe[dlen] = '/';
                memcpy(c->exe + dlen + 1, name, nlen + 1);
            } else {
                memcpy(c->exe, name, nlen + 1);
            }
            r = is_exec_file(c->exe);
            if (r == 0)
                return 0;
            if (r == -EACCES)
                saw_eacces = 1;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    c->exe[0] = '\0';
    return saw_eacces ? -EACCES : -ENOENT;
}

/* The kernel's struct sigaction (rt_sigaction), without libc. */
struct k_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

#if defined(__x86_64__)
void pc_sigreturn(void);
__asm__(".text\n.hidden pc_sigreturn\npc_sigreturn:\n    mov $15, %eax\n    syscall\n    hlt\n");
#define PC_RESTORER pc_sigreturn
#define PC_SA_RESTORER SA_RESTORER
#else
#define PC_RESTORER 0 /* arm64 returns through the vDSO's trampoline */
#define PC_SA_RESTORER 0
#endif

static void on_stop_signal(int sig)
{
    /* Exit at once: a flag could be set before the blocking open starts and
     * then never be looked at. */
    for (;;)
        S1(SYS_exit_group, 128 + sig);
}

static int op_wait_start(struct child *c)
{
    static const int stops[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM};
    struct k_sigaction sa, dfl;
    uint64_t catch = 0, all = ~(uint64_t)0;
    char p[32];
    char one = 0;
    int fd;
    size_t i;

    /* A created container is pid 1 of its namespace, which drops signals it
     * has no handler for: catch the stopping ones while we wait, so that
     * kill() of a created container stops it (exit 128 + signal).  This runs
     * in the helper (after PC_OP_HANDOFF): the handler is ours. */
    memset(&sa, 0, sizeof sa);
    memset(&dfl, 0, sizeof dfl);
    sa.handler = on_stop_signal; /* exits: the handler never returns */
    sa.flags = PC_SA_RESTORER;
    sa.restorer = PC_RESTORER;
    for (i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        S4(SYS_rt_sigaction, stops[i], &sa, 0, sizeof sa.mask);
        catch |= 1ULL << (stops[i] - 1);
    }
    S4(SYS_rt_sigprocmask, SIG_UNBLOCK, &catch, 0, sizeof catch);
    fd_path(p, c->fifo_fd);
    /* Blocks until `start` opens the fifo for reading. */
    do
        fd = (int)S3(SYS_openat, AT_FDCWD, p, O_WRONLY | O_CLOEXEC);
    while (fd == -EINTR);
    S4(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, sizeof all);
    for (i = 0; i < sizeof stops / sizeof stops[0]; i++)
        S4(SYS_rt_sigaction, stops[i], &dfl, 0, sizeof dfl.mask);
    fd = high_fd(c, fd);
    if (fd < 0)
        return fd;
    S1(SYS_close, c->fifo_fd);
    c->fifo_fd = -1;
    c->fifo_wr = fd;
    return S3(SYS_write, fd, &one, 1) == 1 ? 0 : -EPIPE;
}

static int op_exec(struct child *c, const struct pc_op *op)
{
    const char *a = str(c, op, 0), *e = str(c, op, 1);
    int64_t argc = op->v[0], envc = op->v[1], i;
    int initfd = (int)op->v[2];
    char **argv = c->ptrs, **envp;
    uint32_t k = 0;
    uint64_t empty = 0;
    long r;

    if ((uint64_t)(argc + envc + 9) > c->nptrs)
        return -E2BIG;
    char exit_fd[16];
    if (initfd >= 0) {
        argv[k++] = (char *)"pycontainer-init";
        if (op->v[3] > 0) {
            /* the init records the exit status through this fd (csrc/init.c) */
            int64_t n = op->v[3], d = 1;
            size_t j = 0;
            while (d * 10 <= n)
                d *= 10;
            for (; d; d /= 10)
                exit_fd[j++] = (char)('0' + (n / d) % 10);
            exit_fd[j] = '\0';
            argv[k++] = (char *)"--exit-fd";
            argv[k++] = exit_fd;
        }
        if (op->s[2] != PC_NONE) { /* the restart policy the init applies */
            argv[k++] = (char *)"--restart";
            argv[k++] = (char *)str(c, op, 2);
        }
        argv[k++] = c->exe;
    }
    for (i = 0; i < argc; i++) {
        argv[k++] = (char *)a;
        a += slen(a) + 1;
    }
    argv[k++] = 0;
    envp = argv + k;
    for (i = 0; i < envc; i++) {
        envp[i] = (char *)e;
        e += slen(e) + 1;
    }
    envp[envc] = 0;

    S2(SYS_prctl, PR_SET_PDEATHSIG, 0);
    S4(SYS_rt_sigprocmask, SIG_SETMASK, &empty, 0, sizeof empty);
    if (initfd >= 0)
        r = rsys(SYS_execveat, initfd, (long)"", (long)argv, (long)envp, AT_EMPTY_PATH, 0);
    else
        r = S3(SYS_execve, c->exe, argv, envp);
    {
        uint64_t all = ~(uint64_t)0;
        S4(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, sizeof all);
    }
    return (int)r;
}

/* What PC_OP_HANDOFF writes to its memfd: this header, the ops, the blob. */
struct pc_handoff {
    uint32_t magic;
    struct child child; /* its pointers are rebuilt by the helper */
};
#define PC_HANDOFF_MAGIC 0x70636831u /* "pch1" */

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        long r = S3(SYS_write, fd, p, n);
        if (r < 0)
            return (int)r;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The child's own fds, which travel through PC_OP_HANDOFF: they must survive
 * that exec (close-on-exec cleared), and not the final one (set again). */
static void set_own_cloexec(const struct child *c, int flag)
{
    int own[5] = {c->sync_fd, c->rootfd, c->fifo_fd, c->fifo_wr, c->mask_fd};
    int i;
    for (i = 0; i < 5; i++)
        if (own[i] >= 0)
            S3(SYS_fcntl, own[i], F_SETFD, flag);
}

/* Leave the parent's address space: write the rest of the plan to a memfd and
 * exec the static helper on it.  Until here the child shares the parent's
 * memory, so it must be done before the child becomes visible to anything in
 * the container (a joined pid namespace, exec'd processes of a created
 * container) and before it changes credentials (which would make the shared
 * memory, i.e. the parent, non-dumpable). */
static int op_handoff(struct child *c, const struct pc_op *op)
{
    struct pc_handoff h;
    char p[32];
    char *argv[4];
    char *envp[1] = {0};
    uint64_t empty = 0;
    int fd, r, i;

    fd = high_fd(c, (int)S2(SYS_memfd_create, "pycontainer-plan", MFD_CLOEXEC));
    if (fd < 0)
        return fd;
    drop_dir_cache(c);
    memset(&h, 0, sizeof h);
    h.magic = PC_HANDOFF_MAGIC;
    h.child = *c;
    h.child.pc = c->pc + 1;
    if ((r = write_all(fd, &h, sizeof h)) < 0 || (r = write_all(fd, c->ops, c->nops * sizeof *c->ops)) < 0 ||
        (r = write_all(fd, c->blob, c->blob_len)) < 0)
        return r;
    /* Everything the plan still uses must survive the exec: the fds of the
     * keep list (as given, or where they were moved up to) and our own. */
    for (i = 0; i < (int)c->nkeep; i++)
        S3(SYS_fcntl, c->keep[i], F_SETFD, 0);
    for (i = 0; i < (int)c->nops; i++) {
        const struct pc_op *o = &c->ops[i];
        if (o->kind == PC_OP_EXEC && o->v[2] >= 0)
            S3(SYS_fcntl, o->v[2], F_SETFD, 0);
        if (o->kind == PC_OP_SETNS && o->v[1] >= 0)
            S3(SYS_fcntl, o->v[1], F_SETFD, 0);
    }
    set_own_cloexec(c, 0);
    S3(SYS_fcntl, fd, F_SETFD, 0);
    fd_path(p, fd);
    argv[0] = (char *)"pycontainer-helper";
    argv[1] = (char *)"--plan";
    argv[2] = p + sizeof "/proc/self/fd/" - 1;
    argv[3] = 0;
    S4(SYS_rt_sigprocmask, SIG_SETMASK, &(uint64_t){~(uint64_t)0}, 0, sizeof empty);
    r = (int)rsys(SYS_execveat, (int)op->v[0], (long)"", (long)argv, (long)envp, AT_EMPTY_PATH, 0);
    return r;
}

/* Clone again so that a joined (or new) pid or time namespace applies.  It
 * runs only in the helper (after PC_OP_HANDOFF), whose memory is small and
 * its own, so a plain fork will do: the child returns 0 and carries on with
 * the plan; CLONE_PARENT makes it the runtime's child, and we leave. */
static int fork_child(struct child *c)
{
    struct pc_msg m;
    long pid;
    pid = S5(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return (int)pid;
    if (pid == 0) {
        /* fork cleared it: die with the runtime's thread, as before */
        S2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
        return 0;
    }
    memset(&m, 0, sizeof m);
    m.type = PC_MSG_PID;
    m.pid = pid;
    S4(SYS_sendto, c->sync_fd, &m, sizeof m, MSG_NOSIGNAL);
    child_exit(0);
}

/* Open "/proc/<rest>" for writing only inside a procfs: "/proc" itself must
 * be one (no symlink, no directory of the rootfs), and <rest> is resolved
 * beneath it without leaving its mount (procfs's own links, such as "self",
 * are fine; a rootfs cannot put others there). */
static int open_in_proc(const char *path)
{
    struct open_how how;
    struct statfs sf;
    long dir, fd;
    if (path[0] != '/' || path[1] != 'p' || path[2] != 'r' || path[3] != 'o' || path[4] != 'c' || path[5] != '/')
        return -EINVAL;
    dir = S4(SYS_openat, AT_FDCWD, "/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (dir < 0)
        return (int)dir;
    if (S2(SYS_fstatfs, dir, &sf) < 0 || sf.f_type != 0x9fa0 /* PROC_SUPER_MAGIC */) {
        S1(SYS_close, dir);
        return -EXDEV;
    }
    memset(&how, 0, sizeof how);
    how.flags = O_WRONLY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
    fd = S4(SYS_openat2, dir, path + 6, &how, sizeof how);
    S1(SYS_close, dir);
    return (int)fd;
}

/* capset(2) the three sets, then the ambient one (each of its caps must be
 * permitted and inheritable by now).  KEEPCAPS, set by PC_OP_BOUNDING for the
 * uid change, is cleared again. */
static int op_caps(const struct pc_op *op)
{
    struct {
        uint32_t version;
        int pid;
    } hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    struct {
        uint32_t effective, permitted, inheritable;
    } data[2];
    uint64_t e = (uint64_t)op->v[0], p = (uint64_t)op->v[1], i = (uint64_t)op->v[2], a = (uint64_t)op->v[3];
    long r;
    int cap;

    data[0].effective = (uint32_t)e;
    data[1].effective = (uint32_t)(e >> 32);
    data[0].permitted = (uint32_t)p;
    data[1].permitted = (uint32_t)(p >> 32);
    data[0].inheritable = (uint32_t)i;
    data[1].inheritable = (uint32_t)(i >> 32);
    S2(SYS_prctl, PR_SET_KEEPCAPS, 0);
    if ((r = S2(SYS_capset, &hdr, data)) < 0)
        return (int)r;
    r = S5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (r < 0 && !(r == -EINVAL && !a))
        return (int)r;
    for (cap = 0; cap < 64; cap++)
        if ((a & ((uint64_t)1 << cap)) && (r = S5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) < 0)
            return (int)r;
    return 0;
}

static int run_op(struct child *c, const struct pc_op *op, const char **what)
{
    *what = str(c, op, 0);
    switch (op->kind) {
    case PC_OP_SETNS: {
        int fd = (int)op->v[1], r;
        if (fd < 0)
            fd = (int)S3(SYS_openat, AT_FDCWD, str(c, op, 0), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fd;
        r = (int)S2(SYS_setns, fd, op->v[0]);
        if (r == -EINVAL && op->v[0] == CLONE_NEWUSER) {
            /* Joining the user namespace we are in is refused: it is a no-op. */
            struct stat a, b;
            if (S4(SYS_newfstatat, fd, "", &a, AT_EMPTY_PATH) == 0 &&
                S4(SYS_newfstatat, AT_FDCWD, "/proc/self/ns/user", &b, 0) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino)
                r = 0;
        }
        if (op->v[1] < 0)
            S1(SYS_close, fd);
        return r;
    }
    case PC_OP_FORK:
        return fork_child(c);
    case PC_OP_UNSHARE:
        return (int)S1(SYS_unshare, op->v[0]);
    case PC_OP_PROPAGATION:
        *what = "/";
        return (int)S5(SYS_mount, 0, "/", 0, op->v[0], 0);
    case PC_OP_ROOTFS: {
        const char *root = str(c, op, 0);
        int r = (int)S5(SYS_mount, root, root, 0, MS_BIND | MS_REC, 0);
        if (r < 0)
            return r;
        c->rootfd = high_fd(c, (int)S4(SYS_openat, AT_FDCWD, root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
        return c->rootfd < 0 ? c->rootfd : 0;
    }
    case PC_OP_MOUNT:
        drop_dir_cache(c);
        return op_mount(c, op, what);
    case PC_OP_MKNOD:
        *what = str(c, op, 1);
        return op_mknod(c, op);
    case PC_OP_SYMLINK:
        *what = str(c, op, 1);
        return op_symlink(c, op);
    case PC_OP_PIVOT:
        *what = "/";
        drop_dir_cache(c);
        return op->v[0] ? op_move_root(c) : op_pivot(c);
    case PC_OP_IDMOUNT:
        drop_dir_cache(c);
        return op_idmount(c, op, what);
    case PC_OP_HIDE:
        *what = str(c, op, 0);
        return op_hide(str(c, op, 0));
    case PC_OP_KEYRING:
        *what = str(c, op, 0);
        return op_keyring(c, op);
    case PC_OP_MASK:
        *what = str(c, op, 1);
        return op_mask(c, op);
    case PC_OP_READONLY:
        *what = str(c, op, 1);
        return op_readonly(c, op);
    case PC_OP_REMOUNT_RO: {
        int r;
        *what = "/";
        r = set_attrs(c->rootfd, MOUNT_ATTR_RDONLY, 0);
        return r;
    }
    case PC_OP_HOSTNAME:
        return (int)S2(SYS_sethostname, str(c, op, 0), op->len[0]);
    case PC_OP_DOMAINNAME:
        return (int)S2(SYS_setdomainname, str(c, op, 0), op->len[0]);
    case PC_OP_OPEN_FIFO:
        c->fifo_fd = high_fd(c, (int)S4(SYS_openat, AT_FDCWD, str(c, op, 0), O_PATH | O_CLOEXEC, 0));
        return c->fifo_fd < 0 ? c->fifo_fd : 0;
    case PC_OP_STDIO:
        *what = "stdio";
        return op_stdio(c, op);
    case PC_OP_PTY:
        *what = "/dev/ptmx";
        return op_pty(c);
    case PC_OP_SETSID: {
        long r = S0(SYS_setsid);
        return r < 0 && r != -EPERM ? (int)r : 0;
    }
    case PC_OP_USER: {
        int r = (int)S2(SYS_setgroups, op->v[2], str(c, op, 0));
        *what = "user";
        if (r < 0 && !(r == -EPERM && op->v[2] == 0))
            return r;
        if ((r = (int)S3(SYS_setresgid, op->v[1], op->v[1], op->v[1])) < 0)
            return r;
        return (int)S3(SYS_setresuid, op->v[0], op->v[0], op->v[0]);
    }
    case PC_OP_UMASK:
        S1(SYS_umask, op->v[0]);
        return 0;
    case PC_OP_CHDIR: {
        int r = (int)S1(SYS_chdir, str(c, op, 0));
        if (r == -ENOENT && op->v[0]) {
            r = mkdirs_in_root(c, str(c, op, 0), 0);
            if (r == 0)
                r = (int)S1(SYS_chdir, str(c, op, 0));
        }
        return r;
    }
    case PC_OP_RESOLVE:
        return op_resolve(c, op);
    case PC_OP_READY: {
        struct pc_msg m;
        memset(&m, 0, sizeof m);
        m.type = PC_MSG_READY;
        S2(SYS_prctl, PR_SET_PDEATHSIG, 0);
        if (S4(SYS_sendto, c->sync_fd, &m, sizeof m, MSG_NOSIGNAL) < 0)
            return -EPIPE;
        /* v0 = 1 (run): the parent goes on reading and sends GO for the exec
         * (PC_OP_WAIT_GO): an error is reported at once, as before READY */
        c->ready = op->v[0] ? 0 : 1;
        return 0;
    }
    case PC_OP_WAIT_GO: {
        /* run: the parent has renamed the state into place (the id is ours)
         * when GO comes.  read(2), not recvfrom: the seccomp filter is in
         * already, and a profile cannot refuse read and run anything. */
        struct pc_msg m;
        long n;
        *what = "sync";
        do
            n = S3(SYS_read, c->sync_fd, &m, sizeof m);
        while (n == -EINTR);
        if (n < 0)
            return (int)n;
        if (n != (long)sizeof m || m.type != PC_MSG_GO)
            child_exit(1); /* EOF: the parent lost the id (or died): no exec */
        return 0;
    }
    case PC_OP_WAIT_START:
        *what = "exec.fifo";
        return op_wait_start(c);
    case PC_OP_CLOSE_FDS: {
        long r = S3(SYS_close_range, op->v[0], ~0U, CLOSE_RANGE_CLOEXEC);
        if (r == -ENOSYS || r == -EINVAL) {
            struct rlimit rl;
            long fd;
            rl.rlim_cur = 1024;
            S2(SYS_getrlimit, RLIMIT_NOFILE, &rl);
            for (fd = op->v[0]; fd < (long)rl.rlim_cur && fd < 65536; fd++)
                S3(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
            r = 0;
        }
        return (int)r;
    }
    case PC_OP_EXEC:
        *what = c->exe;
        return op_exec(c, op);
    case PC_OP_LOOPBACK:
        *what = "lo";
        return loopback_up();
    case PC_OP_HANDOFF:
        *what = "pycontainer-helper";
        return op_handoff(c, op);
    case PC_OP_SYNC: {
        struct pc_msg m;
        long n;
        memset(&m, 0, sizeof m);
        m.type = (int32_t)op->v[0];
        *what = "sync";
        if (S4(SYS_sendto, c->sync_fd, &m, sizeof m, MSG_NOSIGNAL) < 0)
            return -EPIPE;
        n = S4(SYS_recvfrom, c->sync_fd, &m, sizeof m, 0);
        if (n != (long)sizeof m || m.type != PC_MSG_GO)
            child_exit(1); /* the parent gave up on us */
        return 0;
    }
    case PC_OP_BOUNDING: {
        int cap;
        *what = "bounding set";
        for (cap = 0; cap <= (int)op->v[1] && cap < 64; cap++) {
            long r;
            if ((uint64_t)op->v[0] & ((uint64_t)1 << cap))
                continue;
            r = S2(SYS_prctl, PR_CAPBSET_DROP, cap);
            if (r < 0 && r != -EINVAL)
                return (int)r;
        }
        return (int)S2(SYS_prctl, PR_SET_KEEPCAPS, 1);
    }
    case PC_OP_CAPS:
        *what = "capabilities";
        return op_caps(op);
    case PC_OP_NNP:
        *what = "no_new_privs";
        return (int)S5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case PC_OP_RLIMIT: {
        struct rlimit rl;
        rl.rlim_cur = (rlim_t)op->v[1];
        rl.rlim_max = (rlim_t)op->v[2];
        return (int)S4(SYS_prlimit64, 0, op->v[0], &rl, 0);
    }
    case PC_OP_WRITE: {
        long r, fd;
        if (op->v[0] & PC_W_PROC)
            fd = open_in_proc(str(c, op, 0));
        else
            fd = S4(SYS_openat, AT_FDCWD, str(c, op, 0), O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0);
        if (fd < 0)
            return (int)fd;
        r = S3(SYS_write, fd, str(c, op, 1), op->len[1]);
        S1(SYS_close, fd);
        return r == (long)op->len[1] ? 0 : r < 0 ? (int)r : -EIO;
    }
    case PC_OP_SECCOMP: {
        struct {
            unsigned short len;
            const void *filter;
        } prog;
        *what = "seccomp";
        prog.len = (unsigned short)op->v[0];
        prog.filter = str(c, op, 0);
        return (int)S3(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, op->v[1], &prog);
    }
    case PC_OP_PERSONALITY:
        *what = "personality";
        return (int)(S1(SYS_personality, op->v[0]) < 0 ? -EINVAL : 0);
    case PC_OP_CGROUP_JOIN: {
        long r, fd;
        *what = str(c, op, 0);
        fd = S4(SYS_openat, AT_FDCWD, str(c, op, 0), O_WRONLY | O_CLOEXEC, 0);
        if (fd < 0)
            return (int)fd;
        r = S3(SYS_write, fd, "0", 1);
        S1(SYS_close, fd);
        return r == 1 ? 0 : r < 0 ? (int)r : -EIO;
    }
    }
    return -EINVAL;
}

static void close_range_fallback(long lo, long hi)
{
    struct rlimit rl;
    long fd;
    rl.rlim_cur = 1024;
    S2(SYS_getrlimit, RLIMIT_NOFILE, &rl);
    for (fd = lo; fd <= hi && fd < (long)rl.rlim_cur && fd < 65536; fd++)
        S1(SYS_close, fd);
}

/* Close every fd >= 3 the plan does not use.  The fd table was copied from
 * a parent whose other threads hold locks, pipes and sockets of their own:
 * none of them may stay open here while the container waits for `start`. */
static void close_others(struct child *c)
{
    long lo = 3;
    uint32_t i;
    for (i = 0; i <= c->nkeep; i++) {
        long hi = i < c->nkeep ? c->keep[i] - 1 : (long)~0U;
        if (i < c->nkeep && c->keep[i] < 3)
            continue;
        if (hi >= lo && S3(SYS_close_range, lo, hi, 0) == -ENOSYS)
            close_range_fallback(lo, hi);
        if (i < c->nkeep)
            lo = c->keep[i] + 1;
    }
}

static __attribute__((noreturn)) void run_plan(struct child *c)
{
    for (; c->pc < c->nops; c->pc++) {
        const struct pc_op *op = &c->ops[c->pc];
        const char *what = 0;
        int r = run_op(c, op, &what);
        if (r < 0 && c->ready && c->fifo_wr < 0 && op->kind != PC_OP_WAIT_START && !c->late_err) {
            /* Between READY and `start` nobody listens: hold the error until
             * WAIT_START has the fifo open (work done here overlaps with the
             * parent's end of create and its start). */
            c->late_err = -r;
            c->late_op = op->kind;
            c->late_pc = c->pc;
            scopy(c->late_text, sizeof c->late_text, what ? what : "");
            continue;
        }
        if (r < 0)
            fail(c, op->kind, -r, what);
        if (op->kind == PC_OP_WAIT_START && c->late_err) {
            c->pc = c->late_pc;
            fail(c, c->late_op, c->late_err, c->late_text);
        }
    }
    child_exit(0);
}

static __attribute__((unused)) int child_main(void *arg)
{
    struct child *c = arg;
    int sig;
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } dfl;

    /* Rule 2: no handler of the parent's may run here. */
    memset(&dfl, 0, sizeof dfl);
    for (sig = 1; sig < 65; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            S4(SYS_rt_sigaction, sig, &dfl, 0, sizeof dfl.mask);
    S2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    S1(SYS_umask, 0);
    if (c->pc == 0) {
        uint32_t i;
        close_others(c);
        c->sync_fd = high_fd(c, c->sync_fd);
        /* fds used after STDIO may be dup'd over: move them up too (each
         * distinct fd once: the init and the helper are the same memfd). */
        int from[8], to[8], nmoved = 0, j;
        for (i = 0; i < c->nops; i++) {
            struct pc_op *o = (struct pc_op *)&c->ops[i];
            int64_t *slot = o->kind == PC_OP_EXEC ? &o->v[2] : o->kind == PC_OP_HANDOFF ? &o->v[0] : 0;
            if (!slot || *slot < 0)
                continue;
            for (j = 0; j < nmoved && from[j] != (int)*slot; j++)
                ;
            if (j == nmoved && nmoved < 8) {
                from[nmoved] = (int)*slot;
                to[nmoved++] = high_fd(c, (int)*slot);
            }
            if (j < nmoved)
                *slot = to[j];
        }
    }

    run_plan(c);
}

#ifndef PC_HELPER
/* ---- parent side --------------------------------------------------------- */

#define STACK_SIZE (128 * 1024)

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

#if defined(__x86_64__)
/* clone3 with a new stack: the child must not return through C frames, so
 * the trampoline calls fn(arg) on the new stack and exits with its value. */
long pc_clone3_tramp(struct clone_args *cl, size_t size, int (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl pc_clone3_tramp\n"
        ".hidden pc_clone3_tramp\n"
        ".type pc_clone3_tramp,@function\n"
        "pc_clone3_tramp:\n"
        "    mov %rdx, %r9\n"       /* fn: preserved across syscall */
        "    mov %rcx, %r8\n"       /* arg */
        "    mov $435, %eax\n"      /* SYS_clone3 */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r8, %rdi\n"
        "    call *%r9\n"
        "    mov %eax, %edi\n"
        "    mov $60, %eax\n"       /* SYS_exit */
        "    syscall\n"
        "    hlt\n"
        "1:  ret\n"
        ".size pc_clone3_tramp, .-pc_clone3_tramp\n");
#endif

/* Clone a child running child_main(c) on [stack, stack + stack_size), with
 * clone3 where the kernel has it, else glibc's clone.  Parent side only. */
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

int pc_can_clone_into_cgroup(void)
{
#if defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

static long raw_clone(uint64_t flags, int cgroup_fd, char *stack, size_t stack_size, struct child *c)
{
    long pid = -ENOSYS;
#if defined(__x86_64__)
    struct clone_args cl;
    memset(&cl, 0, sizeof cl);
    cl.flags = flags;
    cl.exit_signal = SIGCHLD;
    cl.stack = (uint64_t)(uintptr_t)stack;
    cl.stack_size = stack_size;
    if (cgroup_fd >= 0) {
        cl.flags |= CLONE_INTO_CGROUP;
        cl.cgroup = (uint64_t)cgroup_fd;
    }
    pid = pc_clone3_tramp(&cl, sizeof cl, child_main, c);
#endif
    if (pid == -ENOSYS || pid == -E2BIG) {
        if (flags & CLONE_NEWTIME)
            return -ENOSYS; /* only clone3 can take CLONE_NEWTIME */
        if (cgroup_fd >= 0)
            return -ENOSYS; /* nor CLONE_INTO_CGROUP */
        pid = clone(child_main, stack + stack_size, (int)(flags | SIGCHLD), c);
        if (pid < 0)
            pid = -errno;
    }
    return pid;
}

/* Python packs each op's string offsets relative to the op's own strings,
 * which follow each other in the blob in plan order (so an op's bytes do not
 * depend on its place in the plan, and Python encodes each distinct op once):
 * make them absolute, every string and its NUL inside the blob. */
static int relocate(struct pc_op *ops, uint32_t nops, const char *blob, uint32_t blob_len)
{
    uint64_t base = 0;
    uint32_t i;
    int k;

    for (i = 0; i < nops; i++) {
        uint64_t next = base;
        for (k = 0; k < 4; k++) {
            uint64_t at;
            if (ops[i].s[k] == PC_NONE)
                continue;
            at = base + ops[i].s[k];
            if (at + ops[i].len[k] >= blob_len || blob[at + ops[i].len[k]] != '\0')
                return -1;
            ops[i].s[k] = (uint32_t)at;
            if (at + ops[i].len[k] + 1 > next)
                next = at + ops[i].len[k] + 1;
        }
        base = next;
    }
    return 0;
}

int pc_spawn(const struct pc_spawn_args *a, struct pc_spawn_result *res)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t nptrs = 0, off, size;
    uint32_t i;
    char *arena;
    struct child *c;
    sigset_t all, old;
    long pid;

    memset(res, 0, sizeof *res);
    for (i = 0; i < a->nops; i++) {
        if (a->ops[i].kind == PC_OP_EXEC)
            nptrs += (size_t)(a->ops[i].v[0] + a->ops[i].v[1] + 9);
    }
    /* [guard][stack][child][ops][blob][ptrs][keep] */
    off = page + STACK_SIZE;
    size = off + sizeof(struct child) + 16 + a->nops * sizeof(struct pc_op) + a->blob_len + 16 + nptrs * sizeof(char *) +
           a->nkeep * sizeof(int) + 16;
    size = align_up(size, page);
    arena = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (arena == MAP_FAILED) {
        res->pid = -1;
        res->err = errno;
        return -1;
    }
    mprotect(arena, page, PROT_NONE);
    c = (struct child *)(void *)(arena + align_up(off, 16));
    memset(c, 0, sizeof *c);
    {
        char *p = (char *)(c + 1);
        struct pc_op *ops = (struct pc_op *)(void *)align_up((size_t)p, 16);
        memcpy(ops, a->ops, a->nops * sizeof *ops);
        if (relocate(ops, a->nops, a->blob, a->blob_len) < 0) {
            munmap(arena, size);
            res->pid = -1;
            res->err = EINVAL;
            return -1;
        }
        p = (char *)(ops + a->nops);
        memcpy(p, a->blob, a->blob_len);
        c->ops = ops;
        c->blob = p;
        c->blob_len = a->blob_len;
        p += a->blob_len;
        c->ptrs = (char **)(void *)align_up((size_t)p, 16);
        c->nptrs = (uint32_t)nptrs;
        p = (char *)(c->ptrs + nptrs);
        memcpy(p, a->keep_fds, a->nkeep * sizeof(int));
        c->keep = (const int *)(void *)p;
        c->nkeep = a->nkeep;
    }
    c->nops = a->nops;
    c->sync_fd = a->sync_fd;
    c->fd_base = a->fd_base > 3 ? a->fd_base : 3;
    c->rootfd = AT_FDCWD;
    c->fifo_fd = -1;
    c->fifo_wr = -1;
    c->mask_fd = -1;
    c->dir_fd = -1;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = raw_clone(a->clone_flags | CLONE_VM, a->cgroup_fd, arena + page, STACK_SIZE, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (pid < 0) {
        munmap(arena, size);
        res->pid = -1;
        res->err = (int)-pid;
        return -1;
    }
    res->pid = (int)pid;
    res->arena = arena;
    res->arena_size = size;
    return 0;
}

void pc_arena_release(void *arena, uint64_t size)
{
    if (arena)
        munmap(arena, (size_t)size);
}

/* ---- bpf(2) for cgroup v2 device programs ------------------------------- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(SYS_bpf, cmd, attr, sizeof *attr);
    return r < 0 ? -errno : r;
}

int pc_bpf_load_device_prog(const void *insns, uint32_t ninsns, char *log, uint32_t log_size)
{
    union bpf_attr a;
    long r;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = ninsns;
    a.license = (uint64_t)(uintptr_t) "Apache";
    r = sys_bpf(BPF_PROG_LOAD, &a);
    if ((r == -EACCES || r == -EINVAL) && log && log_size) {
        /* the verifier refused it: load again for its log */
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = log_size;
        a.log_level = 1;
        r = sys_bpf(BPF_PROG_LOAD, &a);
    }
    if (r >= 0)
        fcntl((int)r, F_SETFD, FD_CLOEXEC);
    return (int)r;
}

int pc_bpf_attach(int cgroup_fd, int prog_fd, uint32_t attach_type, uint32_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cgroup_fd;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = attach_type;
    a.attach_flags = flags;
    return (int)sys_bpf(BPF_PROG_ATTACH, &a);
}

int pc_bpf_detach(int cgroup_fd, int prog_fd, uint32_t attach_type)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cgroup_fd;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = attach_type;
    return (int)sys_bpf(BPF_PROG_DETACH, &a);
}

int pc_bpf_query(int cgroup_fd, uint32_t attach_type, uint32_t *prog_ids, uint32_t *count)
{
    union bpf_attr a;
    long r;
    memset(&a, 0, sizeof a);
    a.query.target_fd = (uint32_t)cgroup_fd;
    a.query.attach_type = attach_type;
    a.query.prog_ids = (uint64_t)(uintptr_t)prog_ids;
    a.query.prog_cnt = *count;
    r = sys_bpf(BPF_PROG_QUERY, &a);
    *count = r < 0 ? 0 : a.query.prog_cnt;
    return (int)r;
}

int pc_bpf_prog_get_fd_by_id(uint32_t id)
{
    union bpf_attr a;
    long r;
    memset(&a, 0, sizeof a);
    a.prog_id = id;
    r = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (r >= 0)
        fcntl((int)r, F_SETFD, FD_CLOEXEC);
    return (int)r;
}

int pc_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}

int pc_rename2(const char *from, const char *to, unsigned int flags)
{
    return syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags) < 0 ? -errno : 0;
}

int pc_new_netns(int back_fd)
{
    int fd, r;
    if (unshare(CLONE_NEWNET) < 0)
        return -errno;
    fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    r = fd < 0 ? -errno : loopback_up();
    if (setns(back_fd, CLONE_NEWNET) < 0) {
        r = -errno;
        if (fd >= 0)
            close(fd);
        return r;
    }
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    return fd;
}

#endif /* !PC_HELPER */

/* ---- the static helper's side of PC_OP_HANDOFF ----------------------------
 *
 * Built with -DPC_HELPER into a static, freestanding (-nostdlib) binary:
 * glibc's start-up alone would cost more than the whole exec.  Everything
 * above already uses raw system calls; the helper adds its entry point and
 * the few functions the compiler may call.
 */
#ifdef PC_HELPER

void *memcpy(void *d, const void *s, size_t n)
{
    char *dp = d;
    const char *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    char *dp = d;
    const char *sp = s;
    if (dp < sp)
        while (n--)
            *dp++ = *sp++;
    else
        while (n--)
            dp[n] = sp[n];
    return d;
}

void *memset(void *d, int v, size_t n)
{
    char *dp = d;
    while (n--)
        *dp++ = (char)v;
    return d;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

static void *helper_map(size_t len, int fd)
{
    long p = rsys(SYS_mmap, 0, (long)len, PROT_READ | PROT_WRITE,
                  fd >= 0 ? MAP_PRIVATE : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
    return (p < 0 && p > -4096) ? 0 : (void *)p;
}

__attribute__((noreturn, used)) void pc_helper_start(long *sp)
{
    static struct child c;
    char **argv = (char **)(sp + 1);
    struct pc_handoff *h;
    struct stat st;
    struct pc_msg m;
    char *map;
    size_t nptrs = 0;
    uint32_t i;
    int plan_fd = 0;
    const char *d;

#if defined(__x86_64__)
    if (sp[0] == 2 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 'x' && argv[1][3] == '3') {
        /* --x32-probe: exit 0 when this kernel runs x32 system calls.  A
         * process of its own: a seccomp filter without an x32 branch (ours,
         * a runtime nested in a container) kills the caller. */
        child_exit(S0(0x40000000L | SYS_getppid) >= 0 ? 0 : 1);
    }
#endif
    if (sp[0] != 3 || !argv[2])
        child_exit(126); /* not started by PC_OP_HANDOFF */
    for (d = argv[2]; *d >= '0' && *d <= '9'; d++)
        plan_fd = plan_fd * 10 + (*d - '0');
    if (S2(SYS_fstat, plan_fd, &st) < 0 || (size_t)st.st_size < sizeof *h)
        child_exit(126);
    map = helper_map((size_t)st.st_size, plan_fd);
    S1(SYS_close, plan_fd);
    if (!map)
        child_exit(126);
    h = (struct pc_handoff *)(void *)map;
    if (h->magic != PC_HANDOFF_MAGIC || h->child.pc > h->child.nops || h->child.nops > (1u << 20) ||
        sizeof *h + (size_t)h->child.nops * sizeof(struct pc_op) + h->child.blob_len > (size_t)st.st_size)
        child_exit(126);
    c = h->child; /* the fds, counters and exe path; the pointers are ours to set */
    c.ops = (const struct pc_op *)(void *)(map + sizeof *h);
    c.blob = map + sizeof *h + c.nops * sizeof(struct pc_op);
    c.keep = 0;
    c.nkeep = 0;
    c.exe[sizeof c.exe - 1] = '\0';
    for (i = 0; i < c.nops; i++) {
        int k;
        for (k = 0; k < 4; k++) /* every string, with its NUL, inside the blob */
            if (c.ops[i].s[k] != PC_NONE && (uint64_t)c.ops[i].s[k] + c.ops[i].len[k] >= c.blob_len)
                child_exit(126);
        if (c.ops[i].kind == PC_OP_EXEC) {
            if (c.ops[i].v[0] < 0 || c.ops[i].v[1] < 0 || c.ops[i].v[0] + c.ops[i].v[1] > (1 << 20))
                child_exit(126);
            nptrs += (size_t)(c.ops[i].v[0] + c.ops[i].v[1] + 9);
        }
    }
    c.ptrs = helper_map(nptrs * sizeof(char *) + 8, -1);
    c.nptrs = (uint32_t)nptrs;
    if (!c.ptrs)
        child_exit(126);

    /* Our own fds are close-on-exec again; nothing of the container may
     * read or write this process's memory while it still works as root. */
    set_own_cloexec(&c, FD_CLOEXEC);
    S2(SYS_prctl, PR_SET_DUMPABLE, 0);
    S2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);

    memset(&m, 0, sizeof m);
    m.type = PC_MSG_HANDED;
    S4(SYS_sendto, c.sync_fd, &m, sizeof m, MSG_NOSIGNAL);
    run_plan(&c);
}

#if defined(__x86_64__)
__asm__(".text\n.globl _start\n_start:\n    xor %ebp, %ebp\n    mov %rsp, %rdi\n    and $-16, %rsp\n"
        "    call pc_helper_start\n    hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl _start\n_start:\n    mov x29, #0\n    mov x0, sp\n    bl pc_helper_start\n");
#endif

#endif /* PC_HELPER */

int pc_idmapped_tree(const char *src, int userns_fd, int clone_recursive, int idmap_recursive, uint64_t attrs,
                     int attrs_recursive)
{
    struct pc_mount_attr attr;
    long tree = S3(SYS_open_tree, AT_FDCWD, src, PC_OPEN_TREE_CLONE | O_CLOEXEC | (clone_recursive ? AT_RECURSIVE : 0));
    long r;
    if (tree < 0)
        return (int)tree;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = PC_MOUNT_ATTR_IDMAP;
    attr.userns_fd = (uint64_t)userns_fd;
    r = S5(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (idmap_recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
    if (r == 0 && attrs) {
        memset(&attr, 0, sizeof attr);
        attr.attr_set = attrs;
        if (attrs & 0x70)
            attr.attr_clr = 0x70; /* MOUNT_ATTR__ATIME */
        r = S5(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (attrs_recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
    }
    if (r < 0) {
        S1(SYS_close, tree);
        return (int)r;
    }
    return (int)tree;
}
