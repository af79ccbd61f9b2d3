"""The test stack as a library: real services (a PostgreSQL database, a private Redis, the
broker's queues, a moto S3 server), the fleet's processes, and the helpers that drive a task
over HTTP, each a plain function or context manager that undoes what it does. The conftest
files are thin fixtures over it, and ``bench/`` uses it directly; no test imports another
test module or a conftest."""
