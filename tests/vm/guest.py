#!/usr/bin/env python3
"""Run a command inside a throw-away pure-cgroup-v2 guest (qemu TCG) that sees this host's
filesystem read-only, and exit with the command's exit status.

This host is hybrid (v1 controllers, cgroup2 with hugetlb only) and its kernel cannot be
switched, so the unified-only behaviour of pyrunc's cgroup code is tested in a guest:

    host                                   guest (Debian's generic kernel, TCG)
    ----                                   -----------------------------------
    build an initramfs: static busybox,    stage 1 (/init, pid 1): proc/sys/devtmpfs, insmod
      /init, stage2, the command, the        virtio+9p+overlay, mount host / (9p, read-only),
      virtio/9p/overlay modules              tmpfs overlay on top, move the API mounts over,
    qemu -kernel /boot/vmlinuz-<ver>         switch_root into it
      -virtfs path=/ (read-only)           stage 2 (pid 1 in the new root): mount ONLY cgroup2
      cgroup_no_v1=all                       at /sys/fs/cgroup, move itself into init.scope,
    read the serial console, relay it,       enable every controller in the root's
      parse the exit line                    subtree_control, run the command, print its exit
                                             status, power off

Lines the guest prints for the host carry a per-run nonce, so nothing the command prints can
be mistaken for them. Nothing is written on the host except the initramfs in a temporary
directory; the guest writes only into its tmpfs overlay.

Usage (as root; the command defaults to the focused cgroup test subset, see DEFAULT_TESTS):

    tests/vm/guest.py                           # the default pytest subset, from the checkout
    tests/vm/guest.py --tests tests/integration/test_cgroups_placement.py -- -x -q
    tests/vm/guest.py --cgroup /system.slice/tests.service -- ...
    tests/vm/guest.py --command -- sh -c 'cat /sys/fs/cgroup/cgroup.subtree_control'
    tests/vm/guest.py --kernel-arg security=selinux --tests tests/vm/guest_lsm.py
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent.parent
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"

# The cgroup tests that matter for a unified-only host, plus a lifecycle smoke. Files that
# do not exist (yet) are left out, so the list may name tests still being written.
DEFAULT_TESTS = (
    "tests/integration/test_cgroups_placement.py",
    "tests/integration/test_cgroups_resources.py",
    "tests/integration/test_update_events.py",
    "tests/vm/guest_smoke.py",
    "tests/vm/guest_rdma.py",
)

# Modules the guest needs before it can mount its root (and see its scratch disk), loaded
# with their dependencies (modules.dep) first. Anything built into the kernel is skipped.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk")

# Kernel command line: the serial console, no v1 hierarchies at all, and a few huge pages
# so hugetlb limits can be exercised. panic=-1 with -no-reboot makes qemu exit on a panic.
KERNEL_ARGS = (
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "cgroup_no_v1=all",
    "systemd.unified_cgroup_hierarchy=1",
    "hugepagesz=2M",
    "hugepages=16",
    "tsc=reliable",
)

NINEP_OPTIONS = "trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144"

DEFAULT_TIMEOUT = 270.0


class GuestError(Exception):
    """The guest could not be built, booted, or did not report an exit status."""


@dataclasses.dataclass
class Kernel:
    version: str
    image: Path
    modules_dir: Path


@dataclasses.dataclass
class GuestResult:
    exit_code: int
    boot_seconds: Optional[float]  # host wall clock from qemu start to the guest's READY line
    guest_uptime_at_ready: Optional[float]  # the guest's /proc/uptime at that moment
    total_seconds: float  # qemu start to qemu exit
    controllers: str  # cgroup.subtree_control of the guest's root, as the guest saw it
    output: str  # everything the console printed, \r\n normalised


# ---------------------------------------------------------------------------------------
# Finding the pieces


def _version_key(version: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"[.\-+~]", version)]


def _module_paths(modules_dir: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) → .ko file, from modules.dep."""
    paths = {}
    dep = modules_dir / "modules.dep"
    for line in dep.read_text().splitlines():
        target = line.split(":", 1)[0]
        name = os.path.basename(target).split(".ko", 1)[0].replace("-", "_")
        paths[name] = modules_dir / target
    return paths


