"""Shared CLI plumbing: where the daemon is, which token to use, output and exit codes.

Exit codes: 0 ok; 1 the daemon answered an error (or a check failed); 2 usage or bad local
input; 3 the daemon cannot be reached. Only click and the stdlib are imported at module level:
the client (pyzmq, msgpack) loads on the first call, so `--help`, `keys` and `config check` stay
light and nothing on this path ever pulls in pykka, loguru or the store.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from waz_actors.config import Config
    from waz_actors.control.client import Client

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
WIDTH = 80  # human tables fit a classic terminal

F = TypeVar("F", bound=Callable[..., Any])


# -- errors ---------------------------------------------------------------------------------


def fail(message: str, code: int = FAILED) -> click.exceptions.Exit:
    """Print `error: <message>` on stderr; the caller raises the returned Exit."""
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(code)


def usage_error(message: str) -> click.exceptions.Exit:
    return fail(message, USAGE)


def unreachable(endpoint: str, reason: str) -> click.exceptions.Exit:
    hint = "is the daemon running? (systemctl status waz-actors, or waz-actors run)"
    if endpoint.startswith("ipc://"):
        hint += (
            f"; do you have permission on the socket {endpoint[6:]} and its directory?"
            " (run as the daemon's user or a member of its group)"
        )
    click.echo(f"error: cannot reach the daemon at {endpoint}: {reason}", err=True)
    click.echo(f"hint: {hint}", err=True)
    return click.exceptions.Exit(UNREACHABLE)


# -- where the daemon is ----------------------------------------------------------------------


class Conn:
    """Endpoint and token resolution, in the documented order, done lazily and once.
    (A plain class, not a dataclass: class creation is measurable in a 150 ms start-up.)"""

    def __init__(
        self,
        endpoint_opt: str | None = None,
        events_opt: str | None = None,
        token_opt: str | None = None,
        config_path: str | None = None,
        state_dir_opt: str | None = None,
        timeout: float = 5.0,
        server_key: str | None = None,
        client_key: str | None = None,
    ) -> None:
        self.endpoint_opt = endpoint_opt
        self.events_opt = events_opt
        self.token_opt = token_opt
        self.config_path = config_path
        self.state_dir_opt = state_dir_opt
        self.timeout = timeout
        self.server_key = server_key
        self.client_key = client_key
        self.token_source = ""
        self._config: Config | None = None
        self._client: Client | None = None

    def config(self) -> Config:
        if self._config is None:
            from waz_actors.config import load
            from waz_actors.errors import ConfigError

            path = self.config_path or os.environ.get("WAZ_CONFIG") or None
            try:
                self._config = load(path)
            except ConfigError as e:
                raise usage_error(f"config: {e}") from None
        return self._config

    @property
    def state_dir(self) -> Path:
        opt = self.state_dir_opt or os.environ.get("WAZ_STATE_DIR")
        return Path(opt).expanduser() if opt else self.config().state_dir

    @property
    def endpoint(self) -> str:
        return self.endpoint_opt or os.environ.get("WAZ_ENDPOINT") or self.config().control_endpoint

    @property
    def events_endpoint(self) -> str:
        explicit = self.events_opt or os.environ.get("WAZ_EVENTS_ENDPOINT")
        if explicit:
            return explicit
        control = self.endpoint
        # The daemon puts both sockets side by side in its runtime directory.
        if control.startswith("ipc://") and control.endswith("/control.sock"):
            return control[: -len("control.sock")] + "events.sock"
        if self.endpoint_opt or os.environ.get("WAZ_ENDPOINT"):
            raise usage_error(
                f"no events endpoint known for {control}: pass --events-endpoint"
                " or set WAZ_EVENTS_ENDPOINT"
            )
        return self.config().events_endpoint

    def token(self) -> str | None:
        if self.token_opt:
            if self.token_source != "--token":  # once per command
                # argv is world-readable (ps, /proc/<pid>/cmdline): say so, and the way out.
                click.echo(
                    "warning: --token shows the token to every user of this host (ps);"
                    " set WAZ_TOKEN, or let the CLI read <state dir>/admin.token",
                    err=True,
                )
            self.token_source = "--token"
            return self.token_opt
        if os.environ.get("WAZ_TOKEN"):
            self.token_source = "WAZ_TOKEN"
            return os.environ["WAZ_TOKEN"]
        path = self.state_dir / "admin.token"
        try:
            self.token_source = str(path)
            return path.read_text(encoding="ascii").strip()
        except OSError as e:
            self.token_source = f"none ({path}: {e.strerror or e})"
            return None

    def client(self) -> Client:
        if self._client is None:
            from waz_actors.control.client import Client

            curve = self._curve()
            self._client = Client(
                self.endpoint,
                self.token(),
                timeout=self.timeout,
                curve_server_key=curve[0] if curve else None,
                curve_keypair=curve[1] if curve else None,
            )
        return self._client

    def _curve(self) -> tuple[bytes, tuple[bytes, bytes]] | None:
        server = self.server_key or os.environ.get("WAZ_SERVER_KEY")
        mine = self.client_key or os.environ.get("WAZ_CLIENT_KEY")
        if not server and not mine:
            return None
        if not (server and mine):
            raise usage_error("CURVE needs both --server-key and --client-key")
        from waz_actors.control import keys

        try:
            return keys.read_public(server), keys.read_secret(mine)
        except keys.KeyFileError as e:
            raise usage_error(str(e)) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def call(self, fn: Callable[[Client], Any]) -> Any:
        """Run one client operation, turning its errors into exit codes."""
        with daemon_errors(self):
            return fn(self.client())


@contextmanager
def daemon_errors(conn: Conn) -> Iterator[None]:
    from zmq.error import ZMQBaseError

    from waz_actors.control.client import ClientError, Unreachable

    try:
        yield
    except ClientError as e:
        click.echo(f"error: {e.code}: {e.message}", err=True)
        if e.details.get("field"):
            click.echo(f"  field: {e.details['field']}", err=True)
        if e.code == "unauthorized":
            click.echo(
                f"hint: token from {conn.token_source or 'nowhere'}; pass --token, set"
                " WAZ_TOKEN, or run as the daemon's user so <state dir>/admin.token is readable",
                err=True,
            )
        raise click.exceptions.Exit(FAILED) from None
    except Unreachable as e:
        raise unreachable(e.endpoint, e.reason) from None
    except ZMQBaseError as e:  # a malformed or unusable endpoint
        raise unreachable(conn.endpoint, str(e) or type(e).__name__) from None


def connection_options(f: F) -> F:
    """Adds the connection options to a command and passes it a `Conn` as `conn`."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        endpoint: str | None,
        events_endpoint: str | None,
        token: str | None,
        config_path: str | None,
        state_dir: str | None,
        timeout: float,
        server_key: str | None,
        client_key: str | None,
        **kwargs: Any,
    ) -> Any:
        conn = Conn(
            endpoint_opt=endpoint,
            events_opt=events_endpoint,
            token_opt=token,
            config_path=config_path,
            state_dir_opt=state_dir,
            timeout=timeout,
            server_key=server_key,
            client_key=client_key,
        )
        try:
            return f(*args, conn=conn, **kwargs)
        finally:
            conn.close()

    opts = [
        click.option(
            "--endpoint", metavar="URL", help="Control socket [env WAZ_ENDPOINT; else config]."
        ),
        click.option(
            "--events-endpoint",
            metavar="URL",
            help="Event socket [env WAZ_EVENTS_ENDPOINT; else next to the control socket].",
        ),
        click.option(
            "--token",
            metavar="TOKEN",
            help="Access token; visible in ps, prefer env WAZ_TOKEN [else admin.token].",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="Daemon config file [env WAZ_CONFIG].",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False),
            help="Where admin.token lives [env WAZ_STATE_DIR].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.01),
            default=5.0,
            show_default=True,
            help="Seconds to wait for each reply.",
        ),
        click.option("--server-key", metavar="FILE", help="CURVE: the server's public key file."),
        click.option("--client-key", metavar="FILE", help="CURVE: our secret key file."),
    ]
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document.")


