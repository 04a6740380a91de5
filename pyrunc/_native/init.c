/* pyrunc-init: the container's first process until it execs the user's program.
 *
 * The runtime (Python) clones a child that at once execs a sealed memfd copy of this
 * static binary, so nothing of the interpreter is mapped while the container waits for
 * `start` and the process may join user and time namespaces (a process sharing its VM
 * with the interpreter may not).  This program knows no policy: it reads a plan, a list
 * of ops computed and validated in Python (pyrunc/plan.py), and runs them in order.
 * A failure is reported as (op index, errno) on the sync socket; Python words the error.
 *
 * usage: pyrunc-init SYNC_FD PLAN_FD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include "plan.h"

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#ifndef PROC_ROOT_INO
#define PROC_ROOT_INO 1
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_INTS 80
#define MAX_STRS 4096

struct op {
	uint32_t code;
	uint16_t nints, nstrs;
	const int64_t *ints; /* unaligned-safe: copied by get_int */
	const char *ints_raw;
	const char *strs[MAX_STRS];
	uint32_t lens[MAX_STRS];
};

static int sync_fd = -1;
static int *trees;            /* OP_OPEN_TREE slots: detached mounts, -1 once moved */
static int ntrees;
static int *userns_fds;       /* OP_USERNS_FD slots: user namespaces of id-mapped mounts */
static int nuserns_fds;
static int root_fd = -1;      /* O_PATH fd of the directory IN_ROOT paths resolve in */
static int current_op = -1;

static int64_t get_int(const struct op *op, int i)
{
	int64_t v;
	if (i >= op->nints)
		return 0;
	memcpy(&v, op->ints_raw + 8 * i, sizeof(v));
	return v;
}

/* write(2)/read(2), not send/recv: once a seccomp filter is loaded these are the calls
 * a profile can't hold for a notify agent (sendto is commonly notified, write is not). */
static void send_msg(int type, int value, int err)
{
	struct init_msg m = { .type = type, .op = current_op, .err = err, .value = value };
	ssize_t r;
	do {
		r = write(sync_fd, &m, sizeof(m));
	} while (r < 0 && errno == EINTR);
}

/* Report the failing op and errno, then die: the runtime cleans up; what the failing
 * op created in the rootfs goes first (nothing of a failed create stays in the image). */
static void remove_created(void);

static void __attribute__((noreturn)) fail(int err)
{
	remove_created();
	send_msg(MSG_ERROR, 0, err ? err : EIO);
	_exit(1);
}

#define CHECK(expr) do { if ((expr) < 0) fail(errno); } while (0)

static void wait_ack(void)
{
	char ack = 1;
	ssize_t r;
	do {
		r = read(sync_fd, &ack, 1);
	} while (r < 0 && errno == EINTR);
	if (r != 1 || ack != 0)
		_exit(1); /* the runtime gave up; it reports the reason itself */
}

static int openat2_in_root(const char *path, int flags, int extra_resolve)
{
	struct open_how how = {
		.flags = (uint64_t)flags | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | extra_resolve,
	};
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	return (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
}

/* What mkdir_in_root created for the current op (in-root paths, outermost first): an
 * op that then fails (a mount on a destination it had to create) removes them. */
static char **created;
static int ncreated;

static void forget_created(void)
{
	for (int i = 0; i < ncreated; i++)
		free(created[i]);
	ncreated = 0;
}

static void note_created(const char *path)
{
	char **grown = realloc(created, sizeof(*created) * (size_t)(ncreated + 1));
	char *copy = strdup(path);
	if (!grown || !copy)
		fail(ENOMEM);
	created = grown;
	created[ncreated++] = copy;
}

/* Remove what mkdir_in_root created, innermost first, each relative to its parent
 * resolved inside the root; best effort (the error reported is the failing op's). */
static void remove_created(void)
{
	for (int i = ncreated - 1; i >= 0; i--) {
		char *slash = strrchr(created[i], '/');
		const char *name = slash ? slash + 1 : created[i];
		int dfd;
		if (slash) {
			*slash = '\0';
			dfd = openat2_in_root(created[i][0] ? created[i] : "/", O_PATH | O_DIRECTORY, 0);
			*slash = '/';
		} else {
			dfd = openat2_in_root("/", O_PATH | O_DIRECTORY, 0);
		}
		if (dfd < 0)
			continue;
		if (unlinkat(dfd, name, 0) < 0 && errno == EISDIR)
			unlinkat(dfd, name, AT_REMOVEDIR);
		close(dfd);
	}
	forget_created();
}

/* Create every missing component of `path` inside the root (the last one as a dir or
 * an empty file).  Components are created relative to an fd already resolved inside
 * the root, so a symlink planted in the rootfs can never redirect creation outside. */
static void mkdir_in_root_depth(const char *path, int last_is_file, int depth);

static void mkdir_in_root(const char *path, int last_is_file)
{
	mkdir_in_root_depth(path, last_is_file, 0);
}

/* A component that is a dangling symlink: create what it points to instead, resolved
 * inside the root like everything else (what runc gets from securejoin + MkdirAll). */
static void follow_dangling(int dirfd, const char *parent, const char *name, const char *rest,
			    int last_is_file, int depth)
{
	char target[4096], next[8192];
	if (depth >= 40)
		fail(ELOOP);
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		fail(errno);
	target[n] = '\0';
	int len;
	if (target[0] == '/')
		len = snprintf(next, sizeof(next), "%s%s%s", target, rest ? "/" : "", rest ? rest : "");
	else
		len = snprintf(next, sizeof(next), "/%s/%s%s%s", parent, target, rest ? "/" : "",
			       rest ? rest : "");
	if (len < 0 || (size_t)len >= sizeof(next))
		fail(ENAMETOOLONG);
	mkdir_in_root_depth(next, last_is_file, depth + 1);
}

static void mkdir_in_root_depth(const char *path, int last_is_file, int depth)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		fail(ENAMETOOLONG);
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	int dirfd = openat2_in_root("/", O_PATH | O_DIRECTORY, 0);
	if (dirfd < 0)
		fail(errno);
	char *p = buf;
	while (*p == '/')
		p++;
	while (*p) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		int last = slash == NULL;
		/* resolve the whole prefix inside the root: symlinks in the rootfs stay in it */
		int fd = openat2_in_root(buf, O_PATH, 0);
		if (fd < 0 && errno == ENOENT) {
			struct stat st;
			if (fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
				char parent[4096];
				size_t plen = (size_t)(p - buf);
				memcpy(parent, buf, plen);
				parent[plen] = '\0';
				follow_dangling(dirfd, parent, p, last ? NULL : slash + 1, last_is_file, depth);
				close(dirfd);
				return;
			}
			if (last && last_is_file) {
				int f = openat(dirfd, p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
				if (f < 0 && errno != EEXIST)
					fail(errno);
				if (f >= 0) {
					close(f);
					note_created(buf);
				}
			} else if (mkdirat(dirfd, p, 0755) < 0) {
				if (errno != EEXIST)
					fail(errno);
			} else {
				note_created(buf);
			}
			fd = openat2_in_root(buf, O_PATH, 0);
		}
		if (fd < 0)
			fail(errno);
		close(dirfd);
		dirfd = fd;
		if (last)
			break;
		*slash = '/';
		p = slash + 1;
		while (*p == '/')
			p++;
	}
	close(dirfd);
}

