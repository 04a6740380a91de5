"""linux.netDevices (runtime-spec 1.3, runc 1.3+): host network interfaces moved into the
container's network namespace before its process starts, as runc's devChangeNetNamespace.

- validation (`check_names`, pure, called by spec.parse): each key and `name` a valid
  interface name (the kernel's dev_valid_name), no two devices ending with one name;
  the cross-section rule (a network namespace) is in the parser's cross_check;
- `check_host`, before create changes anything: root, pyroute2 installed, each device
  present in the runtime's network namespace (runc finds a missing one later, in
  create; nothing is left either way);
- `move_in`, at the init's SYNC_PLACED point (its network namespace, made or joined,
  exists; no hook and no user process has run): set down, moved and renamed in one
  RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME), its permanent global addresses added
  again (the kernel drops them in the move), set up.

On delete nothing is moved back: the spec says the runtime MUST NOT, the namespace's
owner does; when the namespace is freed the kernel returns physical devices to the
initial namespace and destroys virtual ones (veth, dummy ...). runc does the same.

pyroute2 is imported only by `move_in`, i.e. only for a config that has netDevices.
"""
from __future__ import annotations

from pyrunc.errors import PyruncError

IFNAMSIZ = 16
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def valid_name(name: str) -> bool:
    """The kernel's dev_valid_name: 1-15 bytes, not "." or "..", no "/", ":" or blank.
    (runc's devValidName lets a 16-byte name through, which the kernel then refuses.)"""
    if not name or len(name.encode()) >= IFNAMSIZ or name in (".", ".."):
        return False
    return not any(c in "/:" or c.isspace() for c in name)


def check_names(devices: dict[str, str]) -> tuple[str, str] | None:
    """The first problem with `devices` (host name -> name inside, "" keeps it) as
    (its key, message), or None."""
    final: dict[str, str] = {}
    for host_name, name in devices.items():
        if not valid_name(host_name):
            return host_name, f'invalid network device name "{host_name}"'
        if name and not valid_name(name):
            return host_name, f'invalid network device name "{name}"'
        inside = name or host_name
        if inside in final:
            return host_name, f'"{final[inside]}" and "{host_name}" are both named "{inside}" in the container'
        final[inside] = host_name
    return None


def _not_found(host_name: str) -> PyruncError:
    return PyruncError(f"linux.netDevices: link not found for interface {host_name} "
                       "on runtime namespace: Link not found")


def check_host(devices: dict[str, str]) -> None:
    """Refuse what this runtime cannot move: any device without root (runc refuses
    rootless containers) or without pyroute2, a device its network namespace does not
    have (runc's words)."""
    import importlib.util
    import os
    import socket
    if os.geteuid() != 0:
        raise PyruncError("linux.netDevices: network devices are not supported for rootless containers")
    if importlib.util.find_spec("pyroute2") is None:
        raise PyruncError("linux.netDevices: moving network devices needs the pyroute2 package")
    for host_name in devices:
        try:
            socket.if_nametoindex(host_name)
        except OSError:
            raise _not_found(host_name) from None


def move_in(pid: int, devices: dict[str, str]) -> None:
    """Move each device into the network namespace of `pid`, renamed, addresses kept, up."""
    import os
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    ns_path = f"/proc/{pid}/ns/net"
    ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(netns=ns_path) as inside:
            for host_name, name in devices.items():
                new_name = name or host_name
                try:
                    _move_one(host, inside, ns_fd, host_name, new_name)
                except NetlinkError as e:
                    raise PyruncError(f"linux.netDevices: move network device {host_name} to "
                                      f"{new_name} in {ns_path}: {os.strerror(e.code).lower()}") from None
    finally:
        os.close(ns_fd)


def _move_one(host, inside, ns_fd: int, host_name: str, new_name: str) -> None:
    found = host.link_lookup(ifname=host_name)
    if not found:
        raise _not_found(host_name)
    # checked first: the kernel moves the device before it renames it, so a taken name
    # would fail the request with the device already moved (a "%d" template is the
    # kernel's to resolve)
    if "%" not in new_name and inside.link_lookup(ifname=new_name):
        raise PyruncError(f"linux.netDevices: move network device {host_name} to {new_name}: "
                          f"the container's network namespace already has a device named {new_name}")
    index = found[0]
    # down first: the host stops using it before its name or namespace changes
    host.link("set", index=index, state="down")
    addresses = [_prefix(a) for a in host.get_addr(index=index) if _kept(a)]
    already_inside = {link["index"] for link in inside.get_links()}
    # one request moves and renames: the new name never exists in the runtime's namespace
    host.link("set", index=index, net_ns_fd=ns_fd, ifname=new_name)
    # found by what is new: its index may change in the move and a template's name is the kernel's
    index = next(link["index"] for link in inside.get_links() if link["index"] not in already_inside)
    for family, address, prefixlen in addresses:
        inside.addr("add", index=index, family=family, address=address, prefixlen=prefixlen)
    inside.link("set", index=index, state="up")


def _kept(msg) -> bool:
    """runc keeps permanent addresses of global scope (RFC 3549 2.3.3.2); dynamic and
    link- or host-scoped ones belong to the namespace they were made in."""
    flags = msg.get_attr("IFA_FLAGS")
    if flags is None:
        flags = msg["flags"]
    return bool(flags & IFA_F_PERMANENT) and msg["scope"] == RT_SCOPE_UNIVERSE


def _prefix(msg) -> tuple[int, str, int]:
    address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return msg["family"], address, msg["prefixlen"]
