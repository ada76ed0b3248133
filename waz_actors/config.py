"""Configuration: TOML into frozen dataclasses.

Defaults are the seed values (docs/design.md); every duration is in daemon seconds and scaled by
`daemon.time_scale`. Unknown keys, wrong types and non-positive durations are `ConfigError`s
whose message is one line naming the key, with a "did you mean" hint where one fits.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waz_actors.config_types import NON_NEGATIVE, POSITIVE, build, hint
from waz_actors.errors import ConfigError
from waz_actors.net.fetch import Limits

KNOWN_DRIVERS = ("sim", "whatsmeow")


def _dur(default: float, *, allow_zero: bool = False) -> float:
    return field(default=default, metadata={"check": NON_NEGATIVE if allow_zero else POSITIVE})


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: str = "./state"
    runtime_dir: str = "./run"
    time_scale: float = _dur(1.0)
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
    health_sweep: float = _dur(120.0)  # seconds between supervisor health sweeps
    connect_rate: float = _dur(20.0)  # daemon-wide connection attempts per second
    restart_intensity: int = 5  # child restarts allowed within restart_window ...
    restart_window: float = _dur(60.0)  # ... before the instance is tripped
    shutdown_timeout: float = _dur(30.0)  # real seconds to drain on SIGTERM
    thread_stack_kib: int = 256
    demo: bool = False  # seed a few sim instances and send demo traffic


@dataclass(frozen=True)
class StoreConfig:
    path: str = ""  # default: <state_dir>/waz.db
    # A postgresql:// URL selects the PostgreSQL backend (docs/operations.md), also the shared
    # database of a cluster of daemons ([cluster]); empty: SQLite.
    url: str = ""
    synchronous: str = "FULL"  # FULL | NORMAL
    batch_max: int = 1000  # writes per group commit at most
    # Retention, in wall-clock days (not scaled by time_scale); 0 keeps for ever. Final messages
    # with their history, and events, go this long after their last change.
    retention_days: float = _dur(30.0, allow_zero=True)
    # Idempotency keys of final messages go this long after the message was accepted.
    idempotency_days: float = _dur(30.0, allow_zero=True)
    prune_interval: float = _dur(3600.0)  # real seconds between prunes of the running daemon
    prune_batch: int = 500  # rows per prune write (each its own short commit)


@dataclass(frozen=True)
class ConnectionConfig:
    timeout: float = _dur(120.0)  # a connection attempt that has not connected by then failed
    keepalive: float = _dur(45.0)
    throttle: float = _dur(60.0)  # minimum gap between attempts
    throttle_attempts: int = 2  # more attempts than this in the window ...
    throttle_after_attempts: float = _dur(120.0)  # ... lengthen the gap to this
    throttle_after_conflict: float = _dur(180.0)
    throttle_window: float = _dur(3600.0)
    backoff_initial: float = _dur(5.0)
    backoff_max: float = _dur(300.0)
    backoff_multiplier: float = _dur(2.0)
    backoff_jitter: float = _dur(0.2, allow_zero=True)  # fraction of the delay
    pairing_timeout: float = _dur(120.0)
    stable_after: float = _dur(60.0)  # online this long before the breaker counts a success


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5  # trips after MORE than this many consecutive failed attempts
    reset_timeout: float = _dur(300.0)
    reset_timeout_max: float = _dur(3600.0)
    reset_multiplier: float = _dur(2.0)


@dataclass(frozen=True)
class ConflictConfig:
    cooldown: float = _dur(90.0)
    cooldown_multiplier: float = _dur(2.0)
    cooldown_max: float = _dur(1800.0)
    window: float = _dur(3600.0)
    trip_threshold: int = 5  # this many conflicts in the window trip the breaker


@dataclass(frozen=True)
class QueueConfig:
    max_size: int = 100
    max_retries: int = 3
    retry_delay: float = _dur(5.0)
    retry_multiplier: float = _dur(2.0)
    processing_timeout: float = _dur(30.0)
    pacing_interval: float = _dur(2.0, allow_zero=True)  # 0 turns pacing off
    pacing_jitter: float = _dur(0.25, allow_zero=True)  # fraction of the interval
    pacing_burst: int = 1
    max_text_length: int = 65536
    # A send whose outcome is unknown (session closed or timed out mid-send, daemon restart),
    # on a driver whose network does not drop a second copy: "always" resends it marked
    # possible_duplicate (at least once); "never" ends it in status `unknown` (at most once).
    resend_unknown: str = "always"


@dataclass(frozen=True)
class HealthConfig:
    healthy_success: float = 0.8
    warning_success: float = 0.6
    healthy_queue: int = 10
    warning_queue: int = 20


@dataclass(frozen=True)
class ControlConfig:
    endpoint: str = ""  # default ipc://<runtime_dir>/control.sock
    events_endpoint: str = ""  # default ipc://<runtime_dir>/events.sock
    tcp_endpoints: tuple[str, ...] = ()
    max_message_size: int = 1048576
    max_inflight: int = 20000
    ask_timeout: float = _dur(5.0)  # real seconds a command waits on an actor
    curve_secret_key_file: str = ""
    curve_public_key_file: str = ""
    curve_clients_dir: str = ""
    # Per tenant token: requests per second on average (0 turns it off), up to rate_burst at
    # once; beyond it `busy` with details.retry_after. The admin token is exempt. Real seconds.
    rate_limit: float = _dur(1000.0, allow_zero=True)
    rate_burst: int = 2000
    max_reply_bytes: int = 16777216  # a bigger reply is answered too_large: page instead


@dataclass(frozen=True)
class TenantsConfig:
    # Instances a tenant token may have its tenant own; a token may carry its own limit
    # (token.create max_instances). The admin token and [[instances]] are not counted against.
    max_instances: int = 100


@dataclass(frozen=True)
class SimConfig:
    endpoint: str = ""  # empty: the in-process fake network
    connect_latency: float = _dur(0.5, allow_zero=True)
    send_latency: float = _dur(0.2, allow_zero=True)
    qr_interval: float = _dur(20.0)  # a fresh QR code this often while pairing
    # A send whose answer the network loses (a dropped link) still reached the phone with this
    # probability: the daemon cannot know, resends with the same id, and the network drops it.
    lost_ack_delivery_rate: float = _dur(0.5, allow_zero=True)
    # false: the network delivers a resend of a delivered id again, as whatsmeow's would (the
    # daemon then marks such resends possible_duplicate; see queue.resend_unknown).
    dedup_resends: bool = True


@dataclass(frozen=True)
class WhatsmeowConfig:
    sessions_per_host: int = 8
    heartbeat: float = _dur(5.0)  # real seconds
    heartbeat_misses: int = 3
    fd_budget: int = 512
    proxy: str = ""  # e.g. socks5://127.0.0.1:1080; tests point it at a loopback proxy


@dataclass(frozen=True)
class MediaConfig:
    """Fetching `message.send` media (waz_actors/net/fetch.py). Timeouts in real seconds."""

    max_bytes: int = 16 * 1024 * 1024  # image, video, audio (voice notes), sticker
    max_document_bytes: int = 100 * 1024 * 1024
    connect_timeout: float = _dur(10.0)
    timeout: float = _dur(120.0)  # the whole fetch, redirects included
    max_redirects: int = 5
    # Off: loopback, private, link-local, CGNAT, multicast and metadata addresses are refused.
    allow_private_urls: bool = False

    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_bytes,
            max_document_bytes=self.max_document_bytes,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            max_redirects=self.max_redirects,
            allow_private=self.allow_private_urls,
        )


@dataclass(frozen=True)
class InboxConfig:
    # Store the media bytes of received messages (fetched right after the message is stored);
    # false keeps the metadata only and `message.download` fetches the bytes on demand.
    keep_media: bool = False
    max_media_bytes: int = 16 * 1024 * 1024  # larger media is not kept (still downloadable)


@dataclass(frozen=True)
class WebhooksConfig:
    # Retries: exponential backoff with jitter from retry_initial to retry_max (daemon seconds);
    # a delivery not done max_age after its event is `dead`.
    retry_initial: float = _dur(1.0)
    retry_max: float = _dur(3600.0)
    retry_jitter: float = _dur(0.2, allow_zero=True)  # fraction of the delay
    max_age: float = _dur(86400.0)
    # The per-webhook breaker: more than breaker_failures consecutive failed attempts (no
    # answer, 5xx, 408, 429) open it; one probe after breaker_reset (growing to retry_max).
    breaker_failures: int = 5
    breaker_reset: float = _dur(30.0)
    connect_timeout: float = _dur(5.0)  # real seconds
    timeout: float = _dur(15.0)  # real seconds, the whole request
    concurrency: int = 32  # requests in flight at most, all webhooks together
    batch: int = 200  # deliveries claimed from the store per look
    poll_interval: float = _dur(1.0)  # real seconds between looks when nothing wakes the worker
    # Same rule as media URLs (net/ssrf.py): loopback, private, link-local and metadata
    # addresses are refused unless this is on.
    allow_private_targets: bool = False
    # The delivery worker's CPU priority (os.nice increment, 0-19): sends come first. 19 was
    # measured: seconds of delivery latency on a busy machine, no send rate won
    # (docs/webhooks.md).
    worker_nice: int = 10
    # Linux SCHED_IDLE instead: the worker runs only on a CPU nothing else wants (docs/webhooks.md
    # "CPU priority": sends cost less under load, deliveries wait out the load).
    worker_sched_idle: bool = False


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP gateway (docs/http.md): a separate process, a ZeroMQ client of the daemon."""

    listen: str = ""  # "127.0.0.1:8000"; empty: `waz-actors run` starts no gateway
    control_endpoint: str = ""  # default: the daemon's control.endpoint
    # The token the gateway itself uses for /metrics (daemon.metrics is admin-only);
    # default: <state_dir>/admin.token. Requests always carry their caller's own token.
    admin_token_file: str = ""
    request_timeout: float = _dur(10.0)  # real seconds the gateway waits for the daemon
    max_body: int = 1048576  # bytes; a larger request body is 413 too_large
    # WAZIPER's /get_qrcode on an unknown instance creates it with this driver (the panel makes
    # up the instance id and asks for a QR code); empty: such a call answers not_found.
    create_driver: str = "whatsmeow"
    # CURVE, when the control endpoint is tcp on another host (docs/operations.md).
    curve_server_public_key_file: str = ""  # the daemon's NAME.key
    curve_client_secret_key_file: str = ""  # the gateway's own NAME.key_secret


