"""Runtime: start/stop order, logging, systemd integration."""
