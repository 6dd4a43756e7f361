"""The node's configuration file, ``DIR/node.json`` (mode 0600).

It records what the node is (its id and the federation it belongs to) and how it runs
(database, listening address). It may hold a database password, so like the key files
it is readable by the node's user only, and it is written crash-safely: a temporary
file, fsync, rename over the old one, fsync the directory.

Until federations exist a node is *standalone*: its ``net`` is derived from its own id
(:func:`standalone_net`), so its entries cannot replay into any real federation. The
``standalone`` flag tells the federation code (``watan federation create`` / invites)
that the feed must be re-rooted under the federation's ``net`` on joining.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from ._files import write_private_file

__all__ = [
    "CONFIG_FILE",
    "CONFIG_VERSION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ConfigError",
    "NodeConfig",
    "load_config",
    "standalone_net",
    "write_config",
]

CONFIG_FILE: Final = "node.json"
CONFIG_VERSION: Final = 1
#: Loopback by default: the admin UI and the API are not exposed until an operator
#: chooses an address (a reverse proxy with TLS, or a LAN address for peers).
DEFAULT_HOST: Final = "127.0.0.1"
#: Unassigned by IANA, and away from the usual development ports (8000, 8080, 8443).
DEFAULT_PORT: Final = 8470
#: Domain tag of a standalone node's ``net`` (NUL-terminated, like protocol tags).
STANDALONE_TAG: Final = b"watan/standalone/v1\x00"


class ConfigError(Exception):
    """``node.json`` is missing, unreadable, or not a valid configuration."""


def standalone_net(node_id: bytes) -> bytes:
    """The ``net`` of a node that has joined no federation: SHA-256(tag || node_id)."""
    return hashlib.sha256(STANDALONE_TAG + node_id).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """The contents of ``node.json``.

    Attributes:
        node_id: the node's Ed25519 public key (hex in the file).
        net: the federation id its entries are signed for (hex in the file).
        standalone: True while ``net`` is :func:`standalone_net` of ``node_id``.
        database_url: None for SQLite at ``DIR/watan.db``.
        host, port: where ``watan up`` listens.
        created_ms: when the node was created.
        profile_provisional: the first profile used placeholder organisation details.
    """

    node_id: bytes
    net: bytes
    database_url: str | None
    host: str
    port: int
    created_ms: int
    standalone: bool = True
    profile_provisional: bool = False
    #: The federation's signed genesis (hex), once founded or joined (SPEC §12).
    genesis: str | None = None
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if len(self.node_id) != 32 or len(self.net) != 32:
            raise ConfigError("node_id and net are 32 bytes")
        if self.version != CONFIG_VERSION:
            raise ConfigError(f"unsupported config version {self.version}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 1 and 65535")
        if self.standalone and self.net != standalone_net(self.node_id):
            raise ConfigError("a standalone node's net must be derived from its node_id")
        if not self.standalone and self.genesis is None:
            raise ConfigError("a federated node's config names its federation's genesis")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["node_id"] = self.node_id.hex()
        data["net"] = self.net.hex()
        return data

    def __repr__(self) -> str:  # database_url may hold a password
        return f"NodeConfig(node_id={self.node_id.hex()}, host={self.host!r}, port={self.port})"


_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "version": (int,),
    "node_id": (str,),
    "net": (str,),
    "standalone": (bool,),
    "database_url": (str, type(None)),
    "host": (str,),
    "port": (int,),
    "created_ms": (int,),
    "profile_provisional": (bool,),
    "genesis": (str, type(None)),
}
#: Fields a config written by an earlier release may lack (their defaults apply).
_OPTIONAL: Final = frozenset({"genesis"})


def _key(value: str, name: str, path: Path) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{path}: {name} is not 32 bytes in hex")
    return key


def _parse(data: Any, path: Path) -> NodeConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    version = data.get("version")
    if version != CONFIG_VERSION or type(version) is not int:
        raise ConfigError(
            f"{path} has config version {version!r}; this watan reads version {CONFIG_VERSION}"
        )
    for name, types in _TYPES.items():
        if name not in data:
            if name in _OPTIONAL:
                continue
            raise ConfigError(f"{path}: {name} is missing")
        # bool is an int in Python; a port of `true` is still wrong.
        if type(data[name]) not in types:
            raise ConfigError(f"{path}: {name} has the wrong type")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)}")
    fields = dict(data)
    fields["node_id"] = _key(data["node_id"], "node_id", path)
    fields["net"] = _key(data["net"], "net", path)
    try:
        return NodeConfig(**fields)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def load_config(data_dir: Path) -> NodeConfig:
    """Read ``DIR/node.json``.

    Raises:
        ConfigError: the file is missing or unreadable, not JSON, of another version,
            or a field is missing, of the wrong type, or invalid.
    """
    path = data_dir / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: {data_dir} is not a Watan node directory") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    return _parse(data, path)


def write_config(data_dir: Path, config: NodeConfig) -> None:
    """Write ``DIR/node.json`` atomically, mode 0600, replacing any previous one.

    Raises:
        ConfigError: the file cannot be written (nothing was changed).
    """
    path = data_dir / CONFIG_FILE
    text = json.dumps(config.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        write_private_file(path, text.encode("utf-8"), overwrite=True)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from None
