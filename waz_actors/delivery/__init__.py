"""Webhook delivery: a worker process of its own, spawned and supervised by the daemon.

`worker` is the delivery loop (asyncio, aiohttp), `main` the process around it (its pipes to
the daemon, its CPU priority), `supervise` the daemon's side (spawn, wake-ups, restart).
docs/webhooks.md says why a process and why aiohttp.
"""
