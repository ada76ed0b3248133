"""The `waz-actors` command: a thin user of the control client (and of the runtime for `run`)."""
