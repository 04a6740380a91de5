"""cffi build script (out-of-line API mode): `pyrunc._native._seccomp`, linked with -lseccomp.

Kept apart from build.py (`pyrunc._native._lib`) so that the spawn path never maps
libseccomp: only `pyrunc.seccomp.compile_filter` loads this module, and only when its
cache has no program for the profile.  setup.py names it in `cffi_modules`.
"""
import os

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
typedef void *scmp_filter_ctx;

enum scmp_filter_attr {
    SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP, SCMP_FLTATR_CTL_TSYNC,
    SCMP_FLTATR_CTL_LOG, SCMP_FLTATR_CTL_SSB, SCMP_FLTATR_CTL_OPTIMIZE,
    SCMP_FLTATR_API_SYSRAWRC, ...
};
enum scmp_compare {
    SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT,
    SCMP_CMP_MASKED_EQ, ...
};
struct scmp_arg_cmp {
    unsigned int arg;
    enum scmp_compare op;
    uint64_t datum_a;
    uint64_t datum_b;
};

#define __NR_SCMP_ERROR ...

const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
uint32_t seccomp_arch_native(void);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);

const char *pyrunc_libseccomp_path(void);
int pyrunc_seccomp_flag_supported(unsigned int flag);
int pyrunc_seccomp_load(const void *program, size_t size, unsigned int flags);
""")
ffibuilder.set_source(
    "pyrunc._native._seccomp",
    r"""
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

/* The file the dynamic linker mapped libseccomp from: its identity (not the header the
 * module was compiled with) is what a cached program must match. */
static const char *pyrunc_libseccomp_path(void)
{
	Dl_info info;
	if (dladdr((void *)seccomp_version, &info) == 0 || info.dli_fname == NULL)
		return "";
	return info.dli_fname;
}

/* 1 when the kernel accepts this combination of SECCOMP_FILTER_FLAG_* bits: with a NULL
 * program known flags fail with EFAULT, unknown ones (or a bad mix) with EINVAL. */
static int pyrunc_seccomp_flag_supported(unsigned int flag)
{
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, NULL);
	return rc < 0 && errno == EFAULT;
}

/* Load a struct sock_filter[] program into the calling thread, as pyrunc-init does
 * (tests only: the runtime itself never filters its own process).  Returns the
 * seccomp() result (a listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER) or -errno. */
static int pyrunc_seccomp_load(const void *program, size_t size, unsigned int flags)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(size / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)program,
	};
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	return rc < 0 ? -errno : (int)rc;
}
""",
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    # Development build: compile in a scratch directory and put only the extension next
    # to this file (the generated C stays out of the source tree).
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        built = ffibuilder.compile(tmpdir=scratch, verbose=False)
        shutil.copy(built, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.path.basename(built)))
