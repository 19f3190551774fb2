# The cffi extension csrc/build_shim.py compiles from csrc/shim.h and
# csrc/seccomp_api.h (out-of-line API mode).  Keep in sync with those headers.
#
# Pointer arguments take cffi cdata (ffi.new(...)) or, for ``const char *`` and
# ``const void *``, bytes; cffi gives no types to its cdata, so they are Any.

from typing import Any

from cffi import FFI

ffi: FFI

class _Lib:
    # enum PC_OP_* and the PC_M_* / PC_W_* flags (csrc/shim.h)
    PC_OP_SETNS: int
    PC_OP_FORK: int
    PC_OP_UNSHARE: int
    PC_OP_PROPAGATION: int
    PC_OP_ROOTFS: int
    PC_OP_MOUNT: int
    PC_OP_MKNOD: int
    PC_OP_SYMLINK: int
    PC_OP_PIVOT: int
    PC_OP_MASK: int
    PC_OP_READONLY: int
    PC_OP_REMOUNT_RO: int
    PC_OP_HOSTNAME: int
    PC_OP_DOMAINNAME: int
    PC_OP_OPEN_FIFO: int
    PC_OP_STDIO: int
    PC_OP_PTY: int
    PC_OP_SETSID: int
    PC_OP_USER: int
    PC_OP_UMASK: int
    PC_OP_CHDIR: int
    PC_OP_RESOLVE: int
    PC_OP_READY: int
    PC_OP_WAIT_START: int
    PC_OP_CLOSE_FDS: int
    PC_OP_EXEC: int
    PC_OP_LOOPBACK: int
    PC_OP_HANDOFF: int
    PC_OP_SYNC: int
    PC_OP_CGROUP_JOIN: int
    PC_OP_BOUNDING: int
    PC_OP_CAPS: int
    PC_OP_NNP: int
    PC_OP_RLIMIT: int
    PC_OP_WRITE: int
    PC_OP_SECCOMP: int
    PC_OP_PERSONALITY: int
    PC_OP_KEYRING: int
    PC_OP_HIDE: int
    PC_OP_IDMOUNT: int
    PC_OP_WAIT_GO: int
    PC_OP__COUNT: int
    PC_W_PROC: int
    PC_M_MKDIR: int
    PC_M_MKFILE: int
    PC_M_RECURSIVE: int
    PC_M_OPTIONAL: int
    PC_M_HOST: int
    PC_M_NOFOLLOW: int
    PC_NONE: int
    # enum PC_MSG_*
    PC_MSG_GO: int
    PC_MSG_PID: int
    PC_MSG_READY: int
    PC_MSG_ERROR: int
    PC_MSG_PTY: int
    PC_MSG_HANDED: int
    PC_MSG_MAPS: int
    PC_MSG_HOOKS: int

    def pc_spawn(self, args: Any, res: Any, /) -> int: ...
    def pc_new_netns(self, back_fd: int, /) -> int: ...
    def pc_setns(self, fd: int, nstype: int, /) -> int: ...
    def pc_rename2(self, from_: bytes, to: bytes, flags: int, /) -> int: ...
    def pc_arena_release(self, arena: Any, size: int, /) -> None: ...
    def pc_can_clone_into_cgroup(self) -> int: ...
    def pc_bpf_load_device_prog(self, insns: bytes, ninsns: int, log: Any, log_size: int, /) -> int: ...
    def pc_bpf_attach(self, cgroup_fd: int, prog_fd: int, attach_type: int, flags: int, /) -> int: ...
    def pc_bpf_detach(self, cgroup_fd: int, prog_fd: int, attach_type: int, /) -> int: ...
    def pc_idmapped_tree(
        self,
        src: bytes,
        userns_fd: int,
        clone_recursive: int,
        idmap_recursive: int,
        attrs: int,
        attrs_recursive: int,
        /,
    ) -> int: ...
    def pc_bpf_query(self, cgroup_fd: int, attach_type: int, prog_ids: Any, count: Any, /) -> int: ...
    def pc_bpf_prog_get_fd_by_id(self, id: int, /) -> int: ...

    # libseccomp (csrc/seccomp_api.h)
    SCMP_CMP_NE: int
    SCMP_CMP_LT: int
    SCMP_CMP_LE: int
    SCMP_CMP_EQ: int
    SCMP_CMP_GE: int
    SCMP_CMP_GT: int
    SCMP_CMP_MASKED_EQ: int
    SCMP_FLTATR_CTL_NNP: int
    SCMP_FLTATR_CTL_OPTIMIZE: int

    def seccomp_init(self, def_action: int, /) -> Any: ...  # scmp_filter_ctx (NULL: refused)
    def seccomp_release(self, ctx: Any, /) -> None: ...
    def seccomp_arch_native(self) -> int: ...
    def seccomp_arch_resolve_name(self, arch_name: bytes, /) -> int: ...
    def seccomp_arch_add(self, ctx: Any, arch_token: int, /) -> int: ...
    def seccomp_syscall_resolve_name(self, name: bytes, /) -> int: ...
    def seccomp_rule_add_array(self, ctx: Any, action: int, syscall: int, arg_cnt: int, arg_array: Any, /) -> int: ...
    def seccomp_attr_set(self, ctx: Any, attr: int, value: int, /) -> int: ...
    def seccomp_export_bpf(self, ctx: Any, fd: int, /) -> int: ...

lib: _Lib