@dataclass(frozen=True)
class ClusterConfig:
    """Several daemons on one PostgreSQL (store.url), each instance run by exactly one of them
    under a lease (docs/design.md, Cluster). Durations in daemon seconds like every other."""

    enabled: bool = False
    node_id: str = ""  # stable across restarts; default: the host name
    endpoint: str = ""  # the control endpoint other daemons forward commands to
    lease_ttl: float = _dur(30.0)  # a lease lives this long past its last renew
    renew_every: float = _dur(5.0)  # one batched renew round this often
    fence_margin: float = _dur(10.0)  # close sessions this long before a lease could expire
    takeover_delay: float = _dur(5.0, allow_zero=True)  # after an expiry, before connecting
    acquire_rate: float = _dur(10.0)  # leases taken (or handed over) per real second at most
    # Campaigns nobody feeds (their node died) are looked for this often; at most
    # claims_per_round of them are taken per look (cluster/claims.py).
    claim_scan: float = _dur(5.0)
    claims_per_round: int = field(default=10, metadata={"check": POSITIVE})

    def resolved_node_id(self) -> str:
        import socket

        return self.node_id or socket.gethostname()


@dataclass(frozen=True)
class InstanceConfig:
    id: str
    driver: str = "sim"
    tenant: str = "default"
    autostart: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    conflict: ConflictConfig = field(default_factory=ConflictConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    tenants: TenantsConfig = field(default_factory=TenantsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    whatsmeow: WhatsmeowConfig = field(default_factory=WhatsmeowConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    instances: tuple[InstanceConfig, ...] = ()

    # -- derived paths ---------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return Path(self.daemon.state_dir).expanduser()

    @property
    def runtime_dir(self) -> Path:
        return Path(self.daemon.runtime_dir).expanduser()

    @property
    def db_path(self) -> Path:
        return Path(self.store.path).expanduser() if self.store.path else self.state_dir / "waz.db"

    @property
    def store_target(self) -> str | Path:
        """What the store opens: the PostgreSQL URL when set, else the SQLite file."""
        return self.store.url or self.db_path

    @property
    def control_endpoint(self) -> str:
        return self.control.endpoint or f"ipc://{self.runtime_dir.resolve()}/control.sock"

    @property
    def events_endpoint(self) -> str:
        return self.control.events_endpoint or f"ipc://{self.runtime_dir.resolve()}/events.sock"

    def with_overrides(self, **daemon: Any) -> Config:
        return dataclasses.replace(self, daemon=dataclasses.replace(self.daemon, **daemon))


_SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)]
    for f in dataclasses.fields(Config)
    if f.name != "instances"
}