def _builtin_modules(modules_dir: Path) -> set[str]:
    try:
        text = (modules_dir / "modules.builtin").read_text()
    except FileNotFoundError:
        return set()
    return {os.path.basename(line).split(".ko", 1)[0].replace("-", "_") for line in text.split()}


def find_kernel() -> Kernel:
    """The newest /boot/vmlinuz-<ver> whose /lib/modules/<ver> can mount a 9p root (the
    `-cloud` flavour has no 9p, for instance). PYRUNC_VM_KERNEL=<image> overrides."""
    override = os.environ.get("PYRUNC_VM_KERNEL")
    candidates: list[tuple[str, Path]] = []
    if override:
        image = Path(override)
        version = image.name.split("vmlinuz-", 1)[-1]
        candidates.append((version, image))
    else:
        for image in Path("/boot").glob("vmlinuz-*"):
            candidates.append((image.name[len("vmlinuz-"):], image))
        candidates.sort(key=lambda c: _version_key(c[0]), reverse=True)
    reasons = []
    for version, image in candidates:
        modules_dir = Path("/lib/modules") / version
        if not os.access(image, os.R_OK):
            reasons.append(f"{image}: not readable")
            continue
        if not (modules_dir / "modules.dep").is_file():
            reasons.append(f"{modules_dir}/modules.dep: missing")
            continue
        known = set(_module_paths(modules_dir)) | _builtin_modules(modules_dir)
        missing = [m for m in ROOT_MODULES if m not in known]
        if missing:
            reasons.append(f"{image}: no module {', '.join(missing)}")
            continue
        return Kernel(version, image, modules_dir)
    if not candidates:
        raise GuestError("no kernel in /boot (install linux-image-amd64: ./setup.sh does)")
    raise GuestError("no usable kernel: " + "; ".join(reasons))


def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise GuestError(f"{QEMU} not found (install qemu-system-x86: ./setup.sh does)")
    return path


