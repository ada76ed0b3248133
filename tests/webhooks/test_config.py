"""The [webhooks] settings of the delivery worker: values it cannot run with are refused at
start-up with the setting's name, not found later as a worker that crashes at every restart."""

from __future__ import annotations

import pytest

from waz_actors.config import ConfigError, parse


def test_worker_settings_are_checked() -> None:
    cfg = parse({"webhooks": {"worker_nice": 19, "worker_sched_idle": True, "concurrency": 1}})
    assert cfg.webhooks.worker_nice == 19 and cfg.webhooks.worker_sched_idle
    with pytest.raises(ConfigError, match=r"webhooks\.worker_nice: must not be negative"):
        parse({"webhooks": {"worker_nice": -1}})  # os.nice cannot raise a priority unprivileged
    with pytest.raises(ConfigError, match=r"webhooks\.worker_nice: must be 0 to 19"):
        parse({"webhooks": {"worker_nice": 20}})
    with pytest.raises(ConfigError, match=r"webhooks\.concurrency: must be at least 1"):
        parse({"webhooks": {"concurrency": 0}})