/* out = prefix followed by v in decimal (no printf in this static init) */
static void numbered_path(char *out, size_t n, const char *prefix, unsigned v)
{
	char digits[16];
	int i = 0;
	do {
		digits[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	size_t pl = strlen(prefix);
	if (pl + (size_t)i + 1 > n)
		fail(ENAMETOOLONG);
	memcpy(out, prefix, pl);
	for (int j = 0; j < i; j++)
		out[pl + j] = digits[i - 1 - j];
	out[pl + i] = '\0';
}

static void proc_fd_path(char *out, size_t n, int fd)
{
	/* /proc/self/fd/N: the kernel resolves the magic link to the very object we opened */
	numbered_path(out, n, "/proc/self/fd/", (unsigned)fd);
}

/* Flags the kernel locks on a mount seen from a less privileged user namespace: a
 * remount must repeat them or it fails with EPERM. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

static void op_mount(const struct op *op)
{
	unsigned long flags = (unsigned long)get_int(op, 0);
	int target_kind = (int)get_int(op, 1);
	int mkdir_kind = (int)get_int(op, 2);
	int source_kind = (int)get_int(op, 3);
	const char *source = op->strs[0];
	const char *target = op->strs[1];
	const char *fstype = op->lens[2] ? op->strs[2] : NULL;
	const char *data = op->lens[3] ? op->strs[3] : NULL;
	char target_path[64], source_path[64];
	int tfd = -1, sfd = -1;

	if (target_kind == TARGET_IN_ROOT) {
		if (mkdir_kind == MKDIR_ORDINARY_DIR) {
			/* never through a symlink at the end: it is refused, not followed */
			tfd = openat2_in_root(target, O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
			if (tfd < 0 && errno == ENOENT) {
				mkdir_in_root(target, 0);
				tfd = openat2_in_root(target, O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
			}
		} else {
			if (mkdir_kind != MKDIR_NONE)
				mkdir_in_root(target, mkdir_kind == MKDIR_FILE);
			tfd = openat2_in_root(target, O_PATH, 0);
		}
		if (tfd < 0)
			fail(errno);
		if (get_int(op, 5)) {
			/* where the destination resolved, not how it was written: an image's
			 * symlink may lead a bind into /proc too */
			struct statfs sfs;
			CHECK(fstatfs(tfd, &sfs));
			if (sfs.f_type == PROC_SUPER_MAGIC)
				fail(EXDEV);
		}
		proc_fd_path(target_path, sizeof(target_path), tfd);
		target = target_path;
	}
	if (source_kind == SOURCE_TREE) {
		int slot = (int)get_int(op, 4);
		if (slot < 0 || slot >= ntrees || trees[slot] < 0)
			fail(EBADF);
		CHECK(syscall(SYS_move_mount, trees[slot], "", tfd, "",
			      MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
		close(trees[slot]);
		trees[slot] = -1;
		close(tfd);
		return;
	}
	if (source_kind == SOURCE_IN_ROOT) {
		sfd = openat2_in_root(source, O_PATH, 0);
		if (sfd < 0)
			fail(errno);
		proc_fd_path(source_path, sizeof(source_path), sfd);
		source = source_path;
	} else if (!op->lens[0]) {
		source = NULL;
	}
	if ((flags & MS_REMOUNT) && (flags & MS_BIND))
		flags |= locked_flags(target) & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
	CHECK(mount(source, target, fstype, flags, data));
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
}

/* Grow a slot table (OP_OPEN_TREE's, OP_USERNS_FD's) so that `slot` exists; new slots are -1. */
static void grow_slots(int **table, int *n, int slot)
{
	if (slot < 0 || slot > 65535)
		fail(EINVAL);
	if (slot < *n)
		return;
	int *grown = realloc(*table, sizeof(int) * (size_t)(slot + 1));
	if (!grown)
		fail(ENOMEM);
	for (int i = *n; i <= slot; i++)
		grown[i] = -1;
	*table = grown;
	*n = slot + 1;
}

/* A detached copy of the mount at a host path, taken while the init still has the
 * host's credentials (before it enters its user namespace), as runc's mount fds. */
static void op_open_tree(const struct op *op)
{
	int slot = (int)get_int(op, 0);
	unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
	if (get_int(op, 1))
		flags |= AT_RECURSIVE;
	grow_slots(&trees, &ntrees, slot);
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, op->strs[0], flags);
	if (fd < 0)
		fail(errno);
	/* a slave, like a bind made in the container's rslave tree: the host's mount events
	 * still arrive, nothing mounted in the container goes back to the host */
	struct mount_attr attr = { .propagation = MS_SLAVE };
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (get_int(op, 1) ? AT_RECURSIVE : 0),
		    &attr, sizeof(attr)) < 0)
		fail(errno);
	trees[slot] = fd;
}

