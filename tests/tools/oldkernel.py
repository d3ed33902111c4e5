#!/usr/bin/python3
# Part of the test suite: the old-kernel tests (tests/cli.rs, packaging/check.sh) run cro under it.
"""Run a command as if on a CentOS 7 kernel (3.10): every system call added after 3.10
answers ENOSYS, madvise(MADV_FREE) answers EINVAL, and (with --no-psi, as root, inside
`unshare -m`) /proc/pressure is hidden. The filter is inherited by every child.
Needs Debian's python3-seccomp (run it with /usr/bin/python3; apt-get install python3-seccomp). Usage: oldkernel.py [--no-psi] CMD ARGS..."""
import errno, os, subprocess, sys
import seccomp

NEWER = """getrandom memfd_create bpf execveat userfaultfd membarrier mlock2 copy_file_range
preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq
pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount
fsopen fsconfig fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2
process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset
landlock_add_rule landlock_restrict_self memfd_secret process_mrelease futex_waitv
set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake futex_wait
futex_requeue statmount listmount lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal
setxattrat getxattrat listxattrat removexattrat open_tree_attr""".split()

def main():
    args = sys.argv[1:]
    if args and args[0] == "--no-psi":
        args = args[1:]
        # re-exec inside a private mount namespace with /proc/pressure covered
        if os.environ.get("OLDKERNEL_NS") != "1":
            os.environ["OLDKERNEL_NS"] = "1"
            inner = ("mount --make-rprivate / && mount -t tmpfs none /proc/pressure && "
                     'exec /usr/bin/python3 "$0" "$@"')
            os.execvp("unshare", ["unshare", "-m", "sh", "-c", inner, sys.argv[0]] + args)
    if not args:
        sys.exit(__doc__)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in NEWER:
        try:
            f.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
        except Exception:
            pass  # unknown to this libseccomp: not callable here either
    f.add_rule(seccomp.ERRNO(errno.EINVAL), "madvise", seccomp.Arg(2, seccomp.EQ, 8))
    f.load()
    os.execvp(args[0], args)

main()
