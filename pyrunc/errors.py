"""Error types. Every message is one lowercase line without a trailing period (runc/youki style);
the CLI prints it once, on stderr and in the --log file, and exits 1."""


class PyruncError(Exception):
    """Base class: an error whose str() is what the user sees."""


class ConfigError(PyruncError):
    """config.json (or a process.json) is invalid; the message names the field, e.g.
    `config.json: process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`."""


class ContainerNotExist(PyruncError):
    def __init__(self, container_id: str = ""):
        super().__init__("container does not exist")
        self.container_id = container_id


class ContainerExists(PyruncError):
    def __init__(self, container_id: str):
        super().__init__("container with given ID already exists")  # runc's words


class WrongState(PyruncError):
    """The command is not valid in the container's current status
    (containerd matches the substring "container not running")."""


class SpawnError(PyruncError):
    """The native init failed at a named step; the message is e.g.
    `mount /proc on /tmp/b/rootfs/proc: permission denied`."""


class UnknownName(PyruncError, ValueError):
    """A name that is not in one of the runtime's tables (capabilities, rlimits): `what`
    names the table in the message; also a ValueError for generic callers."""
    what = "name"

    def __init__(self, name: str):
        super().__init__(f'unknown {self.what} "{name}"')
        self.name = name

    @classmethod
    def lookup(cls, table: dict, name):
        """table[name], or this error for a name that is not there (or not a string)."""
        try:
            return table[name]
        except (KeyError, TypeError):
            raise cls(str(name)) from None
