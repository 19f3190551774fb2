/*
 * shim.h - the whole ABI between pycontainer (Python) and its C shim.
 *
 * Python compiles a container's configuration into a flat *plan*: an array of
 * `struct pc_op` records whose string arguments are offsets into one byte blob.
 * `pc_spawn` copies the plan into a private arena (which also holds the
 * child's stack), clones the child with the requested namespaces and returns.
 * As given to `pc_spawn`, an op's offsets count from the op's own first
 * string (each op's strings follow the previous op's in the blob); the copy
 * in the arena, and what the helper reads, has them from the blob's start.
 * The child interprets the plan step by step, talks to the parent over the
 * sync socket (see `struct pc_msg`), and ends in execve.  No Python runs in
 * the child and the child allocates nothing.
 *
 * This header is read both by the C compiler and by cffi's cdef parser, so it
 * holds only plain declarations.
 */
#ifndef PYCONTAINER_SHIM_H
#define PYCONTAINER_SHIM_H

#include <stdint.h>

/* Plan operations.  Keep in sync with pycontainer/_plan.py (Op). */
enum {
    PC_OP_SETNS = 1,      /* s0 path or v1 fd (>= 0), v0 nstype: join an existing namespace */
    PC_OP_FORK,           /* clone again so a joined pid/time namespace applies */
    PC_OP_UNSHARE,        /* v0 flags */
    PC_OP_PROPAGATION,    /* v0 MS_* flags for "/" (MS_REC|MS_PRIVATE ...) */
    PC_OP_ROOTFS,         /* s0 rootfs path: bind onto itself, becomes the root */
    PC_OP_MOUNT,          /* s0 src, s1 target, s2 fstype, s3 data, v0 MS_*, v1 PC_M_*, v2 propagation,
                             v3 MOUNT_ATTR_* applied after mounting (bind mounts) */
    PC_OP_MKNOD,          /* s1 target, v0 mode (S_IFDIR: a directory), v1 dev, v2 uid, v3 gid, s0 host device to bind
                             if mknod is refused */
    PC_OP_SYMLINK,        /* s0 link text, s1 link path */
    PC_OP_PIVOT,          /* pivot_root into the rootfs and detach the old root; v0 = 1: instead move
                             the rootfs onto "/" and chroot (runc --no-pivot, for a ramfs root) */
    PC_OP_MASK,           /* s1 path (in the new root): hide it */
    PC_OP_READONLY,       /* s1 path (in the new root): make it read-only */
    PC_OP_REMOUNT_RO,     /* make "/" read-only */
    PC_OP_HOSTNAME,       /* s0 hostname */
    PC_OP_DOMAINNAME,     /* s0 domainname */
    PC_OP_OPEN_FIFO,      /* s0 host path of the exec fifo's directory (opened before pivot) */
    PC_OP_STDIO,          /* s0 packed int32 pairs (src fd, dst fd), v0 count */
    PC_OP_PTY,            /* allocate a pty in the container; master goes to the parent */
    PC_OP_SETSID,
    PC_OP_USER,           /* v0 uid, v1 gid, s0 packed uint32 groups, v2 count */
    PC_OP_UMASK,          /* v0 mask */
    PC_OP_CHDIR,          /* s0 dir */
    PC_OP_RESOLVE,        /* s0 argv[0], s1 PATH: find the executable, check it can run */
    PC_OP_READY,          /* tell the parent setup is done; v0 = 1 (run): it keeps reading the sync socket,
                             so a later step's error is reported at once, not held for `start` */
    PC_OP_WAIT_START,     /* block on the exec fifo until `start` */
    PC_OP_CLOSE_FDS,      /* v0 first fd to close on exec */
    PC_OP_EXEC,           /* s0 argv (NUL separated, v0 argc), s1 envp (v1 envc), v2 init memfd or -1,
                             v3 > 0: the fd the init records the exit status to (--exit-fd);
                             s2: the init's restart policy (--restart), if any */
    PC_OP_LOOPBACK,       /* bring "lo" up in the (new) network namespace */
    PC_OP_HANDOFF,        /* v0 helper fd: continue the plan in the static helper, with a memory of our own */
    PC_OP_SYNC,           /* send message v0 to the parent, wait for GO (e.g. "write my id maps") */
    PC_OP_CGROUP_JOIN,    /* s0 a cgroup's tasks or cgroup.procs file (a host path): write "0" to join */
    PC_OP_BOUNDING,       /* v0 capabilities kept in the bounding set (bit mask), v1 the kernel's last cap;
                             then PR_SET_KEEPCAPS so PC_OP_USER keeps the permitted set */
    PC_OP_CAPS,           /* v0 effective, v1 permitted, v2 inheritable, v3 ambient (bit masks) */
    PC_OP_NNP,            /* prctl(PR_SET_NO_NEW_PRIVS) */
    PC_OP_RLIMIT,         /* s0 name, v0 resource, v1 soft, v2 hard */
    PC_OP_WRITE,          /* s0 path, s1 text: write it (e.g. /proc/self/oom_score_adj); v0 PC_W_PROC:
                             the file must be on a procfs (a sysctl) */
    PC_OP_SECCOMP,        /* s0 struct sock_filter[v0], v1 SECCOMP_FILTER_FLAG_*: install the filter */
    PC_OP_PERSONALITY,    /* v0 execution domain (PER_LINUX, PER_LINUX32) */
    PC_OP_KEYRING,        /* s0 name: join (or make) that session keyring; v0 permission bits to add
                             (0: leave them) */
    PC_OP_HIDE,           /* s0 host path of a procfs or sysfs mount outside the rootfs: detach it
                             (or cover it with a tmpfs) before a no-pivot chroot */
    PC_OP_IDMOUNT,        /* s1 target: attach the detached mount v0 (an fd from pc_idmapped_tree, made by
                             the parent: the container's root may not idmap a host filesystem), v1 PC_M_*,
                             v2 propagation */
    PC_OP_WAIT_GO,        /* run: wait for GO on the sync socket (the parent has claimed the id), then go on
                             to the exec; EOF instead: exit without it */
    PC_OP__COUNT
};

