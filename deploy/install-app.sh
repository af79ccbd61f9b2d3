#!/bin/sh
# Image build step shared by the cpu and gpu targets: install FaceFleet into /opt/venv under
# the pinned versions, swap in onnxruntime-gpu (same version) for the gpu target, make the
# writable folders for uid 10001, and optionally bake the models in.
#   install-app.sh cpu|gpu [BAKE_MODELS]
set -eu
variant="$1"
bake="${2:-0}"
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir -c /app/constraints.txt /app
# the demo's sample photos: the insightface package alone (its dependencies are the tests')
/opt/venv/bin/pip install --no-cache-dir -c /app/constraints.txt --no-deps insightface
if [ "$variant" = "gpu" ]; then
  version="$(sed -n 's/^onnxruntime==//p' /app/constraints.txt)"
  /opt/venv/bin/pip uninstall -y onnxruntime
  /opt/venv/bin/pip install --no-cache-dir "onnxruntime-gpu==${version}"
fi
mkdir -p /var/lib/facefleet /models /tmp/facefleet-metrics
if [ "$bake" = "1" ]; then
  FACEFLEET_MODEL_DIR=/models /opt/venv/bin/facefleet models download
fi
chown -R 10001:10001 /var/lib/facefleet /models /tmp/facefleet-metrics
