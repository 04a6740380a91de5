/* pyrunc-probe: perform one raw syscall inside a container and report the result.
 *
 *   pyrunc-probe syscall NR [ARG...]   any syscall by number
 *   pyrunc-probe NAME [ARG...]         a syscall by name (the table below)
 *   pyrunc-probe caps                  the capability sets of this process (capget)
 *
 * An ARG that parses as an integer (strtoll/strtoull, base 0: 0x.., 0..., -1) is passed
 * as that number; "s:TEXT" or anything else is passed as a pointer to the string.
 *
 * Output, one line on stdout, made to be parsed:
 *   ret=<value> errno=0                 on success
 *   ret=-1 errno=<n> <ENAME>            on failure
 * Exit status 0 on success, 1 when the syscall failed, 2 on a usage error.
 *
 * Static (built by setup.py like pyrunc-init) so it runs in any rootfs; it uses the raw
 * syscall(2) so that libc never substitutes a different call (open -> openat).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>

struct named { const char *name; long nr; };

#define N(x) { #x, SYS_##x }
static const struct named table[] = {
#ifdef __x86_64__
	/* the legacy calls newer architectures do not have */
	N(open), N(stat), N(mkdir), N(rmdir), N(unlink), N(chmod), N(chown), N(mknod),
	N(ioperm), N(iopl), N(time),
#endif
	N(read), N(write), N(close), N(getpid), N(getppid), N(getuid),
	N(mkdirat), N(unlinkat), N(fchmodat), N(mount), N(umount2), N(chroot),
	N(pivot_root), N(unshare), N(setns), N(socket), N(personality), N(ptrace), N(reboot),
	N(sethostname), N(setdomainname), N(kill), N(keyctl), N(add_key), N(bpf),
	N(perf_event_open), N(mknodat), N(acct), N(swapon), N(swapoff), N(init_module),
	N(delete_module), N(kexec_load), N(syslog), N(settimeofday), N(clock_settime),
	N(uname), N(getcwd), N(setuid), N(setgid), N(capset),
	N(userfaultfd), N(io_uring_setup), N(clone3), N(faccessat2), N(openat2),
	N(open_tree), N(move_mount), N(fsopen), N(pidfd_open), N(mlock),
	N(setpriority), N(sched_setscheduler), N(quotactl), N(lookup_dcookie),
	N(name_to_handle_at), N(open_by_handle_at), N(process_vm_readv), N(kcmp),
	N(fanotify_init), N(vhangup), N(getrandom), N(memfd_create),
	N(sysinfo), N(nanosleep), N(futex), N(sched_yield),
};

static const char *errno_name(int e)
{
	switch (e) {
#define E(x) case x: return #x
	E(EPERM); E(ENOENT); E(ESRCH); E(EINTR); E(EIO); E(ENXIO); E(E2BIG); E(ENOEXEC);
	E(EBADF); E(ECHILD); E(EAGAIN); E(ENOMEM); E(EACCES); E(EFAULT); E(ENOTBLK);
	E(EBUSY); E(EEXIST); E(EXDEV); E(ENODEV); E(ENOTDIR); E(EISDIR); E(EINVAL);
	E(ENFILE); E(EMFILE); E(ENOTTY); E(ETXTBSY); E(EFBIG); E(ENOSPC); E(ESPIPE);
	E(EROFS); E(EMLINK); E(EPIPE); E(EDOM); E(ERANGE); E(ENOSYS); E(ENOTEMPTY);
	E(ENAMETOOLONG); E(ELOOP); E(ENOMSG); E(EAFNOSUPPORT); E(EPROTONOSUPPORT);
	E(EOPNOTSUPP);
	E(ECONNREFUSED); E(ETIMEDOUT); E(ENOTSOCK); E(EADDRINUSE); E(EUSERS);
#undef E
	default: return "E?";
	}
}

static long parse_arg(const char *text)
{
	if (strncmp(text, "s:", 2) == 0)
		return (long)(text + 2);
	char *end;
	errno = 0;
	long value;
	if (text[0] == '-')
		value = strtoll(text, &end, 0);
	else
		value = (long)strtoull(text, &end, 0);
	if (*text && *end == '\0' && errno == 0)
		return value;
	return (long)text;
}

static int report(long ret, int err)
{
	if (ret == -1 && err) {
		printf("ret=-1 errno=%d %s\n", err, errno_name(err));
		fflush(stdout);
		return 1;
	}
	printf("ret=%ld errno=0\n", ret);
	fflush(stdout);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: pyrunc-probe syscall NR [ARG...] | NAME [ARG...] | caps\n");
	return 2;
}

static int caps(void)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &header, data) < 0)
		return report(-1, errno);
	unsigned long long eff = ((unsigned long long)data[1].effective << 32) | data[0].effective;
	unsigned long long prm = ((unsigned long long)data[1].permitted << 32) | data[0].permitted;
	unsigned long long inh = ((unsigned long long)data[1].inheritable << 32) | data[0].inheritable;
	printf("effective=%016llx permitted=%016llx inheritable=%016llx\n", eff, prm, inh);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "caps") == 0)
		return caps();
	long nr = -1;
	int first = 2;
	if (strcmp(argv[1], "syscall") == 0) {
		if (argc < 3)
			return usage();
		char *end;
		nr = strtol(argv[2], &end, 0);
		if (*end)
			return usage();
		first = 3;
	} else {
		for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
			if (strcmp(table[i].name, argv[1]) == 0)
				nr = table[i].nr;
		if (nr < 0) {
			fprintf(stderr, "pyrunc-probe: unknown syscall name %s (use: syscall NR)\n", argv[1]);
			return 2;
		}
	}
	long a[6] = { 0, 0, 0, 0, 0, 0 };
	for (int i = first; i < argc && i - first < 6; i++)
		a[i - first] = parse_arg(argv[i]);
	errno = 0;
	long ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	return report(ret, ret == -1 ? errno : 0);
}