#define PC_W_PROC 0x01  /* PC_OP_WRITE: refuse a file that is not on a procfs */

/* PC_OP_MOUNT v1 flags */
#define PC_M_MKDIR     0x01  /* create the target as a directory if missing */
#define PC_M_MKFILE    0x02  /* create the target as an empty file if missing */
#define PC_M_RECURSIVE 0x08  /* v3 attributes apply to every submount */
#define PC_M_OPTIONAL  0x10  /* a missing source or an unsupported fs is skipped */
#define PC_M_HOST      0x20  /* target is a host path, not resolved in the rootfs */
#define PC_M_NOFOLLOW  0x40  /* source is not followed if it is a symlink */

/* Messages on the sync socket (SOCK_SEQPACKET), child -> parent. */
enum {
    PC_MSG_GO = 1,      /* parent -> child: carry on (answers PC_OP_SYNC; releases PC_OP_WAIT_GO) */
    PC_MSG_PID,         /* child -> parent: pid of the re-cloned child (PC_OP_FORK) */
    PC_MSG_READY,       /* child -> parent: setup done, waiting for start */
    PC_MSG_ERROR,       /* child -> parent: a step failed */
    PC_MSG_PTY,         /* child -> parent: pty master attached (SCM_RIGHTS) */
    PC_MSG_HANDED,      /* child -> parent: now runs in the helper; the arena is free */
    PC_MSG_MAPS,        /* child -> parent: write my uid/gid maps, then GO */
    PC_MSG_HOOKS,       /* child -> parent: mounts are made, run the create hooks, then GO */
};

struct pc_msg {
    int32_t type;
    int32_t step;        /* index of the failing op in the plan */
    int32_t op;          /* its PC_OP_* */
    int32_t err;         /* errno */
    int64_t pid;
    char text[512];      /* path or name involved */
};

struct pc_op {
    int32_t kind;
    uint32_t s[4];       /* offsets into the blob (see above); PC_NONE when absent */
    uint32_t len[4];     /* byte length of each string (without the NUL) */
    int64_t v[4];
};

#define PC_NONE 0xffffffffu

struct pc_spawn_args {
    uint64_t clone_flags;    /* CLONE_NEW* */
    int sync_fd;             /* the child's end of the sync socketpair */
    const struct pc_op *ops;
    uint32_t nops;
    const char *blob;
    uint32_t blob_len;
    const int *keep_fds;     /* sorted; every other fd >= 3 is closed first thing */
    uint32_t nkeep;
    int fd_base;             /* above every fd the plan dups into place */
    int cgroup_fd;           /* >= 0: a cgroup2 directory to clone into (CLONE_INTO_CGROUP) */
};

struct pc_spawn_result {
    int pid;
    int err;                 /* errno when pid < 0 */
    void *arena;             /* release with pc_arena_release once the child exec'd */
    uint64_t arena_size;
};

int pc_spawn(const struct pc_spawn_args *args, struct pc_spawn_result *res);
/* Make a network namespace with "lo" up, from the calling thread, and return
 * to the namespace `back_fd` names.  Returns an fd for the new namespace, or
 * -errno (then the thread may be left in the new namespace if it was the
 * way back that failed: the caller must stop using the thread). */
int pc_new_netns(int back_fd);
int pc_setns(int fd, int nstype);
/* renameat2(): RENAME_EXCHANGE swaps two paths atomically (a restarted
 * container's new state directory takes the place of the old one, the id
 * never free in between); RENAME_NOREPLACE renames only onto nothing
 * (rename(2) would replace an empty directory).  0 or -errno. */
int pc_rename2(const char *from, const char *to, unsigned int flags);
/* The static helper (csrc/shim.c built with -DPC_HELPER, pycontainer/_pchelper)
 * is started as `pycontainer-helper --plan FD` by PC_OP_HANDOFF and runs the
 * rest of the plan written to the memfd FD.  `pycontainer-helper --x32-probe`
 * exits 0 when the kernel runs x32 system calls (x86_64). */
void pc_arena_release(void *arena, uint64_t size);
/* 1 when pc_spawn can honour cgroup_fd (clone3 with CLONE_INTO_CGROUP is
 * built in); the caller joins through a PC_OP_CGROUP_JOIN step otherwise. */
int pc_can_clone_into_cgroup(void);

/* bpf(2) for cgroup v2 device programs.  Each returns an fd or 0 on success,
 * -errno on failure. */
int pc_bpf_load_device_prog(const void *insns, uint32_t ninsns, char *log, uint32_t log_size);
int pc_bpf_attach(int cgroup_fd, int prog_fd, uint32_t attach_type, uint32_t flags);
int pc_bpf_detach(int cgroup_fd, int prog_fd, uint32_t attach_type);
/* A detached copy of `src` (with its submounts if `clone_recursive`),
 * idmapped by the maps of the user namespace `userns_fd` (the submounts too
 * if `idmap_recursive`), then given MOUNT_ATTR_* `attrs` (recursively if
 * `attrs_recursive`): an O_CLOEXEC fd, or -errno. */
int pc_idmapped_tree(const char *src, int userns_fd, int clone_recursive, int idmap_recursive, uint64_t attrs,
                     int attrs_recursive);
int pc_bpf_query(int cgroup_fd, uint32_t attach_type, uint32_t *prog_ids, uint32_t *count);
int pc_bpf_prog_get_fd_by_id(uint32_t id);

#endif
