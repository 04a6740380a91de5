"""cffi build script (out-of-line API mode): `pyrunc._native._lib`.

setup.py names it in `cffi_modules`; the static init binary is built by setup.py too.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
ffibuilder.cdef("""
int pyrunc_spawn(int exec_fd, char *argv[], char *envp[], int keep_fds[], int nkeep,
                 unsigned long flags, int cgroup_fd, int *pidfd);
int pyrunc_pidfd_getfd(int pidfd, int fd);
int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
          unsigned long arg5);
""")
ffibuilder.set_source(
    "pyrunc._native._lib",
    '#include <sys/prctl.h>\n#include "spawn.h"',
    sources=[os.path.join(HERE, "spawn.c")],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