def _is_static_elf(path: str) -> bool:
    """True for an ELF file without a PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
            return False
        phoff = int.from_bytes(header[32:40], "little")
        phentsize = int.from_bytes(header[54:56], "little")
        phnum = int.from_bytes(header[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for index in range(phnum):
        if int.from_bytes(table[index * phentsize:index * phentsize + 4], "little") == 3:
            return False  # PT_INTERP
    return True


def find_busybox() -> str:
    if not os.path.exists(BUSYBOX):
        raise GuestError(f"{BUSYBOX} not found (install busybox-static: ./setup.sh does)")
    if not _is_static_elf(BUSYBOX):
        raise GuestError(f"{BUSYBOX} is not statically linked (install busybox-static)")
    return BUSYBOX


def module_load_order(kernel: Kernel, wanted: Iterable[str] = ROOT_MODULES) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, each after what it depends on."""
    paths = _module_paths(kernel.modules_dir)
    builtin = _builtin_modules(kernel.modules_dir)
    deps: dict[str, list[str]] = {}
    for line in (kernel.modules_dir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        name = os.path.basename(target).split(".ko", 1)[0].replace("-", "_")
        deps[name] = [
            os.path.basename(d).split(".ko", 1)[0].replace("-", "_") for d in rest.split()
        ]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in builtin:
            return
        if name not in paths:
            raise GuestError(f"module {name} not found in {kernel.modules_dir}/modules.dep")
        if name in visiting:
            raise GuestError(f"module dependency cycle at {name}")
        visiting.add(name)
        for dependency in deps.get(name, []):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return [paths[name] for name in order]


def _module_bytes(path: Path) -> bytes:
    """The module file, decompressed (busybox insmod takes plain .ko only)."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        import lzma

        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        import gzip

        return gzip.decompress(data)
    if not path.name.endswith(".ko"):
        raise GuestError(f"{path}: compressed module format not supported")
    return data


# ---------------------------------------------------------------------------------------
# The initramfs (newc cpio, written here so no device node is ever made on the host)


class Cpio:
    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = [
            self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0,
        ]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._parts.append(header + encoded)
        self._pad()
        self._parts.append(data)
        self._pad()

    def _pad(self) -> None:
        size = sum(len(p) for p in self._parts)
        self._parts.append(b"\0" * (-size % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


STAGE1 = r"""#!/bin/busybox sh
# pid 1 in the initramfs: mount the host's / (read-only, 9p) under a tmpfs overlay and
# switch_root into it.
/bin/busybox --install -s /bin
export PATH=/bin
NONCE=@NONCE@
fail() {
    echo "pyrunc-vm: $*"
    echo "PYRUNC-VM-EXIT $NONCE 125"
    sync
    poweroff -f
    sleep 10
}
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
for module in $(cat /modules/order); do
    insmod "/modules/$module" || fail "insmod $module"
done
mount -t 9p -o @NINEP@ hostroot /lower || fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755 overlay-rw /rw || fail "mount tmpfs /rw"
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot \
    || fail "mount overlay"
for dir in run tmp; do
    mount -t tmpfs -o mode=1777 "$dir" "/newroot/$dir" || fail "mount tmpfs /$dir"
done
chmod 0755 /newroot/run
# a checkout under /tmp or /run (CI's clone may live there) would be hidden by those
# fresh tmpfs mounts: lay it over them again, writable through its own overlay
REPO=@REPO@
case "$REPO" in
    /tmp/*|/run/*)
        mkdir -p "/newroot$REPO" /rw/repo-upper /rw/repo-work
        mount -t overlay -o "lowerdir=/lower$REPO,upperdir=/rw/repo-upper,workdir=/rw/repo-work" \
            repo "/newroot$REPO" || fail "mount the checkout $REPO"
        ;;
esac
mkdir -p /newroot/run/pyrunc-vm
cp /bin/busybox /stage2 /command /newroot/run/pyrunc-vm/ || fail "copy stage2"
for dir in proc sys dev; do
    mount --move "/$dir" "/newroot/$dir" || fail "move /$dir"
done
exec switch_root /newroot /run/pyrunc-vm/busybox sh /run/pyrunc-vm/stage2
fail "switch_root"
"""

STAGE2 = r"""# pid 1 in the new root (busybox sh): cgroup2 only, every controller on, run the command.
BB=/run/pyrunc-vm/busybox
NONCE=@NONCE@
CGROUP=@CGROUP@
fail() {
    echo "pyrunc-vm: $*"
    echo "PYRUNC-VM-EXIT $NONCE 125"
    $BB sync
    $BB poweroff -f
    $BB sleep 10
}
$BB mkdir -p /dev/pts /dev/shm /dev/mqueue
$BB mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts || fail "mount devpts"
$BB mount -t tmpfs -o mode=1777 shm /dev/shm || fail "mount /dev/shm"
$BB mount -t mqueue mqueue /dev/mqueue || fail "mount mqueue"
# systemd's mount options on a unified host
$BB mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup \
    || fail "mount cgroup2"
if $BB awk '$3 == "cgroup" { found = 1 } END { exit !found }' /proc/mounts; then
    fail "a cgroup v1 hierarchy is mounted"
fi
# No internal processes: init leaves the root before the root hands out controllers.
$BB mkdir /sys/fs/cgroup/init.scope || fail "mkdir init.scope"
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs || fail "move init into init.scope"
for controller in $($BB cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable $controller"
done
$BB mount -t bpf bpf /sys/fs/bpf 2>/dev/null
echo "PYRUNC-VM-CONTROLLERS $NONCE $($BB cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "PYRUNC-VM-READY $NONCE $($BB cut -d' ' -f1 /proc/uptime)"
(
    if [ "$CGROUP" != / ]; then $BB mkdir -p "/sys/fs/cgroup$CGROUP" || exit 125; fi
    echo 0 > "/sys/fs/cgroup${CGROUP%/}/cgroup.procs" || exit 125
    . /run/pyrunc-vm/command
) </dev/null &
child=$!
# pid 1's wait also reaps the orphans the command leaves (containers whose parent exited).
wait $child
status=$?
echo "PYRUNC-VM-DONE $NONCE $($BB cut -d' ' -f1 /proc/uptime)"
echo "PYRUNC-VM-EXIT $NONCE $status"
$BB sync
$BB poweroff -f
$BB sleep 10
"""


STAGE2_SYSTEMD = r"""# pid 1 in the new root (busybox sh) for a systemd boot: install a service that runs the
# command and powers off, then exec systemd as pid 1 with that service as its only goal.
# systemd mounts cgroupfs itself (unified or hybrid, from the kernel command line).
BB=/run/pyrunc-vm/busybox
NONCE=@NONCE@
fail() {
    echo "pyrunc-vm: $*"
    echo "PYRUNC-VM-EXIT $NONCE 125"
    $BB sync
    $BB poweroff -f
    $BB sleep 10
}
$BB mkdir -p /dev/pts /dev/shm /dev/mqueue /etc/systemd/system
$BB mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts || fail "mount devpts"
$BB mount -t tmpfs -o mode=1777 shm /dev/shm || fail "mount /dev/shm"
$BB mount -t mqueue mqueue /dev/mqueue || fail "mount mqueue"
# this host's / may be a container's: without this file systemd knows it is a VM's pid 1
# (in a container it ignores the kernel command line, systemd.unified_cgroup_hierarchy=0)
$BB rm -f /.dockerenv /run/.containerenv
# a machine id of its own (systemd would otherwise make a transient one and say so)
$BB cat /proc/sys/kernel/random/uuid | $BB tr -d '-' > /etc/machine-id
$BB cat > /etc/systemd/system/pyrunc-vm.service <<'UNIT' || fail "write pyrunc-vm.service"
[Unit]
Description=pyrunc guest command
DefaultDependencies=no
[Service]
Type=oneshot
ExecStart=/run/pyrunc-vm/busybox sh /run/pyrunc-vm/systemd-command
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
UNIT
$BB cat > /run/pyrunc-vm/systemd-command <<'COMMAND' || fail "write systemd-command"
BB=/run/pyrunc-vm/busybox
NONCE=@NONCE@
echo "PYRUNC-VM-CONTROLLERS $NONCE $($BB cat /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null)"
echo "PYRUNC-VM-READY $NONCE $($BB cut -d' ' -f1 /proc/uptime)"
( . /run/pyrunc-vm/command ) </dev/null
status=$?
echo "PYRUNC-VM-DONE $NONCE $($BB cut -d' ' -f1 /proc/uptime)"
echo "PYRUNC-VM-EXIT $NONCE $status"
$BB sync
$BB poweroff -f
COMMAND
[ -x @SYSTEMD@ ] || fail "@SYSTEMD@ not found (install systemd)"
exec @SYSTEMD@ --unit=pyrunc-vm.service
fail "exec systemd"
"""

SYSTEMD = "/lib/systemd/systemd"


def _command_script(argv: Sequence[str], cwd: str, env: dict[str, str]) -> str:
    """Shell text run in a subshell of stage 2: a clean environment, cwd, exec argv."""
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
    words = " ".join(shlex.quote(a) for a in argv)
    return f"cd {shlex.quote(cwd)} || exit 125\nexec /run/pyrunc-vm/busybox env -i {assignments} {words}\n"


def build_initramfs(
    kernel: Kernel, argv: Sequence[str], cwd: str, env: dict[str, str], cgroup: str, nonce: str,
    init: str = "busybox",
) -> bytes:
    """init: "busybox" (stage 2 sets up cgroup2 itself and runs the command) or "systemd"
    (stage 2 execs systemd as pid 1, which runs the command from a service)."""
    if not cgroup.startswith("/") or "\n" in cgroup or "'" in cgroup:
        raise GuestError(f"cgroup {cgroup!r}: must be an absolute cgroup2 path")
    archive = Cpio()
    for directory in ("bin", "dev", "proc", "sys", "lower", "rw", "newroot", "modules"):
        archive.directory(directory)
    # The kernel opens /dev/console for init's stdio before init runs.
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3, 0o666)
    archive.file("bin/busybox", Path(find_busybox()).read_bytes(), 0o755)
    names = []
    for path in module_load_order(kernel):
        name = path.name.split(".ko", 1)[0] + ".ko"
        archive.file(f"modules/{name}", _module_bytes(path))
        names.append(name)
    archive.file("modules/order", ("\n".join(names) + "\n").encode())
    substitutions = {"@NONCE@": nonce, "@NINEP@": NINEP_OPTIONS, "@CGROUP@": shlex.quote(cgroup),
                     "@REPO@": shlex.quote(str(REPO)), "@SYSTEMD@": SYSTEMD}
    if init not in ("busybox", "systemd"):
        raise GuestError(f"init {init!r}: expected busybox or systemd")
    stage1, stage2 = STAGE1, STAGE2 if init == "busybox" else STAGE2_SYSTEMD
    for key, value in substitutions.items():
        stage1 = stage1.replace(key, value)
        stage2 = stage2.replace(key, value)
    archive.file("init", stage1.encode(), 0o755)
    archive.file("stage2", stage2.encode(), 0o755)
    archive.file("command", _command_script(argv, cwd, env).encode(), 0o644)
    return archive.finish()


# ---------------------------------------------------------------------------------------
# Booting


# An empty, sparse disk: the guest's /dev/vda, so block IO rules (io.max, io.weight) have a
# real block device to name. Nothing in the guest mounts it.
SCRATCH_DISK_BYTES = 64 << 20


def qemu_argv(
    kernel: Kernel, initramfs: str, scratch_disk: str, memory: str = "2G", cpus: int = 2,
    extra_kernel_args: Sequence[str] = (), kernel_args: Sequence[str] = KERNEL_ARGS,
) -> list[str]:
    return [
        find_qemu(),
        "-machine", "pc",
        "-accel", "tcg,thread=multi",
        "-cpu", "max",
        "-smp", str(cpus),
        "-m", memory,
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", str(kernel.image),
        "-initrd", initramfs,
        "-append", " ".join((*kernel_args, *extra_kernel_args)),
        # The host's / for the guest's lower layer; multidevs=remap keeps inode numbers of
        # the host's many filesystems distinct inside the single 9p export.
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-drive", f"file={scratch_disk},format=raw,if=none,id=scratch,cache=unsafe",
        "-device", "virtio-blk-pci,drive=scratch,serial=pyrunc-scratch",
    ]


def guest_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The command's environment: clean, with this interpreter's bin dir first on PATH."""
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYRUNC_IN_VM": "1",
    }
    if os.environ.get("PYRUNC_BIN"):
        env["PYRUNC_BIN"] = os.environ["PYRUNC_BIN"]
    env.update(extra or {})
    return env


def run_guest(
    argv: Sequence[str],
    cwd: str = str(REPO),
    env: Optional[dict[str, str]] = None,
    cgroup: str = "/",
    timeout: float = DEFAULT_TIMEOUT,
    echo: Optional[Callable[[str], None]] = None,
    memory: str = "2G",
    cpus: int = 2,
    extra_kernel_args: Sequence[str] = (),
    init: str = "busybox",
    cgroup_v1: bool = False,
) -> GuestResult:
    """Boot the guest, run `argv` in it (in cgroup `cgroup`, cwd `cwd`), power off.
    `echo` gets every console line as it arrives; `extra_kernel_args` go after
    KERNEL_ARGS (e.g. to choose the LSM). init="systemd" boots systemd as pid 1, which
    runs the command in a service (`cgroup` is then ignored); cgroup_v1=True mounts the
    v1 hierarchies too (systemd's hybrid layout; needs init="systemd"). Raises GuestError
    if the guest never reported an exit status (boot failure, timeout)."""
    kernel = find_kernel()
    nonce = secrets.token_hex(8)
    env = guest_env() if env is None else env
    with tempfile.TemporaryDirectory(prefix="pyrunc-vm-") as workdir:
        initramfs = os.path.join(workdir, "initramfs.cpio")
        with open(initramfs, "wb") as f:
            f.write(build_initramfs(kernel, argv, cwd, env, cgroup, nonce, init))
        scratch_disk = os.path.join(workdir, "scratch.img")
        with open(scratch_disk, "wb") as f:
            f.truncate(SCRATCH_DISK_BYTES)
        kernel_args = KERNEL_ARGS
        if cgroup_v1:
            if init != "systemd":
                raise GuestError("cgroup_v1 needs init='systemd' (stage 2 mounts cgroup2 only)")
            kernel_args = tuple(a for a in KERNEL_ARGS if a != "cgroup_no_v1=all"
                                and not a.startswith("systemd.unified_cgroup_hierarchy="))
            kernel_args += ("systemd.unified_cgroup_hierarchy=0",)
        command = qemu_argv(kernel, initramfs, scratch_disk, memory, cpus, extra_kernel_args, kernel_args)
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        lines: list[str] = []
        found: dict[str, str] = {}
        ready_at: list[float] = []

        def read_console() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
                lines.append(line)
                words = line.split()
                if len(words) >= 2 and words[0].startswith("PYRUNC-VM-") and words[1] == nonce:
                    found[words[0]] = " ".join(words[2:])
                    if words[0] == "PYRUNC-VM-READY":
                        ready_at.append(time.monotonic())
                if echo is not None:
                    echo(line)

        reader = threading.Thread(target=read_console, daemon=True)
        reader.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            reader.join(timeout=5)
            raise GuestError(
                f"guest did not finish within {timeout:.0f} s; last console lines:\n"
                + "\n".join(lines[-40:])
            )
        reader.join(timeout=5)
        total = time.monotonic() - started
    if "PYRUNC-VM-EXIT" not in found:
        raise GuestError(
            f"guest exited (qemu status {process.returncode}) without reporting an exit "
            "status; last console lines:\n" + "\n".join(lines[-40:])
        )
    uptime = found.get("PYRUNC-VM-READY")
    return GuestResult(
        exit_code=int(found["PYRUNC-VM-EXIT"]),
        boot_seconds=(ready_at[0] - started) if ready_at else None,
        guest_uptime_at_ready=float(uptime) if uptime else None,
        total_seconds=total,
        controllers=found.get("PYRUNC-VM-CONTROLLERS", ""),
        output="\n".join(lines),
    )


def existing_tests(tests: Iterable[str], repo: Path = REPO) -> list[str]:
    """Test paths (optionally with ::node ids) whose file exists in the checkout."""
    return [t for t in tests if (repo / t.split("::", 1)[0]).is_file()]


def pytest_argv(tests: Sequence[str], pytest_args: Sequence[str] = ()) -> list[str]:
    """This interpreter running pytest as ./setup.sh test does (-P: the installed pyrunc).
    Without the cache plugin (nothing to keep in a throw-away guest) and without
    hypothesis' plugin, whose import costs seconds under TCG (@given works without it)."""
    return [
        sys.executable, "-P", "-m", "pytest",
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
        *pytest_args, *tests,
    ]


def default_tests() -> list[str]:
    """PYRUNC_VM_TESTS (whitespace-separated) or DEFAULT_TESTS, existing files only."""
    chosen = os.environ.get("PYRUNC_VM_TESTS")
    return existing_tests(chosen.split() if chosen else DEFAULT_TESTS)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="run pyrunc's cgroup tests (or any command) in a pure cgroup v2 guest",
    )
    parser.add_argument("--tests", nargs="+", metavar="PATH",
                        help="pytest paths relative to the checkout (default: the cgroup subset)")
    parser.add_argument("--command", action="store_true",
                        help="the words after -- are the command itself, not pytest arguments")
    parser.add_argument("--cgroup", default="/",
                        help="cgroup2 path the command runs in (default: the root cgroup)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--kernel-arg", action="append", default=[], metavar="ARG",
                        help="one more kernel command line word (repeatable), e.g. security=selinux")
    parser.add_argument("--systemd", action="store_true",
                        help="boot systemd as pid 1; the command runs in a service")
    parser.add_argument("--hybrid", action="store_true",
                        help="with --systemd: cgroup v1 controllers plus cgroup2 (systemd's hybrid layout)")
    parser.add_argument("--quiet", action="store_true", help="do not relay the console")
    parser.add_argument("rest", nargs="*", help="pytest arguments, or the command with --command")
    options = parser.parse_args(argv)

    if options.command:
        if not options.rest:
            parser.error("--command needs the command after --")
        command = options.rest
    else:
        tests = existing_tests(options.tests) if options.tests else default_tests()
        if not tests:
            parser.error("none of the test paths exist")
        command = pytest_argv(tests, options.rest or ["-q"])
    try:
        result = run_guest(
            command,
            cgroup=options.cgroup,
            timeout=options.timeout,
            echo=None if options.quiet else (lambda line: print(line, flush=True)),
            memory=options.memory,
            cpus=options.cpus,
            extra_kernel_args=options.kernel_arg,
            init="systemd" if options.systemd else "busybox",
            cgroup_v1=options.hybrid,
        )
    except GuestError as err:
        print(f"guest.py: {err}", file=sys.stderr)
        return 125
    boot = f"{result.boot_seconds:.1f} s" if result.boot_seconds is not None else "?"
    print(
        f"guest.py: exit status {result.exit_code}; boot to READY {boot} (guest uptime "
        f"{result.guest_uptime_at_ready} s); total {result.total_seconds:.1f} s; "
        f"controllers: {result.controllers}",
        file=sys.stderr,
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
