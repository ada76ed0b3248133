"""The HTTP gateway: HTTP outside, the control protocol inside (docs/http.md).

A separate process (`waz-actors http`, or started and supervised by `waz-actors run` when
`http.listen` is set) that is only a ZeroMQ client of the daemon: it never opens the store, so
it can run beside the daemon or on another host with CURVE.

Modules: listen (the address setting), client (one asyncio DEALER multiplexing requests),
errors (protocol codes -> HTTP statuses), rest (the /v1 API, table-driven), compat (the seeds'
and WAZIPER's routes), openapi and docs_page (/openapi.json, /docs), metrics (/metrics),
pages (/ ; a dashboard module mounts its routes the same way), app (assembles them), server
(uvicorn), supervise (the daemon's side: runs the gateway as a subprocess).
"""
