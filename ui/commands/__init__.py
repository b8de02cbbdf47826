"""One module per ``emoget`` subcommand.

Each module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed ``argparse.Namespace``; returns an exit code).
Modules are discovered by name, so adding a command means adding a file.
"""
