#!/usr/bin/env bash
# Install pyrunc and what it needs on Debian 12 (as root), then run one job:
#
#   ./setup.sh               install only
#   ./setup.sh demo          install, then run a container from bundles/busybox
#   ./setup.sh test [ARGS]   install, then run the test suite (pytest ARGS)
#
# Every step is idempotent and skipped when already done, so the install costs about a
# second on a machine that has it: apt only runs for missing packages, pip only when the
# sources differ from what was last installed (or the installed copy changed), and the
# bundle's rootfs is brought up to date in place. PYTHON=/path/to/python3 picks the
# interpreter (default: python3 on PATH).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"

APT_PACKAGES=(busybox-static runc crun libseccomp-dev libcap-dev gcc libc6-dev)
# tests/unit/test_launcher.py installs pyrunc into a venv made from Debian's python3.
APT_PACKAGES+=(python3-venv)
# The engines tests/engines starts with pyrunc as their runtime (runc stays their default):
# containerd (ctr + containerd-shim-runc-v2), docker, podman with conmon.
APT_PACKAGES+=(containerd docker.io podman conmon)
# tests/integration/test_rootless.py runs rootless podman as a user it creates: newuidmap
# and newgidmap map that user's /etc/subuid and /etc/subgid ranges (pyrunc runs them too
# for a rootless config that maps more than the user's own id).
APT_PACKAGES+=(uidmap)
# tests/cri runs pods through containerd's CRI plugin: CNI plugins (bridge, host-local,
# loopback) for the pod network, catatonit as the static init of the sandbox (pause) image,
# iproute2 for the private network namespace containerd runs in.
APT_PACKAGES+=(containernetworking-plugins catatonit iproute2)
# tests/vm boots a throw-away pure cgroup v2 guest: qemu (TCG) and Debian's generic kernel,
# which only adds files to /boot and /lib/modules (no bootloader is installed or touched);
# tiny-initramfs satisfies its initramfs dependency without pulling udev or a systemd upgrade.
APT_PACKAGES+=(qemu-system-x86 tiny-initramfs linux-image-amd64)
# tests/vm/test_lsm_guest.py boots that kernel with AppArmor, then SELinux: apparmor_parser
# loads the test profiles, load_policy Debian's reference policy (built into /etc/selinux by
# the policy package's postinst). On a host without either LSM their scripts only write
# files: nothing is loaded, no service is started (policy-rc.d below denies it anyway).
APT_PACKAGES+=(apparmor policycoreutils selinux-policy-default)
# tests/vm/test_systemd_guest.py boots that kernel with systemd as pid 1 (the host's own
# systemd, over the guest's read-only view of /) to test the systemd cgroup driver; no
# service is started on this host (pyrunc talks to systemd's private socket in the guest,
# so no dbus-daemon is needed).
APT_PACKAGES+=(systemd)
# checkpoint/restore drives CRIU over its RPC (criu swrk); tests/vm/test_criu_guest.py runs
# it in the guest (Debian's criu 3.17 fails on some host kernels: "Unexpected rt vDSO area
# bounds", which the host tests then expect as a clean one-line error).
APT_PACKAGES+=(criu)
STAMP="$REPO/build/pyrunc-install.stamp"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (containers need it)"

# The real interpreter, not a pyenv shim: scripts are installed next to it.
PY="$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')" \
    || die "no python3 found (set PYTHON=/path/to/python3)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PY: python 3.11 or newer is required"

install_apt_packages() {
    local wanted=("${APT_PACKAGES[@]}") missing=() package
    # The cffi module compiles against Python.h: Debian's own python3 needs python3-dev.
    if ! "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h")))'; then
        wanted+=("python3-dev")
    fi
    for package in "${wanted[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)" != "ii " ]; then
            missing+=("$package")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # docker.io's and containerd's postinst start their daemon through invoke-rc.d when no
    # systemd runs (containers, CI): a host dockerd nobody asked for. A policy-rc.d that
    # denies every start (exit 101) stops that; one already in place is left as it is.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# added by pyrunc setup.sh during apt-get install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local status=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    [ -n "$added_policy" ] && rm -f "$policy"
    return "$status"
}

# Hash of what decides the installed package: this interpreter, the source files, and
# the installed copy's RECORD (another checkout installing over it changes that).
fingerprint() {
    (cd / && "$PY" -I - "$REPO" <<'EOF'
import hashlib
import os
import sys
from importlib import metadata

repo = sys.argv[1]
digest = hashlib.sha256(sys.executable.encode() + b"\0")
paths = [os.path.join(repo, name) for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "bin/pyrunc.in")]
for top, dirs, files in os.walk(os.path.join(repo, "pyrunc")):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for name in sorted(files):
        # build products (cffi module, pyrunc-init, bytecode) are outputs, not inputs
        if not name.endswith((".so", ".pyc", ".o", ".tmp")) and name not in ("pyrunc-init", "pyrunc-probe"):
            paths.append(os.path.join(top, name))
for path in paths:
    digest.update(os.path.relpath(path, repo).encode() + b"\0")
    with open(path, "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
try:
    record = os.path.join(str(metadata.distribution("pyrunc")._path), "RECORD")
    status = os.stat(record)
    digest.update(f"{record} {status.st_ino} {status.st_mtime_ns}".encode())
except (metadata.PackageNotFoundError, AttributeError, OSError):
    digest.update(b"not installed")
print(digest.hexdigest())
EOF
    )
}

scripts_dir() {
    "$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'
}

find_pyrunc() {
    local candidate
    for candidate in "$(dirname "$PY")/pyrunc" "$(scripts_dir)/pyrunc"; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    command -v pyrunc || return 1
}

install_python_package() {
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && find_pyrunc >/dev/null; then
        return 0
    fi
    say "installing pyrunc with $PY -m pip"
    # pip builds in this tree: stale modules left in build/lib* would be installed too.
    rm -rf "$REPO"/build/lib* "$REPO"/build/bdist.*
    # Non-editable on purpose: pip then compiles the .pyc files at install time, which
    # nothing else does here (PYTHONDONTWRITEBYTECODE=1 is common on these machines).
    # Debian marks its own python3 as externally managed (PEP 668); this is a system
    # install by design, as runc's is.
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
        "$PY" -m pip install --quiet --disable-pip-version-check "$REPO[test]"
    mkdir -p "$(dirname "$STAMP")"
    fingerprint >"$STAMP"
}

build_bundle() {
    "$PY" "$REPO/bundles/build_rootfs.py" "$REPO/bundles/busybox/rootfs"
}

# One install at a time: several test runs may start together on one machine.
mkdir -p "$REPO/build"
(
    flock 9
    install_apt_packages
    install_python_package
    build_bundle
) 9>"$REPO/build/.setup.lock"
PYRUNC="$(find_pyrunc)" || die "pyrunc was installed but its script is not found in $(scripts_dir) or on PATH"
export PYRUNC_BIN="$PYRUNC"

case "${1:-install}" in
    install)
        say "installed: $PYRUNC"
        ;;
    demo)
        # A demo left behind by an interrupted run would make `run` fail with "exists".
        "$PYRUNC" delete --force demo >/dev/null 2>&1 || true
        say "$PYRUNC run -b bundles/busybox demo"
        exec "$PYRUNC" run -b bundles/busybox demo
        ;;
    test)
        shift
        # -P: do not put the checkout on sys.path, so tests import the INSTALLED package
        # (the one that has the compiled cffi module and pyrunc-init), as the CLI does.
        exec "$PY" -P -m pytest "$@"
        ;;
    *)
        die "unknown job: $1 (expected: install, demo or test)"
        ;;
esac
