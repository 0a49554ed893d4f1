"""CLI subcommands, one module each (see weather_restore_ros.cli)."""