static int write_id_map(int proc_dir, const char *name, const char *content, size_t len)
{
	int fd = openat(proc_dir, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* the kernel takes an id map in one write only */
	ssize_t r = write(fd, content, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return r == (ssize_t)len ? 0 : -1;
}

/* A user namespace fd for an id-mapped mount (runc's idmap helper process): a child
 * unshares a user namespace and waits; this process, still with the host's
 * credentials, writes its maps and opens it; the child then exits.  The namespace lives
 * on in the fd, and in the mount once OP_IDMAP_TREE has used it.  The child shares the
 * fd table and hands over its /proc/self: the init may be pid 1 of a new pid namespace
 * whose pids the host's /proc does not show. */
static void op_userns_fd(const struct op *op)
{
	int slot = (int)get_int(op, 0);
	grow_slots(&userns_fds, &nuserns_fds, slot);
	if (op->nstrs > 2 && op->lens[2]) {
		int fd = open(op->strs[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail(errno);
		userns_fds[slot] = fd;
		return;
	}
	int ready[2], done[2];
	CHECK(pipe2(ready, O_CLOEXEC));
	CHECK(pipe2(done, O_CLOEXEC));
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(errno);
	if (pid == 0) {
		/* no close() here: the table is the parent's too */
		int dir = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int32_t msg = dir >= 0 && unshare(CLONE_NEWUSER) == 0 ? dir : -errno;
		if (write(ready[1], &msg, sizeof(msg)) != sizeof(msg) || msg < 0)
			_exit(1);
		char c;
		(void)!read(done[0], &c, 1); /* until the parent has opened the namespace (EOF) */
		_exit(0);
	}
	int32_t dir = -EIO;
	int err = 0, fd = -1;
	if (read(ready[0], &dir, sizeof(dir)) != sizeof(dir))
		dir = -EIO;
	if (dir < 0)
		err = -dir;
	else if (write_id_map(dir, "uid_map", op->strs[0], op->lens[0]) < 0 ||
		 write_id_map(dir, "gid_map", op->strs[1], op->lens[1]) < 0 ||
		 (fd = openat(dir, "ns/user", O_RDONLY | O_CLOEXEC)) < 0)
		err = errno;
	close(done[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (dir >= 0)
		close(dir);
	close(done[0]);
	close(ready[0]);
	close(ready[1]);
	if (err)
		fail(err);
	userns_fds[slot] = fd;
}

/* MOUNT_ATTR_IDMAP on a detached mount: the kernel id-maps only a mount not yet
 * attached, on a filesystem that supports it (EINVAL otherwise).  Uses up the slot's
 * user namespace fd. */
static void op_idmap_tree(const struct op *op)
{
	int slot = (int)get_int(op, 0), ns_slot = (int)get_int(op, 1);
	if (slot < 0 || slot >= ntrees || trees[slot] < 0 || ns_slot < 0 || ns_slot >= nuserns_fds ||
	    userns_fds[ns_slot] < 0)
		fail(EBADF);
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fds[ns_slot] };
	CHECK(syscall(SYS_mount_setattr, trees[slot], "", AT_EMPTY_PATH | (get_int(op, 2) ? AT_RECURSIVE : 0),
		      &attr, sizeof(attr)));
	/* the mount holds the namespace now */
	close(userns_fds[ns_slot]);
	userns_fds[ns_slot] = -1;
}

/* The recursive mount options (rro, rnosuid ...): on the mount at an in-root path and
 * every mount below it, after it is in place (runc's setRecAttr). */
static void op_mount_setattr(const struct op *op)
{
	int fd = openat2_in_root(op->strs[0], O_PATH | O_NOFOLLOW, 0);
	if (fd < 0)
		fail(errno);
	struct mount_attr attr = { .attr_set = (uint64_t)get_int(op, 0), .attr_clr = (uint64_t)get_int(op, 1) };
	CHECK(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)));
	close(fd);
}

/* --no-pivot (runc's msMoveRoot): a full procfs or sysfs mount of the host stays in the
 * container's mount namespace under the moved root, and the kernel lets a nested user
 * namespace mount procfs when a fully visible one exists.  Detach it, or where that is
 * not allowed (a locked mount in a user namespace) cover it with a tmpfs. */
static void op_hide_mount(const struct op *op)
{
	const char *path = op->strs[0];
	/* its unmount must not propagate to the host */
	if (mount(NULL, path, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
		if (errno == ENOENT || errno == EINVAL)
			return; /* gone with a mount detached before it */
		fail(errno);
	}
	if (umount2(path, MNT_DETACH) == 0)
		return;
	if (errno != EINVAL && errno != EPERM)
		fail(errno);
	CHECK(mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
}

/* runc's rootfsParentMountPrivate, decided here because only this mount namespace
 * knows whether the mount is still shared after / got its propagation. */
static void op_private_if_shared(const struct op *op)
{
	static char buf[1 << 20];
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	size_t used = 0;
	ssize_t n;
	if (fd < 0)
		fail(errno);
	while (used < sizeof(buf) - 1 && (n = read(fd, buf + used, sizeof(buf) - 1 - used)) > 0)
		used += (size_t)n;
	close(fd);
	buf[used] = '\0';
	int shared = 0;
	for (char *line = buf; line && *line;) {
		char *eol = strchr(line, '\n');
		if (eol)
			*eol = '\0';
		/* fields: id parent major:minor root mountpoint options optional... - ... */
		char *f = line;
		for (int i = 0; i < 4 && f; i++) {
			f = strchr(f, ' ');
			if (f)
				f++;
		}
		if (f) {
			char *end = strchr(f, ' ');
			size_t flen = end ? (size_t)(end - f) : strlen(f);
			if (flen == op->lens[0] && !memcmp(f, op->strs[0], flen) && end) {
				/* the last entry for a mount point is the one on top */
				char *opts = strchr(end + 1, ' ');
				char *dash = opts ? strstr(opts, " - ") : NULL;
				shared = 0;
				if (opts && dash) {
					*dash = '\0';
					shared = strstr(opts, " shared:") != NULL;
				}
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	if (shared)
		CHECK(mount(NULL, op->strs[1], NULL, MS_PRIVATE, NULL));
}

/* The directory of `path` opened inside the root (made first when `create`); *name is
 * path's last component, to create relative to the returned fd. */
static int open_parent_in_root(const char *path, const char **name, int create)
{
	char parent[4096];
	size_t len = strlen(path);
	if (len >= sizeof(parent))
		fail(ENAMETOOLONG);
	memcpy(parent, path, len + 1);
	char *slash = strrchr(parent, '/');
	*name = path;
	if (slash) {
		*slash = '\0';
		*name = path + (slash - parent) + 1;
	} else {
		parent[0] = '\0';
	}
	if (create && parent[0])
		mkdir_in_root(parent, 0);
	int dfd = openat2_in_root(parent[0] ? parent : "/", O_PATH | O_DIRECTORY, 0);
	if (dfd < 0)
		fail(errno);
	return dfd;
}

static void op_mknod(const struct op *op)
{
	mode_t mode = (mode_t)get_int(op, 0);
	dev_t dev = (dev_t)get_int(op, 1);
	/* create the parent inside the root, then the node relative to the parent fd */
	const char *name;
	int dfd = open_parent_in_root(op->strs[0], &name, 1);
	/* an existing entry (the image's own node, or a planted symlink) is left alone, as
	 * runc does; mknodat never follows a symlink */
	if (mknodat(dfd, name, mode, dev) < 0) {
		if (errno != EEXIST)
			fail(errno);
	} else {
		CHECK(fchownat(dfd, name, (uid_t)get_int(op, 2), (gid_t)get_int(op, 3), AT_SYMLINK_NOFOLLOW));
	}
	close(dfd);
}

static void op_symlink(const struct op *op)
{
	if (!strchr(op->strs[1], '/'))
		fail(EINVAL);
	const char *name;
	int dfd = open_parent_in_root(op->strs[1], &name, 0);
	if (symlinkat(op->strs[0], dfd, name) < 0 && errno != EEXIST)
		fail(errno);
	close(dfd);
}

/* The directory the ops that resolve "in the root" start from: the rootfs before the
 * change of root, "/" after it. */
static void set_root(const char *path)
{
	if (root_fd >= 0)
		close(root_fd);
	root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		fail(errno);
}

static void op_pivot_root(void)
{
	/* runc's way: pivot_root(".", ".") stacks the old root on top of the new one; from
	 * the old root's fd, make it a slave (so its unmount doesn't propagate to the host)
	 * and detach it, without needing a directory inside the rootfs. */
	int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (old_root < 0)
		fail(errno);
	CHECK(fchdir(root_fd));
	CHECK(syscall(SYS_pivot_root, ".", "."));
	CHECK(fchdir(old_root));
	close(old_root);
	CHECK(mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL));
	CHECK(umount2(".", MNT_DETACH));
	CHECK(chdir("/"));
	set_root("/");
}

static void op_move_root(void)
{
	CHECK(fchdir(root_fd));
	CHECK(mount(".", "/", NULL, MS_MOVE, NULL));
	CHECK(chroot("."));
	CHECK(chdir("/"));
	set_root("/");
}

/* /dev/null inside the container, checked to be the real char device 1:3 so a
 * symlink or a planted file can't turn a masked path into a bind of something else. */
static int open_dev_null(void)
{
	int fd = openat2_in_root("/dev/null", O_PATH, RESOLVE_NO_SYMLINKS);
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* runc's reOpenDevNull: fds 0-2 that are /dev/null (the runtime's, a node on the host's
 * /dev) become the container's /dev/null, so nothing in the container holds a file on a
 * mount it can't see (CRIU refuses to dump such a file: "Can't lookup mount"). */
static void op_reopen_dev_null(void)
{
	int null_fd = -1;
	struct stat st;
	for (int fd = 0; fd < 3; fd++) {
		/* a closed fd stays closed */
		if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
			continue;
		if (null_fd < 0) {
			/* the real 1:3 node of the container (no symlink, no planted file);
			 * a container without one keeps the runtime's */
			null_fd = openat2_in_root("/dev/null", O_RDWR, RESOLVE_NO_SYMLINKS);
			if (null_fd < 0)
				return;
			if (fstat(null_fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
				close(null_fd);
				return;
			}
		}
		CHECK(dup3(null_fd, fd, 0));
	}
	if (null_fd >= 0)
		close(null_fd);
}

static void op_mask(const struct op *op)
{
	int fd = openat2_in_root(op->strs[0], O_PATH, 0);
	struct stat st;
	char target[64], source[64];
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail(errno);
	}
	CHECK(fstat(fd, &st));
	proc_fd_path(target, sizeof(target), fd);
	if (S_ISDIR(st.st_mode)) {
		/* strs[1]: the tmpfs's mount data (the SELinux mount label) */
		CHECK(mount("tmpfs", target, "tmpfs", MS_RDONLY, op->nstrs > 1 && op->lens[1] ? op->strs[1] : NULL));
	} else {
		int nfd = open_dev_null();
		if (nfd < 0)
			fail(errno);
		proc_fd_path(source, sizeof(source), nfd);
		CHECK(mount(source, target, NULL, MS_BIND, NULL));
		close(nfd);
	}
	close(fd);
}

static void op_readonly(const struct op *op)
{
	int fd = openat2_in_root(op->strs[0], O_PATH, 0);
	char target[64];
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail(errno);
	}
	proc_fd_path(target, sizeof(target), fd);
	CHECK(mount(target, target, NULL, MS_BIND | MS_REC, NULL));
	close(fd);
	/* reopen: the fd still points at the object under the new bind */
	fd = openat2_in_root(op->strs[0], O_PATH, 0);
	if (fd < 0)
		fail(errno);
	proc_fd_path(target, sizeof(target), fd);
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(target);
	CHECK(mount(NULL, target, NULL, flags, NULL));
	close(fd);
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			fail(errno);
		}
		buf += w;
		len -= (size_t)w;
	}
}

/* An fd of the root of a real procfs at <root>/proc (the current root before OP_ROOT):
 * reached without symlinks, PROC_SUPER_MAGIC, and its root inode, so a rootfs can plant
 * neither a fake /proc nor a bind of some procfs subdirectory there. */
static int open_procfs(void)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS,
	};
	int pfd = root_fd >= 0 ? openat2_in_root("/proc", O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS)
			       : (int)syscall(SYS_openat2, AT_FDCWD, "/proc", &how, sizeof(how));
	struct statfs sfs;
	struct stat st;
	if (pfd < 0)
		fail(errno);
	if (fstatfs(pfd, &sfs) < 0 || fstat(pfd, &st) < 0)
		fail(errno);
	if (sfs.f_type != PROC_SUPER_MAGIC || st.st_ino != PROC_ROOT_INO)
		fail(EXDEV);
	return pfd;
}

/* Open `path` below the procfs fd for writing: never leaving it, never through a magic
 * link, and with `no_xdev` never crossing a mount (an overmount can't redirect the write). */
static int open_in_procfs(int pfd, const char *path, uint64_t resolve)
{
	struct open_how how = {
		.flags = O_WRONLY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | resolve,
	};
	return (int)syscall(SYS_openat2, pfd, path, &how, sizeof(how));
}

static void op_sysctl(const struct op *op)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "sys/%s", op->strs[0]) >= (int)sizeof(path))
		fail(ENAMETOOLONG);
	int pfd = open_procfs();
	/* no mount crossed: a file bind-mounted over /proc/sys/... (by the config or by a
	 * hook racing us) is refused with EXDEV instead of written (CVE-2025-52881) */
	int fd = open_in_procfs(pfd, path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
	if (fd < 0)
		fail(errno);
	write_all(fd, op->strs[1], op->lens[1]);
	close(fd);
	close(pfd);
}

