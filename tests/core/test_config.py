"""Config parsing: every bad file is one clear line naming the key; defaults are the seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from waz_actors import config
from waz_actors.config import ConfigError


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"daemon": {"time_scal": 1}},
            "daemon.time_scal: unknown setting (did you mean 'time_scale'?)",
        ),
        ({"conection": {}}, "conection: unknown section (did you mean 'connection'?)"),
        ({"daemon": {"time_scale": 0}}, "daemon.time_scale: must be greater than 0"),
        ({"daemon": {"time_scale": "fast"}}, "daemon.time_scale: expected a number"),
        ({"queue": {"max_size": 1.5}}, "queue.max_size: expected an integer"),
        ({"queue": {"max_size": -1}}, "queue.max_size: must not be negative"),
        ({"queue": {"max_size": True}}, "queue.max_size: expected an integer"),
        ({"daemon": {"demo": "yes"}}, "daemon.demo: expected true or false"),
        ({"connection": {"throttle": -5}}, "connection.throttle: must be greater than 0"),
        ({"queue": {"retry_multiplier": 0.5}}, "queue.retry_multiplier: must be at least 1"),
        ({"connection": {"backoff_jitter": 2}}, "connection.backoff_jitter: must be a fraction"),
        ({"sim": {"lost_ack_delivery_rate": 1.5}}, "sim.lost_ack_delivery_rate: must be a fracti"),
        ({"sim": {"qr_interval": 0}}, "sim.qr_interval: must be greater than 0"),
        ({"control": {"tcp_endpoints": "tcp://x"}}, "control.tcp_endpoints: expected a list"),
        ({"instances": [{"driver": "sim"}]}, "instances[0].id: missing"),
        (
            {"instances": [{"id": "a", "driver": "simm"}]},
            "unknown driver 'simm' (did you mean 'sim'?)",
        ),
        ({"instances": [{"id": "a"}, {"id": "a"}]}, "instances[1].id: duplicate instance id"),
        ({"instances": [{"id": "a", "colour": 1}]}, "instances[0].colour: unknown setting"),
        ({"instances": {"id": "a"}}, "instances: expected an array of tables"),
        ({"daemon": {"log_format": "xml"}}, "daemon.log_format: must be 'text' or 'json'"),
        ({"daemon": 3}, "daemon: expected a table"),
        ({"store": {"url": "mysql://x/y"}}, "store.url: must be a postgresql:// URL"),
        (
            {"store": {"url": "postgresql://h/db", "path": "/x.db"}},
            "store.url and store.path: set one",
        ),
    ],
)
def test_bad_config_is_one_line_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config.parse(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)


def test_good_file_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "ok.toml"
    f.write_text(
        "[daemon]\ntime_scale = 0.5\n[queue]\nmax_size = 7\n"
        '[[instances]]\nid = "shop-1"\ntenant = "acme"\nsettings = { phone = "62812" }\n'
    )
    cfg = config.load(f).with_overrides(state_dir=str(tmp_path / "s"))
    assert cfg.daemon.time_scale == 0.5 and cfg.queue.max_size == 7
    assert cfg.instances[0].settings == {"phone": "62812"}
    assert cfg.db_path == tmp_path / "s" / "waz.db"
    assert cfg.control_endpoint.startswith("ipc://") and cfg.control_endpoint.endswith(
        "/control.sock"
    )


def test_store_url_selects_postgresql_and_empty_keeps_sqlite(tmp_path: Path) -> None:
    cfg = config.parse({"daemon": {"state_dir": str(tmp_path)}})
    assert cfg.store_target == tmp_path / "waz.db"
    url = "postgresql://waz@db.example/waz"
    assert config.parse({"store": {"url": url}}).store_target == url
