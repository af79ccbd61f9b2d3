"""The ``facefleet`` command: the composition root. It builds the settings and starts the
API, the workers or an embedded job; it imports ``api``, ``worker`` and the core, and none
of them imports it."""
