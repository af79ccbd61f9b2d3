"""The names of the Celery tasks and queues: the contract between the API and the workers.

A module of its own, free of imports, so that the CLI can name the queues in its help
without loading the distributed mode's adapters."""

PLAN_TASK = "facefleet.plan"
CHUNK_TASK = "facefleet.chunk"
STITCH_TASK = "facefleet.stitch"

PLANNING, CHUNKS, STITCHING = "planning", "chunks", "stitching"
QUEUES = (PLANNING, CHUNKS, STITCHING)
