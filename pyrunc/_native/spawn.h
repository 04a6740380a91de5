#ifndef PYRUNC_SPAWN_H
#define PYRUNC_SPAWN_H
/* Returns the child's pid (and a pidfd in *pidfd), or -errno. */
int pyrunc_spawn(int exec_fd, char *argv[], char *envp[], int keep_fds[], int nkeep,
		 unsigned long flags, int cgroup_fd, int *pidfd);
/* A copy of another process's fd (pidfd_getfd), or -errno. */
int pyrunc_pidfd_getfd(int pidfd, int fd);
#endif
