"""Video and face processing. Knows nothing of Flask, Celery or databases."""
