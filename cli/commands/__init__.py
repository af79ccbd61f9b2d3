"""Sub-commands of the ``facefleet`` CLI; each module has ``register(subparsers)``."""
