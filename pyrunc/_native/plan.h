/* The plan wire format shared by pyrunc/plan.py (writer) and init.c (reader).
 *
 * plan   := "PYRP" u32 version u32 nops op*
 * op     := u32 code, u16 nints, u16 nstrs, i64 ints[nints], str*nstrs
 * str    := u32 len, bytes[len], '\0'          (binary-safe: BPF programs are strings too)
 *
 * Messages from the init to the runtime on the sync socket (SOCK_SEQPACKET) are
 * struct init_msg; the runtime answers MSG_SYNC with one byte (0 = go on).
 * pyrunc/plan.py holds the same numbers (tests/unit/test_plan.py parses this file and
 * compares).  Bump PLAN_VERSION in both with any change of an op's arguments: the init
 * refuses a plan whose version is not its own.
 */
#ifndef PYRUNC_PLAN_H
#define PYRUNC_PLAN_H

#include <stdint.h>

#define PLAN_MAGIC "PYRP"
#define PLAN_VERSION 1

enum op_code {
	OP_SYNC = 1,         /* ints: sync id                        stop until the runtime acks */
	OP_SETNS = 2,        /* ints: nstype; strs: path             join an existing namespace */
	OP_UNSHARE = 3,      /* ints: flags */
	OP_SETRESID = 4,     /* ints: uid, gid                       become this id (after id maps) */
	OP_FORK = 5,         /* the child goes on; the parent reports the pid and exits */
	OP_WRITE_FILE = 6,   /* strs: path, content */
	OP_ROOT = 7,         /* strs: path                           the directory IN_ROOT paths resolve in */
	OP_MOUNT = 8,        /* ints: flags, target kind, mkdir kind, source kind;
	                        strs: source, target, fstype, data */
	OP_MKNOD = 9,        /* ints: mode, dev, uid, gid; strs: in-root path */
	OP_SYMLINK = 10,     /* strs: link target, in-root path */
	OP_PIVOT_ROOT = 11,  /* pivot_root into the OP_ROOT directory */
	OP_MOVE_ROOT = 12,   /* --no-pivot: MS_MOVE the root onto / and chroot */
	OP_MASK = 13,        /* strs: in-root path, mount data of a directory's tmpfs (optional) */
	OP_READONLY = 14,    /* strs: in-root path */
	OP_SYSCTL = 15,      /* strs: path below /proc/sys, value */
	OP_HOSTNAME = 16,    /* strs: name */
	OP_DOMAINNAME = 17,  /* strs: name */
	OP_RLIMIT = 18,      /* ints: resource, soft, hard */
	OP_CONSOLE = 19,     /* ints: socket fd, rows, cols, bind over /dev/console (0/1), uid that
	                        owns the terminal (-1: root keeps it) */
	OP_CHDIR = 20,       /* strs: path */
	OP_NO_NEW_PRIVS = 21,
	OP_BOUNDING = 22,    /* ints: mask of capabilities to keep in the bounding set */
	OP_USER = 23,        /* ints: uid, gid, set groups (0/1), gids... */
	OP_CAPSET = 24,      /* ints: effective, permitted, inheritable, ambient */
	OP_SECCOMP = 25,     /* ints: filter flags; strs: BPF program (struct sock_filter[]) */
	OP_CLOSE_FDS = 26,   /* ints: first fd to mark close-on-exec, uid given the stdio that is a
	                        pipe or socket (optional, -1: none; runc's fixStdioPermissions) */
	OP_EXEC = 28,        /* strs: argv..., then env...; ints: argc (argv[0] resolved by OP_LOOKUP,
	                        which also read the HOME added when env has none) */
	OP_UMASK = 29,       /* ints: mask */
	OP_SETSID = 30,      /* a new session, led by this process (already leading: kept) */
	OP_READY = 31,       /* tell the runtime that create is done */
	OP_LOOPBACK_UP = 32,
	OP_DUP2 = 33,        /* ints: from, to */
	OP_REOPEN_DEV_NULL = 34, /* stdio on the host's /dev/null: onto the container's */
	OP_CHROOT = 35,      /* chroot into the OP_ROOT directory (no mount namespace) */
	OP_LOOKUP = 36,      /* strs: file, PATH   resolve the program like execvp, for OP_EXEC;
	                        ints: uid whose passwd home becomes HOME (optional, -1: none) */
	OP_KEYRING = 37,     /* strs: name         join a new session keyring */
	OP_PRIVATE_IF_SHARED = 38, /* strs: mount point as /proc/self/mountinfo writes it, path */
	OP_MKDIR = 39,       /* strs: in-root path   mkdir -p inside the root */
	OP_PROC_ATTR = 40,   /* strs: value, then paths below /proc; the value is written to the
	                        first that exists (/proc: the root's, or the current one before
	                        OP_ROOT, checked to be procfs; no mount crossed) */
	OP_SETXATTR = 41,    /* strs: in-root path, attribute name, value */
	OP_OPEN_TREE = 42,   /* ints: slot, recursive (0/1); strs: host path   a detached copy of
	                        the mount at path (open_tree), made a slave, kept in `slot` for an
	                        OP_MOUNT with SOURCE_TREE: bind sources only the host's root can
	                        reach, opened before the init enters a user namespace */
	OP_HIDE_MOUNT = 43,  /* strs: host path   --no-pivot: detach a full procfs/sysfs mount of
	                        the host (or cover it with a tmpfs) so that no fully visible one
	                        is left for a nested user namespace to mount over (runc) */
	/* id-mapped and recursive-attribute mounts (50-54) */
	OP_USERNS_FD = 50,   /* ints: slot; strs: uid_map, gid_map, path   a user namespace fd for
	                        OP_IDMAP_TREE: the one at path, or (path "") a new one with these
	                        maps, made by a child that exits once its namespace is open */
	OP_IDMAP_TREE = 51,  /* ints: tree slot, userns slot, recursive (0/1)   MOUNT_ATTR_IDMAP on
	                        the detached mount of an OP_OPEN_TREE slot (before it is placed);
	                        the userns slot is closed after */
	OP_MOUNT_SETATTR = 52, /* ints: attr_set, attr_clr; strs: in-root path
	                        mount_setattr(AT_RECURSIVE) on the mount there and those below it */
	/* process attributes, set just before exec (pyrunc/process_attrs.py) */
	OP_PERSONALITY = 55,   /* ints: persona                        personality(2) */
	OP_SCHED_SETATTR = 56, /* ints: policy, flags, nice, priority, runtime, deadline, period */
	OP_IOPRIO_SET = 57,    /* ints: ioprio (class << 13 | level)   ioprio_set(IOPRIO_WHO_PROCESS, 0) */
	OP_SET_MEMPOLICY = 58, /* ints: mode | mode flags; strs: node bitmap (unsigned longs,
	                          empty: no nodes) */
	OP_SCHED_AFFINITY = 59, /* strs: CPU bitmap (unsigned longs)   sched_setaffinity(0) */
	OP_WAIT_EXEC_FIFO = 65, /* ints: O_PATH fd of the state dir's exec fifo: opened for writing
	                           through /proc/self/fd (blocks until `start` opens it for
	                           reading), one byte written, kept (close-on-exec) for the exec
	                           error */
	OP_DUMPABLE = 66,    /* ints: 0/1, prctl(PR_SET_DUMPABLE) (the init starts not dumpable) */
	OP_OPEN_PROC_FDS = 67, /* open /proc/self/fd (O_PATH, close-on-exec) while the host's procfs
	                          is reachable: OP_WAIT_EXEC_FIFO reopens the fifo through it */
	OP_MAX
};

