"""`http.listen`: "host:port" (an IPv6 host in brackets); one parser for the config and the CLI."""

from __future__ import annotations

from waz_actors.errors import ConfigError


def parse_listen(value: str, name: str = "http.listen") -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{name}: expected host:port such as 127.0.0.1:8000, got {value!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"{name}: port must be 1 to 65535, got {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port
