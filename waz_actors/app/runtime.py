"""The daemon's flat start/stop sequence (mopidy style): build, start, wait, stop in reverse.

`Daemon` is also what tests start in-process on a temporary state directory.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from waz_actors import __version__
from waz_actors.actors.board import StatusBoard
from waz_actors.actors.fleet import Fleet
from waz_actors.actors.gate import ConnectGate
from waz_actors.actors.instance import InstanceDeps
from waz_actors.actors.messages import StopAll
from waz_actors.actors.supervisor import Children, SupervisorActor, SweepStatus
from waz_actors.actors.webhooks import WebhookActor
from waz_actors.app.lock import StateLock
from waz_actors.campaign.actor import Manager
from waz_actors.clock import RealClock, Scheduler
from waz_actors.config import Config
from waz_actors.drivers.base import Driver, DriverContext, DriverFactory
from waz_actors.errors import Exists
from waz_actors.events import EventBus
from waz_actors.store import Store
from waz_actors.store.records import InstanceRecord
from waz_actors.store.retention import Pruner
from waz_actors.types import InstanceState

if TYPE_CHECKING:
    from waz_actors.cluster.runtime import Cluster
    from waz_actors.control.auth import Auth
    from waz_actors.control.server import ControlServer
    from waz_actors.delivery.supervise import DeliveryProcess
    from waz_actors.drivers.host.client import HostPool
    from waz_actors.drivers.sim import SimNetworkLike
    from waz_actors.http.supervise import GatewayProcess


class Daemon:
    def __init__(
        self, cfg: Config, *, with_control: bool = True, sim: SimNetworkLike | None = None
    ) -> None:
        """`sim`: a shared fake network (tests restart a daemon against the same one)."""
        self.cfg = cfg
        self.with_control = with_control
        self._shared_sim = sim
        self.clock = RealClock(cfg.daemon.time_scale)
        self.scheduler = Scheduler(self.clock)
        self.bus = EventBus()
        self.board = StatusBoard()
        self.children = Children()
        self.sweep = SweepStatus()
        self.lock = StateLock(cfg.state_dir)
        self.store = Store(
            cfg.store_target, synchronous=cfg.store.synchronous, batch_max=cfg.store.batch_max
        )
        self.sim: SimNetworkLike | None = None
        self.host_pool: HostPool | None = None
        self._pool_lock = threading.Lock()
        self._wm_factory: DriverFactory | None = None
        self.supervisor: pykka.ActorRef[SupervisorActor] | None = None
        self.fleet: Fleet | None = None
        self.control: ControlServer | None = None
        self.webhooks: pykka.ActorRef[WebhookActor] | None = None
        self.delivery: DeliveryProcess | None = None  # the webhook worker process
        self.http: GatewayProcess | None = None
        self.cluster: Cluster | None = None  # [cluster] enabled: leases decide what runs here
        self.campaigns: Manager | None = None
        self.pruner = Pruner(
            self.store,
            retention_days=cfg.store.retention_days,
            idempotency_days=cfg.store.idempotency_days,
            batch=cfg.store.prune_batch,
            interval=cfg.store.prune_interval,
        )
        self.stopped = threading.Event()
        self._stopping = False

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        cfg = self.cfg
        # Thousands of actors are thousands of threads: keep their stacks small.
        threading.stack_size(max(32, cfg.daemon.thread_stack_kib) * 1024)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        cfg.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._start()
        except BaseException:
            self._teardown()
            raise

    def _start(self) -> None:
        cfg = self.cfg
        self.scheduler.start()
        self.store.open()
        self.pruner.start()
        self._start_webhooks()
        drivers = self._drivers()
        self._seed_config_instances()
        deps = InstanceDeps(
            cfg=cfg,
            clock=self.clock,
            scheduler=self.scheduler,
            store=self.store,
            bus=self.bus,
            board=self.board,
            gate=ConnectGate(cfg.daemon.connect_rate),
            drivers=drivers,
        )
        if cfg.cluster.enabled:
            from waz_actors.cluster.runtime import Cluster

            self.cluster = Cluster(
                cfg, lambda: [r.instance_id for r in self.store.list_instances()]
            )
            if self.store.backend == "postgresql":
                self.cluster.fence(self.store)
                self.store.wake_others(self.cluster.node_id)
        self.supervisor = SupervisorActor.start(deps, self.children, self.sweep, self.cluster)
        self.fleet = Fleet(
            cfg,
            self.clock,
            self.store,
            self.board,
            self.children,
            self.supervisor,
            self.sweep,
            sim=self.sim,
        )
        self.fleet.cluster = self.cluster
        if self.cluster is not None:
            self.cluster.start(self.supervisor, deps.sessions)
        self.fleet.publish = self.bus.publish
        self.campaigns = Manager(
            cfg,
            self.store,
            self.fleet,
            self.clock,
            self.scheduler,
            self.bus.publish,
            claims=self.cluster.claims if self.cluster is not None else None,
        )
        self.fleet.campaigns = self.campaigns
        if self.with_control:
            from waz_actors.control.server import ControlServer

            self.control = ControlServer(cfg, self.fleet, self.store, self.bus)
            if self.cluster is not None:
                self.control.dispatcher.forward = self.cluster.forwarder()
            self._listen(self.control.auth)  # before the first request is answered
            self.control.start()
            if cfg.http.listen:  # the HTTP gateway: a supervised subprocess (docs/http.md)
                from waz_actors.http.supervise import GatewayProcess

                self.http = GatewayProcess(cfg)
                self.http.start()
        if not self.with_control:
            self._listen(None)
        resumed = self.campaigns.resume_all()
        if resumed:
            logger.info("{} campaign(s) resumed", resumed)
        self.campaigns.start_scan()  # clustered: take over the campaigns nobody feeds
        logger.info(
            "waz-actors {} started: {} instance(s), state {}, control {}",
            __version__,
            len(self.children),
            cfg.state_dir,
            cfg.control_endpoint,
        )

    def _listen(self, auth: Auth | None) -> None:
        """On a cluster on PostgreSQL: sends accepted on other nodes wake their owner here, and
        tokens revoked on other nodes leave this node's cache (cluster/wake.py)."""
        if self.cluster is not None and self.store.backend == "postgresql":
            self.cluster.listen_for_sends(auth, self.store.webhooks.changed_elsewhere)

    def _start_webhooks(self) -> None:
        """The delivery worker (a process of its own), woken by the store after each commit
        that wrote events; campaign events from the bus get theirs written too."""
        from waz_actors.delivery.main import command
        from waz_actors.delivery.supervise import DeliveryProcess

        hooks = self.store.webhooks
        self.delivery = DeliveryProcess(command(self.cfg), lambda w: hooks.apply(w).result(30))
        process = self.delivery
        hooks.tap.on_new = lambda: process.notify(b"n")
        hooks.on_change = lambda: process.notify(b"c")
        if self.cfg.cluster.enabled:  # other nodes change the webhooks too
            hooks.tap.reload_every = 1.0
        if hooks.list_webhooks():
            process.want()
        self.bus.subscribe("campaign.", hooks.emit_published)
        self.webhooks = WebhookActor.start(process)

    def _drivers(self) -> dict[str, DriverFactory]:
        from waz_actors.drivers.sim import make_sim_factory, network_from_config

        self.sim = self._shared_sim or network_from_config(self.cfg.sim, self.scheduler, self.clock)
        drivers: dict[str, DriverFactory] = {
            "sim": make_sim_factory(self.sim, self.cfg.media.limits())
        }
        if self._whatsmeow_available():
            drivers["whatsmeow"] = self._whatsmeow_factory
        return drivers

    @staticmethod
    def _whatsmeow_available() -> bool:
        import importlib.util

        return importlib.util.find_spec("neonize") is not None

    def _whatsmeow_factory(self, ctx: DriverContext) -> Driver:
        """Driver hosts start on the first whatsmeow instance, not for sim-only daemons."""
        with self._pool_lock:
            if self.host_pool is None:
                from waz_actors.drivers.host.client import HostPool
                from waz_actors.drivers.whatsmeow import make_whatsmeow_factory

                pool = HostPool(
                    self.cfg,
                    self.cfg.runtime_dir,
                    self.cfg.state_dir,
                    clock=self.clock,
                    on_alarm=self._pool_alarm,
                )
                pool.start()
                self.host_pool = pool
                self._wm_factory = make_whatsmeow_factory(pool)
            factory = self._wm_factory
        assert factory is not None
        return factory(ctx)

    def _pool_alarm(self, kind: str, message: str) -> None:
        """A driver-host alarm (a failed spawn) as daemon.alarm, even with no instance waiting
        for that host (the pool's I/O thread calls this: only quick, non-blocking work)."""
        body = {"time": self.clock.wall(), "kind": kind, "message": message}
        logger.warning("alarm {}: {}", kind, message)
        self.sweep.alarms.append(body)
        self.store.log_event("daemon.alarm", body)
        self.bus.publish("daemon.alarm", body)

    def _seed_config_instances(self) -> None:
        """Instances declared in the config file exist in the store (created once)."""
        for inst in self.cfg.instances:
            if self.store.get_instance(inst.id) is not None:
                continue
            now = time.time()
            try:
                self._create_seeded(inst, now)
            except Exists:
                pass  # clustered: another node seeded it between the read and the insert

    def _create_seeded(self, inst: Any, now: float) -> None:
        self.store.create_instance(
            InstanceRecord(
                instance_id=inst.id,
                tenant=inst.tenant,
                driver=inst.driver,
                settings=dict(inst.settings),
                desired="running" if inst.autostart else "stopped",
                state=str(InstanceState.STOPPED),
                since=now,
                jid=None,
                last_code=None,
                last_reason=None,
                created_at=now,
            )
        )

    # ------------------------------------------------------------------ stop

    def stop(self, timeout: float | None = None) -> None:
        """Drain: refuse new sends, let in-flight sends settle, disconnect, stop, close."""
        if self._stopping:
            self.stopped.wait(timeout)
            return
        self._stopping = True
        t = self.cfg.daemon.shutdown_timeout if timeout is None else timeout
        logger.info("stopping: draining in-flight sends (up to {:g} s)", t)
        if self.fleet is not None:
            self.fleet.accepting = False
        if self.cluster is not None:
            self.cluster.halt()  # take no more leases while the sessions close
        if self.campaigns is not None:
            self.campaigns.stop()  # before the instances: feeders talk to them
        if self.supervisor is not None:
            from concurrent.futures import Future

            done: Future[int] = Future()
            self.supervisor.tell(StopAll(t, done))
            try:
                n = done.result(t + 5)
                logger.info("{} instance(s) stopped", n)
            except Exception as e:
                logger.error("instances did not stop cleanly: {}", e)
        if self.cluster is not None:
            self.cluster.hand_over()  # sessions closed: release every lease at once
            self.cluster = None
        self._teardown()
        logger.info("stopped")
        self.stopped.set()

    def _teardown(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.cluster is not None:  # a failed start: stop the rounds, release what was held
            try:
                self.cluster.hand_over()
            except Exception:
                logger.exception("cluster hand-over failed")
        if self.control is not None:
            try:
                self.control.stop()
            except Exception:
                logger.exception("control server stop failed")
        if self.supervisor is not None:
            try:
                self.supervisor.stop(timeout=5)
            except Exception:
                pass
        if self.host_pool is not None:
            self.host_pool.stop()
        if self.sim is not None and self._shared_sim is None and hasattr(self.sim, "close"):
            self.sim.close()
        self.scheduler.stop()
        self.pruner.stop()
        if self.webhooks is not None:
            try:
                self.webhooks.stop(timeout=10)
            except Exception:
                logger.exception("webhook worker stop failed")
        try:
            self.store.close()
        except Exception:
            logger.exception("store close failed")
        self.lock.release()

    @property
    def state_dir(self) -> Path:
        return self.cfg.state_dir
