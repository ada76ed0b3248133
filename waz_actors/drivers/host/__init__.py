"""Driver hosts: subprocesses that run whatsmeow sessions away from the daemon.

`main` is the host process, `protocol` the msgpack messages between daemon and host, `pool` the
daemon side (`HostPool`) that starts, heartbeats, kills and restarts hosts.
"""
