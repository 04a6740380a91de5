/* The runtime's side of clone → exec: start a child that execs the init binary at once.
 *
 * CLONE_VM|CLONE_VFORK (as posix_spawn does) so that nothing of the interpreter is
 * copied; the child runs only async-signal-safe calls on its own small stack and
 * reports a failed exec through memory it shares with the parent.  Namespaces asked
 * for in `flags` are created by the clone itself.
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

int pyrunc_spawn(int exec_fd, char *argv[], char *envp[], int keep_fds[], int nkeep,
		 unsigned long flags, int *pidfd)
{
	const size_t stack_size = 64 * 1024;
	struct child_args a = { exec_fd, argv, envp, keep_fds, nkeep, 0 };
	sigset_t all, old;
	char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	/* no interpreter signal handler may run in the child on the shared memory */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	*pidfd = -1;
	int pid = clone(child_main, stack + stack_size,
			(int)(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | flags), &a, pidfd);
	int clone_err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, stack_size);
	if (pid < 0)
		return -clone_err;
	if (a.err) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (*pidfd >= 0)
			close(*pidfd);
		*pidfd = -1;
		return -a.err;
	}
	return pid;
}

int pyrunc_pidfd_getfd(int pidfd, int fd)
{
	long r = syscall(438 /* SYS_pidfd_getfd */, pidfd, fd, 0);
	return r < 0 ? -errno : (int)r;
}