/* An LSM attribute of this thread (AppArmor's or SELinux's exec label, SELinux's
 * keycreate): the value goes to the first of the candidate files that exists, in one
 * write as the kernel wants it.  Only /proc's own thread-self symlink is followed. */
static void op_proc_attr(const struct op *op)
{
	int pfd = open_procfs();
	int fd = -1;
	errno = ENOENT;
	for (int i = 1; i < op->nstrs && fd < 0; i++) {
		fd = open_in_procfs(pfd, op->strs[i], RESOLVE_NO_XDEV);
		if (fd < 0 && errno != ENOENT)
			fail(errno);
	}
	if (fd < 0)
		fail(errno);
	ssize_t w;
	do {
		w = write(fd, op->strs[0], op->lens[0]);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		fail(errno);
	if ((size_t)w != op->lens[0])
		fail(EIO);
	close(fd);
	close(pfd);
}

/* setxattr on a path inside the root, never following a symlink at its end */
static void op_setxattr(const struct op *op)
{
	int fd = openat2_in_root(op->strs[0], O_PATH, RESOLVE_NO_SYMLINKS);
	char path[64];
	if (fd < 0)
		fail(errno);
	proc_fd_path(path, sizeof(path), fd);
	CHECK(setxattr(path, op->strs[1], op->strs[2], op->lens[2], 0));
	close(fd);
}

static void op_write_file(const struct op *op)
{
	int fd;
	if (!strncmp(op->strs[0], "/proc/", 6)) {
		/* a procfs file (timens_offsets): only the kernel's, never a file mounted over it */
		int pfd = open_procfs();
		fd = open_in_procfs(pfd, op->strs[0] + 6, RESOLVE_NO_XDEV);
		close(pfd);
	} else {
		fd = open(op->strs[0], O_WRONLY | O_CLOEXEC);
	}
	if (fd < 0)
		fail(errno);
	write_all(fd, op->strs[1], op->lens[1]);
	close(fd);
}

static void send_fd(int sock, int fd)
{
	char data = 'T';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	CHECK(sendmsg(sock, &msg, MSG_NOSIGNAL));
}

/* Bind the pty slave over /dev/console (CVE-2025-52565): the mount target is an fd of
 * the entry itself, never followed: a /dev/console that is a symlink (from the image, or
 * planted by a hook during create) is refused with ELOOP, a missing one is created as
 * a regular file with O_EXCL, and what gets mounted over is that verified file or the
 * image's device node. */
static void bind_console(const char *slave_path)
{
	int dfd = openat2_in_root("/dev", O_PATH | O_DIRECTORY, 0);
	struct stat st;
	char target[64];
	if (dfd < 0)
		fail(errno);
	int cfd = openat(dfd, "console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0 && errno == ENOENT) {
		int f = openat(dfd, "console", O_CREAT | O_EXCL | O_NOFOLLOW | O_RDONLY | O_CLOEXEC, 0666);
		if (f < 0)
			fail(errno);
		close(f);
		note_created("/dev/console");
		cfd = openat(dfd, "console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (cfd < 0)
		fail(errno);
	CHECK(fstat(cfd, &st));
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
		fail(S_ISLNK(st.st_mode) ? ELOOP : EINVAL);
	proc_fd_path(target, sizeof(target), cfd);
	CHECK(mount(slave_path, target, NULL, MS_BIND, NULL));
	close(cfd);
	close(dfd);
}

/* A pty from the container's own devpts, the master sent over the console socket as
 * runc does, the slave made the controlling terminal and stdio. */
static void op_console(const struct op *op)
{
	int sock = (int)get_int(op, 0);
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	int unlock = 0, ptn;
	char slave_path[64];
	if (master < 0)
		fail(errno);
	CHECK(ioctl(master, TIOCSPTLCK, &unlock));
	CHECK(ioctl(master, TIOCGPTN, &ptn));
	if (get_int(op, 1) > 0 && get_int(op, 2) > 0) {
		struct winsize ws = { .ws_row = (unsigned short)get_int(op, 1),
				      .ws_col = (unsigned short)get_int(op, 2) };
		CHECK(ioctl(master, TIOCSWINSZ, &ws));
	}
	/* the slave's path in this devpts instance */
	numbered_path(slave_path, sizeof(slave_path), "/dev/pts/", (unsigned)ptn);
	int slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		fail(errno);
	/* the terminal belongs to the process's user, its group stays the tty group
	 * (runc's fixStdioPermissions); EINVAL/EPERM: an id not mapped here, left as is */
	if (op->nints > 4 && get_int(op, 4) >= 0 &&
	    fchown(slave, (uid_t)get_int(op, 4), (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM)
		fail(errno);
	/* /dev/console: bind the slave over it; not for a process joining a running
	 * container (exec) */
	if (get_int(op, 3))
		bind_console(slave_path);
	send_fd(sock, master);
	close(master);
	close(sock);
	if (setsid() < 0 && errno != EPERM)
		fail(errno);
	CHECK(ioctl(slave, TIOCSCTTY, 0));
	CHECK(dup2(slave, 0));
	CHECK(dup2(slave, 1));
	CHECK(dup2(slave, 2));
	if (slave > 2)
		close(slave);
}

static void op_loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	if (s < 0)
		fail(errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	CHECK(ioctl(s, SIOCGIFFLAGS, &ifr));
	ifr.ifr_flags |= IFF_UP;
	CHECK(ioctl(s, SIOCSIFFLAGS, &ifr));
	close(s);
}

static int capset_sets(uint64_t eff, uint64_t perm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2] = {
		{ .effective = (uint32_t)eff, .permitted = (uint32_t)perm, .inheritable = (uint32_t)inh },
		{ .effective = (uint32_t)(eff >> 32), .permitted = (uint32_t)(perm >> 32),
		  .inheritable = (uint32_t)(inh >> 32) },
	};
	return (int)syscall(SYS_capset, &hdr, data);
}

static void op_bounding(const struct op *op)
{
	uint64_t keep = (uint64_t)get_int(op, 0);
	int last = (int)get_int(op, 1);
	for (int cap = 0; cap <= last; cap++) {
		if (keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			fail(errno);
	}
}

#ifndef PIPEFS_MAGIC
#define PIPEFS_MAGIC 0x50495045
#endif
#ifndef SOCKFS_MAGIC
#define SOCKFS_MAGIC 0x534F434B
#endif

/* runc's fixStdioPermissions, for what is safe to hand over: stdio that is an anonymous
 * pipe or socket (an engine's shim gives such) gets the process's uid, so that the
 * process can reopen it (/dev/stdout); the caller's files and devices are never chowned.
 * EINVAL/EPERM: an id not mapped in this user namespace, left as it is (runc). */
static void give_stdio(uid_t uid)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct stat st;
		struct statfs sfs;
		if (fstat(fd, &st) < 0 || st.st_uid == uid || fstatfs(fd, &sfs) < 0)
			continue;
		if (sfs.f_type != PIPEFS_MAGIC && sfs.f_type != SOCKFS_MAGIC)
			continue;
		if (fchown(fd, uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM)
			fail(errno);
	}
}

static int setgroups_denied(void)
{
	char buf[8] = {0};
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* no procfs, or a kernel without the file: setgroups is allowed */
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return r >= 4 && memcmp(buf, "deny", 4) == 0;
}

static void op_user(const struct op *op)
{
	uid_t uid = (uid_t)get_int(op, 0);
	gid_t gid = (gid_t)get_int(op, 1);
	int set_groups = (int)get_int(op, 2);
	gid_t groups[MAX_INTS];
	int n = 0;
	for (int i = 3; i < op->nints && n < MAX_INTS; i++)
		groups[n++] = (gid_t)get_int(op, i);
	/* keep the permitted set across setuid; OP_CAPSET sets the final sets */
	CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	/* a rootless user namespace whose runtime mapped only its own gid has setgroups
	 * "deny": runc skips the call there (setupUser's allowSupGroups); anywhere else a
	 * refusal (a seccomp profile's, say) fails the container */
	if (set_groups && !setgroups_denied())
		CHECK(setgroups((size_t)n, groups));
	CHECK(syscall(SYS_setresgid, gid, gid, gid));
	CHECK(syscall(SYS_setresuid, uid, uid, uid));
	CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
}

static void op_capset(const struct op *op)
{
	uint64_t eff = (uint64_t)get_int(op, 0), perm = (uint64_t)get_int(op, 1);
	uint64_t inh = (uint64_t)get_int(op, 2), amb = (uint64_t)get_int(op, 3);
	CHECK(capset_sets(eff, perm, inh));
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	for (int cap = 0; cap < 64; cap++)
		if (amb & (1ULL << cap))
			CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));
}

static void op_seccomp(const struct op *op)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(op->lens[0] / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)(uintptr_t)op->strs[0],
	};
	unsigned flags = (unsigned)get_int(op, 0);
	long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (listener < 0)
		fail(errno);
	if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
		/* the runtime takes a copy for the agent at listenerPath before we exec */
		send_msg(MSG_SECCOMP_FD, (int)listener, 0);
		wait_ack();
		close((int)listener);
	}
}

