"""Sub-commands of ``python -m bot``: one module each, with ``register(subparsers)``."""
