#!/bin/sh
# Run once before the API starts (an init container, or the compose "migrate" service):
# wait for PostgreSQL to accept connections, then bring the schema to the latest revision.
set -eu
: "${FACEFLEET_DATABASE_URL:?FACEFLEET_DATABASE_URL must be set}"
exec facefleet migrate head --wait "${FACEFLEET_DB_WAIT_S:-60}"