/* OP_MOUNT ints[1]: where the target is */
enum mount_target { TARGET_HOST = 0, TARGET_IN_ROOT = 1 };
/* OP_MOUNT ints[2]: create the target when missing */
/* MKDIR_ORDINARY_DIR: a directory, and an existing entry that is not one (a symlink
 * included) fails with ENOTDIR (runc: "must be mounted on ordinary directory") */
enum mount_mkdir { MKDIR_NONE = 0, MKDIR_DIR = 1, MKDIR_FILE = 2, MKDIR_ORDINARY_DIR = 3 };
/* OP_MOUNT ints[3]: what the source string is; SOURCE_TREE: the detached mount of the
 * OP_OPEN_TREE slot ints[4], moved onto the target (the source string is only shown).
 * OP_MOUNT ints[5]: 1 = a target that resolves onto procfs is refused with EXDEV (runc's
 * checkProcMount for bind mounts) */
enum mount_source { SOURCE_LITERAL = 0, SOURCE_HOST = 1, SOURCE_IN_ROOT = 2, SOURCE_TREE = 3 };

enum msg_type {
	MSG_SYNC = 1,    /* value: sync id; the runtime acks with one byte */
	MSG_PID = 2,     /* value: pid of the forked child (in the runtime's pid namespace) */
	MSG_ERROR = 3,   /* op: failing op index, err: errno */
	MSG_READY = 4,   /* create finished: the init waits for start */
	MSG_SECCOMP_FD = 5, /* value: a seccomp listener fd number in the init; the runtime
	                       copies it (pidfd_getfd) for listenerPath, then acks */
};

struct init_msg {
	int32_t type;
	int32_t op;
	int32_t err;
	int32_t value;
};

#endif