def _build_instances(raw: Any) -> tuple[InstanceConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("instances: expected an array of tables ([[instances]])")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(raw):
        prefix = f"instances[{i}]"
        if not isinstance(item, dict) or "id" not in item:
            raise ConfigError(f"{prefix}.id: missing")
        inst = build(InstanceConfig, item, prefix)
        if not inst.id or len(inst.id) > 64:
            raise ConfigError(f"{prefix}.id: must be 1 to 64 characters")
        if inst.driver not in KNOWN_DRIVERS:
            suggestion = hint(inst.driver, KNOWN_DRIVERS)
            raise ConfigError(
                f"{prefix}.driver: unknown driver {inst.driver!r}{suggestion}"
                f"; known: {', '.join(KNOWN_DRIVERS)}"
            )
        if inst.id in seen:
            raise ConfigError(f"{prefix}.id: duplicate instance id {inst.id!r}")
        seen.add(inst.id)
        out.append(inst)
    return tuple(out)


def parse(data: dict[str, Any]) -> Config:
    kwargs: dict[str, Any] = {}
    known = [*_SECTIONS, "instances"]
    for key, value in data.items():
        if key == "instances":
            kwargs["instances"] = _build_instances(value)
        elif key in _SECTIONS:
            kwargs[key] = build(_SECTIONS[key], value, key)
        else:
            raise ConfigError(f"{key}: unknown section{hint(key, known)}")
    cfg = Config(**kwargs)
    if cfg.daemon.log_format not in ("text", "json"):
        raise ConfigError(
            f"daemon.log_format: must be 'text' or 'json', got {cfg.daemon.log_format!r}"
        )
    if cfg.queue.resend_unknown not in ("always", "never"):
        raise ConfigError(
            f"queue.resend_unknown: must be always or never, got {cfg.queue.resend_unknown!r}"
        )
    if cfg.store.url and not cfg.store.url.startswith("postgresql://"):
        raise ConfigError(
            f"store.url: must be a postgresql:// URL (or empty for SQLite), got {cfg.store.url!r}"
        )
    if cfg.store.url and cfg.store.path:
        raise ConfigError("store.url and store.path: set one (url: PostgreSQL, path: SQLite)")
    if cfg.store.synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError(
            f"store.synchronous: must be FULL, NORMAL or EXTRA, got {cfg.store.synchronous!r}"
        )
    for name, value in (
        ("connection.backoff_jitter", cfg.connection.backoff_jitter),
        ("queue.pacing_jitter", cfg.queue.pacing_jitter),
        ("sim.lost_ack_delivery_rate", cfg.sim.lost_ack_delivery_rate),
    ):
        if value > 1:
            raise ConfigError(f"{name}: must be a fraction from 0 to 1, got {value!r}")
    for name, value in (
        ("connection.backoff_multiplier", cfg.connection.backoff_multiplier),
        ("queue.retry_multiplier", cfg.queue.retry_multiplier),
        ("conflict.cooldown_multiplier", cfg.conflict.cooldown_multiplier),
        ("breaker.reset_multiplier", cfg.breaker.reset_multiplier),
    ):
        if value < 1:
            raise ConfigError(f"{name}: must be at least 1, got {value!r}")
    if cfg.control.rate_burst < 1:
        raise ConfigError(f"control.rate_burst: must be at least 1, got {cfg.control.rate_burst}")
    if cfg.control.max_reply_bytes < 65536:
        raise ConfigError(
            f"control.max_reply_bytes: must be at least 65536, got {cfg.control.max_reply_bytes}"
        )
    if not 1 <= cfg.store.prune_batch <= 5000:
        raise ConfigError(f"store.prune_batch: must be 1 to 5000, got {cfg.store.prune_batch!r}")
    if cfg.http.listen:
        from waz_actors.http.listen import parse_listen

        parse_listen(cfg.http.listen)  # raises ConfigError naming http.listen
    if cfg.webhooks.worker_nice > 19:  # Linux would clamp it silently; negatives: refused above
        raise ConfigError(
            f"webhooks.worker_nice: must be 0 to 19, got {cfg.webhooks.worker_nice!r}"
        )
    if cfg.webhooks.concurrency < 1:
        raise ConfigError(
            f"webhooks.concurrency: must be at least 1, got {cfg.webhooks.concurrency!r}"
        )
    if cfg.http.create_driver not in ("", *KNOWN_DRIVERS):
        raise ConfigError(f"http.create_driver: unknown driver {cfg.http.create_driver!r}")
    _check_cluster(cfg)
    if cfg.health.warning_success > cfg.health.healthy_success:
        raise ConfigError("health.warning_success: must not exceed health.healthy_success")
    return cfg


def _check_cluster(cfg: Config) -> None:
    c = cfg.cluster
    if not c.enabled:
        return
    if not cfg.store.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "cluster.enabled: needs a PostgreSQL store.url (postgresql://...), "
            f"got {cfg.store.url or 'none'!r}"
        )
    if 2 * c.renew_every + c.fence_margin > c.lease_ttl:
        raise ConfigError(
            f"cluster.lease_ttl: must exceed 2 x cluster.renew_every + cluster.fence_margin "
            f"({2 * c.renew_every + c.fence_margin:g}), got {c.lease_ttl:g}"
        )


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse(data)


__all__ = ["KNOWN_DRIVERS", "Config", "ConfigError", "InstanceConfig", "load", "parse"]
