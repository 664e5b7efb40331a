"""The `chipp-builder` command line: serve, demo, import, apps, keys and db (see docs/cli.md)."""