/* Block until `pyrunc start` opens the exec fifo for reading (runc's exec fifo): the
 * open(2) for writing of our O_PATH fd, reopened through /proc/self/fd, returns then.
 * open, write and close are all this needs after the seccomp filter, calls every
 * profile a program can run under allows; and it needs no privilege over this process
 * (a rootless `start` cannot ptrace a non-dumpable init).  One byte says the fifo is
 * ours; the fd stays open, close-on-exec: `start` reads until EOF, which comes with a
 * successful execve, or reads the error record a failing one writes before we exit. */
static int proc_fds = -1; /* OP_OPEN_PROC_FDS: our /proc/self/fd, opened before the pivot */

static void op_wait_exec_fifo(const struct op *op)
{
	int path_fd = (int)get_int(op, 0), fifo;
	char path[32];
	ssize_t r;
	struct sigaction ignore = { .sa_handler = SIG_IGN }, before;
	/* through the /proc/self/fd opened before the pivot (the container may have no
	 * procfs: no mount namespace, or none mounted), else the container's */
	if (proc_fds >= 0)
		snprintf(path, sizeof(path), "%d", path_fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fd/%d", path_fd);
	do {
		fifo = openat(proc_fds >= 0 ? proc_fds : AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
	} while (fifo < 0 && errno == EINTR);
	if (fifo < 0)
		_exit(1); /* create has returned: `start` finds the init gone */
	close(path_fd);
	if (proc_fds >= 0)
		close(proc_fds);
	/* a `start` killed right after its open must not kill us with SIGPIPE: the open was
	 * the go; the program runs (its disposition of SIGPIPE is restored first) */
	sigaction(SIGPIPE, &ignore, &before);
	do {
		r = write(fifo, "0", 1);
	} while (r < 0 && errno == EINTR);
	sigaction(SIGPIPE, &before, NULL);
	/* later failures (the execve's) go to `start` */
	sync_fd = fifo;
}

static char exec_file[4096];
static char *home_for(long uid);
static const char *exec_home; /* HOME=... for OP_EXEC when its env has none */

/* execvp's search, with the container's PATH: done before `start` so that create fails
 * on a missing program, as runc's does.  The HOME default is read here too, before the
 * wait for `start` (and, with no_new_privs, before the seccomp filter). */
static void op_lookup(const struct op *op)
{
	const char *file = op->strs[0];
	if (op->nints > 0 && get_int(op, 0) >= 0)
		exec_home = home_for((long)get_int(op, 0));
	size_t flen = strlen(file);
	if (!flen)
		fail(ENOENT);
	if (strchr(file, '/')) {
		struct stat st;
		if (flen >= sizeof(exec_file))
			fail(ENAMETOOLONG);
		memcpy(exec_file, file, flen + 1);
		if (stat(exec_file, &st) < 0)
			fail(errno);
		if (!S_ISREG(st.st_mode) || access(exec_file, X_OK) < 0)
			fail(EACCES);
		return;
	}
	const char *p = op->lens[1] ? op->strs[1]
		: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int saw_eacces = 0;
	for (;;) {
		const char *end = strchr(p, ':');
		size_t dlen = end ? (size_t)(end - p) : strlen(p);
		if (dlen + flen + 2 <= sizeof(exec_file)) {
			size_t off = 0;
			if (dlen) {
				memcpy(exec_file, p, dlen);
				exec_file[dlen] = '/';
				off = dlen + 1;
			}
			memcpy(exec_file + off, file, flen + 1);
			struct stat st;
			if (stat(exec_file, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(exec_file, X_OK) == 0)
					return;
				saw_eacces = 1;
			}
		}
		if (!end)
			break;
		p = end + 1;
	}
	fail(saw_eacces ? EACCES : ENOENT);
}

/* HOME=<home of uid in the container's /etc/passwd>, or HOME=/ (runc's rule). */
static char *home_for(long uid)
{
	static char home[4200];
	char buf[65536];
	strcpy(home, "HOME=/");
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return home;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return home;
	buf[n] = '\0';
	for (char *line = buf; line && *line;) {
		char *eol = strchr(line, '\n');
		if (eol)
			*eol = '\0';
		/* name:passwd:uid:gid:gecos:home:shell */
		char *field[7] = { line };
		int nf = 1;
		for (char *c = line; *c && nf < 7; c++)
			if (*c == ':') {
				*c = '\0';
				field[nf++] = c + 1;
			}
		if (nf >= 6 && field[2][0] && strtol(field[2], NULL, 10) == uid &&
		    strlen(field[5]) < sizeof(home) - 6) {
			snprintf(home, sizeof(home), "HOME=%s", field[5]);
			break;
		}
		line = eol ? eol + 1 : NULL;
	}
	return home;
}

static void op_exec(const struct op *op)
{
	/* static, not allocated: nothing after the seccomp filter needs brk or mmap */
	static char *argv[MAX_STRS + 1], *envp[MAX_STRS + 2];
	int argc = (int)get_int(op, 0);
	int nenv = op->nstrs - argc;
	for (int i = 0; i < argc; i++)
		argv[i] = (char *)op->strs[i];
	argv[argc] = NULL;
	int has_home = 0;
	for (int i = 0; i < nenv; i++) {
		envp[i] = (char *)op->strs[argc + i];
		has_home |= !strncmp(envp[i], "HOME=", 5);
	}
	envp[nenv] = !has_home && exec_home ? (char *)exec_home : NULL;
	envp[nenv + 1] = NULL;
	execve(exec_file[0] ? exec_file : argv[0], argv, envp);
	fail(errno);
}

static int parse_int(const char *s)
{
	int v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

static char *read_plan(int fd, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	*len = (size_t)st.st_size;
	char *buf = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
	return buf == MAP_FAILED ? NULL : buf;
}

static int decode_op(const char **pp, const char *end, struct op *op)
{
	const char *p = *pp;
	if (end - p < 8)
		return -1;
	memcpy(&op->code, p, 4);
	memcpy(&op->nints, p + 4, 2);
	memcpy(&op->nstrs, p + 6, 2);
	p += 8;
	if (op->nstrs > MAX_STRS || (size_t)(end - p) < 8u * op->nints)
		return -1;
	op->ints_raw = p;
	p += 8 * op->nints;
	for (int i = 0; i < op->nstrs; i++) {
		uint32_t l;
		if (end - p < 4)
			return -1;
		memcpy(&l, p, 4);
		p += 4;
		if ((size_t)(end - p) < (size_t)l + 1)
			return -1;
		op->strs[i] = p;
		op->lens[i] = l;
		p += l + 1;
	}
	*pp = p;
	return 0;
}

static void reset_signals(void)
{
	sigset_t none;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	/* the interpreter ignores SIGPIPE, and ignored signals survive execve */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* struct sched_attr of sched_setattr(2), SCHED_ATTR_SIZE_VER0 */
struct sched_attr_v0 {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
};

static void op_sched_setattr(const struct op *op)
{
	struct sched_attr_v0 attr = {
		.size = sizeof(attr),
		.sched_policy = (uint32_t)get_int(op, 0),
		.sched_flags = (uint64_t)get_int(op, 1),
		.sched_nice = (int32_t)get_int(op, 2),
		.sched_priority = (uint32_t)get_int(op, 3),
		.sched_runtime = (uint64_t)get_int(op, 4),
		.sched_deadline = (uint64_t)get_int(op, 5),
		.sched_period = (uint64_t)get_int(op, 6),
	};
	CHECK(syscall(SYS_sched_setattr, 0, &attr, 0));
}

static struct op op;

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	/* not dumpable: container processes must not ptrace us or open /proc/<us>/exe */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* an exec of a memfd names the process after the fd; `state` tells a created
	 * container (still this program) from a running one by this name */
	prctl(PR_SET_NAME, "pyrunc-init", 0, 0, 0);
	/* device nodes and mount points get exactly the modes the plan asks for */
	umask(0);
	reset_signals();
	sync_fd = parse_int(argv[1]);
	int plan_fd = parse_int(argv[2]);
	size_t len;
	char *plan = read_plan(plan_fd, &len);
	if (!plan || len < 12 || memcmp(plan, PLAN_MAGIC, 4))
		fail(EINVAL);
	close(plan_fd);
	uint32_t version, nops;
	memcpy(&version, plan + 4, 4);
	/* a plan from a pyrunc whose ops differ from this init's: run none of it */
	if (version != PLAN_VERSION)
		fail(EPROTONOSUPPORT);
	memcpy(&nops, plan + 8, 4);
	const char *p = plan + 12, *end = plan + len;

	for (uint32_t i = 0; i < nops; i++) {
		current_op = (int)i;
		forget_created();
		if (decode_op(&p, end, &op) < 0)
			fail(EINVAL);
		switch (op.code) {
		case OP_SYNC:
			send_msg(MSG_SYNC, (int)get_int(&op, 0), 0);
			wait_ack();
			break;
		case OP_SETNS: {
			int fd = open(op.strs[0], O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				fail(errno);
			CHECK(setns(fd, (int)get_int(&op, 0)));
			close(fd);
			break;
		}
		case OP_UNSHARE:
			CHECK(unshare((int)get_int(&op, 0)));
			break;
		case OP_SETRESID:
			CHECK(syscall(SYS_setresgid, (gid_t)get_int(&op, 1), (gid_t)get_int(&op, 1),
				      (gid_t)get_int(&op, 1)));
			CHECK(syscall(SYS_setresuid, (uid_t)get_int(&op, 0), (uid_t)get_int(&op, 0),
				      (uid_t)get_int(&op, 0)));
			break;
		case OP_FORK: {
			pid_t pid = fork();
			if (pid < 0)
				fail(errno);
			if (pid > 0) {
				/* the runtime adopts the child (it is a subreaper or the child is
				 * reparented to the engine's); this process is done */
				send_msg(MSG_PID, pid, 0);
				_exit(0);
			}
			/* die with the runtime while it still sets us up */
			break;
		}
		case OP_WRITE_FILE:
			op_write_file(&op);
			break;
		case OP_ROOT:
			set_root(op.strs[0]);
			break;
		case OP_MOUNT:
			op_mount(&op);
			break;
		case OP_MKNOD:
			op_mknod(&op);
			break;
		case OP_SYMLINK:
			op_symlink(&op);
			break;
		case OP_PIVOT_ROOT:
			op_pivot_root();
			break;
		case OP_MOVE_ROOT:
			op_move_root();
			break;
		case OP_MASK:
			op_mask(&op);
			break;
		case OP_READONLY:
			op_readonly(&op);
			break;
		case OP_SYSCTL:
			op_sysctl(&op);
			break;
		case OP_HOSTNAME:
			CHECK(sethostname(op.strs[0], op.lens[0]));
			break;
		case OP_DOMAINNAME:
			CHECK(setdomainname(op.strs[0], op.lens[0]));
			break;
		case OP_RLIMIT: {
			struct rlimit rl = { .rlim_cur = (rlim_t)get_int(&op, 1),
					     .rlim_max = (rlim_t)get_int(&op, 2) };
			CHECK(setrlimit((int)get_int(&op, 0), &rl));
			break;
		}
		case OP_CONSOLE:
			op_console(&op);
			break;
		case OP_CHDIR:
			CHECK(chdir(op.strs[0]));
			break;
		case OP_NO_NEW_PRIVS:
			CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
			break;
		case OP_BOUNDING:
			op_bounding(&op);
			break;
		case OP_USER:
			op_user(&op);
			break;
		case OP_CAPSET:
			op_capset(&op);
			break;
		case OP_SECCOMP:
			op_seccomp(&op);
			break;
		case OP_CLOSE_FDS:
			CHECK(syscall(SYS_close_range, (unsigned)get_int(&op, 0), ~0U, CLOSE_RANGE_CLOEXEC));
			if (op.nints > 1 && get_int(&op, 1) >= 0)
				give_stdio((uid_t)get_int(&op, 1));
			break;
		case OP_OPEN_PROC_FDS:
			/* none (no procfs here): the container's is tried at the wait */
			proc_fds = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
			break;
		case OP_DUMPABLE:
			CHECK(prctl(PR_SET_DUMPABLE, (unsigned long)get_int(&op, 0), 0, 0, 0));
			break;
		case OP_WAIT_EXEC_FIFO:
			op_wait_exec_fifo(&op);
			break;
		case OP_EXEC:
			op_exec(&op);
			break;
		case OP_UMASK:
			umask((mode_t)get_int(&op, 0));
			break;
		case OP_REOPEN_DEV_NULL:
			op_reopen_dev_null();
			break;
		case OP_SETSID:
			if (setsid() < 0 && errno != EPERM)
				fail(errno);
			break;
		case OP_READY:
			send_msg(MSG_READY, 0, 0);
			break;
		case OP_CHROOT:
			CHECK(fchdir(root_fd));
			CHECK(chroot("."));
			CHECK(chdir("/"));
			break;
		case OP_LOOKUP:
			op_lookup(&op);
			break;
		case OP_MKDIR:
			mkdir_in_root(op.strs[0], 0);
			break;
		case OP_PROC_ATTR:
			op_proc_attr(&op);
			break;
		case OP_SETXATTR:
			op_setxattr(&op);
			break;
		case OP_OPEN_TREE:
			op_open_tree(&op);
			break;
		case OP_HIDE_MOUNT:
			op_hide_mount(&op);
			break;
		case OP_USERNS_FD:
			op_userns_fd(&op);
			break;
		case OP_IDMAP_TREE:
			op_idmap_tree(&op);
			break;
		case OP_MOUNT_SETATTR:
			op_mount_setattr(&op);
			break;
		case OP_PRIVATE_IF_SHARED:
			op_private_if_shared(&op);
			break;
		case OP_KEYRING:
			/* KEYCTL_JOIN_SESSION_KEYRING; kernels without keys are fine (runc) */
			if (syscall(SYS_keyctl, 1, op.strs[0]) < 0 && errno != ENOSYS)
				fail(errno);
			break;
		case OP_LOOPBACK_UP:
			op_loopback_up();
			break;
		case OP_DUP2:
			CHECK(dup2((int)get_int(&op, 0), (int)get_int(&op, 1)));
			break;
		case OP_PERSONALITY:
			CHECK(personality((unsigned long)get_int(&op, 0)));
			break;
		case OP_SCHED_SETATTR:
			op_sched_setattr(&op);
			break;
		case OP_IOPRIO_SET:
			/* IOPRIO_WHO_PROCESS = 1, this process */
			CHECK(syscall(SYS_ioprio_set, 1, 0, (int)get_int(&op, 0)));
			break;
		case OP_SET_MEMPOLICY:
			/* the kernel reads maxnode - 1 bits */
			CHECK(syscall(SYS_set_mempolicy, (int)get_int(&op, 0),
				      op.lens[0] ? (const unsigned long *)op.strs[0] : NULL,
				      op.lens[0] ? (unsigned long)op.lens[0] * 8 + 1 : 0UL));
			break;
		case OP_SCHED_AFFINITY:
			CHECK(syscall(SYS_sched_setaffinity, 0, (size_t)op.lens[0], op.strs[0]));
			break;
		default:
			fail(ENOSYS);
		}
	}
	current_op = -1;
	fail(ENOEXEC); /* a plan must end in OP_EXEC */
}
