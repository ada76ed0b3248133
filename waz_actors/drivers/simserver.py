"""Compatibility: the sim server and its client moved to `waz_actors.drivers.sim.server` and
`waz_actors.drivers.sim.remote`; run a server with `waz-actors sim serve` (this module is no
longer a program). It only re-exports, and can go once no branch imports it.
"""

from waz_actors.drivers.sim.remote import DEFAULT_HEARTBEAT, RemoteSimNetwork, RemoteSimSession
from waz_actors.drivers.sim.server import DEFAULT_SESSION_TTL, SimServer, serve
from waz_actors.drivers.sim.wire import decode_event, encode_event

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_SESSION_TTL",
    "RemoteSimNetwork",
    "RemoteSimSession",
    "SimServer",
    "decode_event",
    "encode_event",
    "serve",
]
