"""Celery workers: planning, chunk processing and stitching, built on the job core."""
