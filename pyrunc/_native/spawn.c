/* The runtime's side of clone → exec: start a child that execs the init binary at once.
 *
 * CLONE_VM|CLONE_VFORK (as posix_spawn does) so that nothing of the interpreter is
 * copied; the child runs only async-signal-safe calls on its own small stack and
 * reports a failed exec through memory it shares with the parent.  Namespaces asked
 * for in `flags` are created by the clone itself.
 *
 * With a cgroup2 directory fd the child is born in that cgroup (clone3
 * CLONE_INTO_CGROUP, Linux 5.7): no write to cgroup.procs, so no wait for the RCU grace
 * period such a migration costs (5-20 ms).  glibc has no clone3 wrapper that switches
 * stacks, so that variant is fork-like (no CLONE_VM, the child on a copy of this stack,
 * as crun does) and reports a failed exec through a MAP_SHARED page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* struct clone_args of <linux/sched.h> (CLONE_ARGS_SIZE_VER2: up to `cgroup`) */
struct clone3_args {
	unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
		tls, set_tid, set_tid_size, cgroup;
};

struct child_args {
	int exec_fd;
	char *const *argv;
	char *const *envp;
	const int *keep_fds;
	int nkeep;
	volatile int err;
};

static int child_main(void *data)
{
	struct child_args *a = data;
	for (int i = 0; i < a->nkeep; i++) {
		if (fcntl(a->keep_fds[i], F_SETFD, 0) < 0) {
			a->err = errno;
			_exit(127);
		}
	}
	syscall(SYS_execveat, a->exec_fd, "", a->argv, a->envp, AT_EMPTY_PATH);
	a->err = errno;
	_exit(127);
}

static int clone_vm(struct child_args *a, unsigned long flags, int *pidfd)
{
	const size_t stack_size = 64 * 1024;
	char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	int pid = clone(child_main, stack + stack_size,
			(int)(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | flags), a, pidfd);
	int err = errno;
	munmap(stack, stack_size);
	return pid < 0 ? -err : pid;
}

static int clone_into_cgroup(struct child_args *a, unsigned long flags, int cgroup_fd, int *pidfd)
{
	struct clone3_args args = {
		.flags = CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP | flags,
		.pidfd = (unsigned long long)(unsigned long)pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (unsigned long long)cgroup_fd,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		child_main(a); /* does not return */
	return pid < 0 ? -errno : (int)pid;
}

int pyrunc_spawn(int exec_fd, char *argv[], char *envp[], int keep_fds[], int nkeep,
		 unsigned long flags, int cgroup_fd, int *pidfd)
{
	/* shared with the child either way (CLONE_VM or not): it reports a failed exec here */
	struct child_args *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return -errno;
	*a = (struct child_args){ exec_fd, argv, envp, keep_fds, nkeep, 0 };
	sigset_t all, old;
	/* no interpreter signal handler may run in the child (on the shared memory, or
	 * on a copy of an interpreter that another thread may have left mid-update) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	*pidfd = -1;
	int pid = cgroup_fd >= 0 ? clone_into_cgroup(a, flags, cgroup_fd, pidfd)
				 : clone_vm(a, flags, pidfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	int exec_err = a->err;
	munmap(a, sizeof(*a));
	if (pid < 0)
		return pid;
	if (exec_err) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (*pidfd >= 0)
			close(*pidfd);
		*pidfd = -1;
		return -exec_err;
	}
	return pid;
}

int pyrunc_pidfd_getfd(int pidfd, int fd)
{
	long r = syscall(438 /* SYS_pidfd_getfd */, pidfd, fd, 0);
	return r < 0 ? -errno : (int)r;
}
