"""The control plane: wire protocol, server, client library and command handlers."""
