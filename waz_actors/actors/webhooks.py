"""The webhook delivery worker's place among the daemon's actors: a thin actor that owns the
worker process's life (waz_actors/delivery/: started and stopped with the daemon, started again
when it dies). Deliveries themselves never run in the daemon: its send path only writes events
(store/webhooks.py), and the worker, in a process of its own, fans them out and POSTs them.
"""

from __future__ import annotations

import pykka

from waz_actors.delivery.supervise import DeliveryProcess


class WebhookActor(pykka.ThreadingActor):
    """Wake-ups go straight down the worker's pipe (DeliveryProcess.notify), not through this
    mailbox: the store's writer thread sends them after every commit that wrote events, and must
    not queue behind anything."""

    def __init__(self, process: DeliveryProcess) -> None:
        super().__init__()
        self.process = process

    def on_start(self) -> None:
        self.process.start()

    def on_stop(self) -> None:
        self.process.stop()


__all__ = ["WebhookActor"]