# -- output ---------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


HEALTH_COLOURS = {"healthy": "green", "warning": "yellow", "critical": "red"}
STATE_COLOURS = {
    "online": "green",
    "connecting": "yellow",
    "pairing": "yellow",
    "backoff": "yellow",
    "cooldown": "yellow",
    "stopped": "white",
    "tripped": "red",
    "logged_out": "red",
    "banned": "red",
}


def coloured(text: str, colour: str | None) -> str:
    # click.echo strips the escapes when stdout is not a terminal.
    return click.style(text, fg=colour) if colour else text


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{s // 60:.0f}m{s % 60:02.0f}s"
    if s < 86400:
        return f"{s // 3600:.0f}h{s % 3600 // 60:02.0f}m"
    return f"{s // 86400:.0f}d{s % 86400 // 3600:02.0f}h"


def since(t: float | None, now: float | None = None) -> str:
    return "-" if t is None else age((now or time.time()) - t)


def clock(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def word_colour(text: str) -> str | None:
    return STATE_COLOURS.get(text) or HEALTH_COLOURS.get(text)


Cell = Any  # a value, or (text, colour) to colour one cell


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    width: int = WIDTH,
    colour: Callable[[str], str | None] = word_colour,
) -> str:
    """Plain columns that fit `width`: the widest column is shortened with '~' if needed.
    A cell is coloured when given as (text, colour), or when it is a state or health word;
    colour goes on after padding, so widths stay right."""

    def split(c: Cell) -> tuple[str, str | None]:
        if isinstance(c, tuple):
            return ("-" if c[0] is None else str(c[0])), c[1]
        text = "-" if c is None else str(c)
        return text, colour(text)

    body = [[split(c) for c in r] for r in rows]
    cells = [[str(h) for h in headers]] + [[t for t, _ in r] for r in body]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    gap = 2
    while sum(widths) + gap * (len(widths) - 1) > width:
        i = widths.index(max(widths))
        over = sum(widths) + gap * (len(widths) - 1) - width
        floor = max(len(headers[i]), 4)
        widths[i] = max(floor, widths[i] - over)
        if widths[i] == floor:
            break

    def fit(text: str, w: int, fg: str | None) -> str:
        cut = text if len(text) <= w else text[: w - 1] + "~"
        return coloured(cut, fg) + " " * (w - len(cut))

    lines = [(" " * gap).join(h.ljust(widths[i]) for i, h in enumerate(cells[0])).rstrip()]
    for r in body:
        lines.append(
            (" " * gap).join(fit(t, widths[i], fg) for i, (t, fg) in enumerate(r)).rstrip()
        )
    return "\n".join(lines)


def pairs(items: Sequence[tuple[str, Any]]) -> str:
    """`key: value` lines, aligned."""
    w = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k.ljust(w)}  {'-' if v is None else v}" for k, v in items)


class Spinner:
    """A one-line progress indicator on stderr, only when stderr is a terminal."""

    FRAMES = "|/-\\"

    def __init__(self, text: str) -> None:
        self.text = text
        self.enabled = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, text: str) -> None:
        self.text = text

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.1):
            sys.stderr.write(f"\r{self.FRAMES[n % 4]} {self.text[: WIDTH - 3]}\x1b[K")
            sys.stderr.flush()
            n += 1

    def __enter__(self) -> Spinner:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def parse_params(items: Sequence[str], what: str = "--param") -> dict[str, Any]:
    """`k=v` pairs; values that read as JSON (numbers, true/false) keep their type."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise usage_error(f"{what} {item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value
    return out
