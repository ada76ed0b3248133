from tests.control.conftest import core, short_dir, start_daemon  # noqa: F401
