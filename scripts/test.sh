#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs it.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in docker-registry skopeo wrk containerd nginx; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# The analysis service's queue, cache and rate limits (and its tests' private servers) need Redis.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The updates tests (tests/updates) run private Mosquitto brokers; mosquitto_passwd makes users.
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# The docs' browser test (tests/api_docs) drives the system's Chromium through Playwright.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# promtool (Debian's prometheus package) checks the alert rules and scrape configs (tests/deploy).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# Real container builds and engines (tests/helpers/containers.py): buildah builds Dockerfiles,
# podman serves the Docker Engine API, runc runs their containers, mmdebstrap makes the Debian
# base image, qemu-user-static (with binfmt-support) runs arm64 RUN steps.
for tool in podman buildah runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
[ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need_apt+=(binfmt-support)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Local services the tests use for real (Postgres is required; started if it is down).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# Redis on 127.0.0.1:6379 (started here, keeping nothing on disk, if it is down).
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
  for _ in $(seq 30); do redis_up && break; sleep 1; done
fi
redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip wheel
# The edge extra (ultralytics, torch) is needed by the YOLO worker's tests.
.venv/bin/pip install -q -e ".[edge,test]"

# The edge programs support Python 3.8 (JetPack 5): a light environment of the oldest Python this
# machine carries (pyenv's 3.8.x; PY38=/path/to/python3.8 to choose), with what the agent and the
# light programs need (edge_ai/requirements-edge.txt: no torch). tests/edge_ai/test_python38.py
# runs them under it; .ci/run runs the agent's and the programs' tests under it too (EDGE_PYTHON).
# Where no 3.8 exists, those tests are skipped (said below).
PY38=${PY38:-$(ls -d "$HOME"/.pyenv/versions/3.8*/bin/python 2>/dev/null | sort -V | tail -1 || true)}
if [ -n "$PY38" ] && [ -x "$PY38" ]; then
  # The agent goes in as a box gets it: its own wheel (edgectl edge build-agent), whose metadata
  # (Requires-Python >=3.8, Requires-Dist) pip follows; the code reinstalled on every run.
  stamp=.venv-py38/.requirements
  if [ ! -x .venv-py38/bin/python ]; then
    "$PY38" -m venv .venv-py38
  fi
  .venv/bin/python -m edgectl.main edge build-agent --out .venv-py38/dist >/dev/null
  if ! cmp -s edge_ai/requirements-edge.txt "$stamp"; then
    .venv-py38/bin/pip install -q --upgrade pip wheel
    .venv-py38/bin/pip install -q .venv-py38/dist/edge_agent-*.whl
    cp edge_ai/requirements-edge.txt "$stamp"
  fi
  .venv-py38/bin/pip install -q --no-deps --force-reinstall .venv-py38/dist/edge_agent-*.whl
  export EDGE_PY38="$PWD/.venv-py38/bin/python"
else
  echo "no Python 3.8 found (set PY38=...): the edge programs' Python 3.8 tests are skipped" >&2
fi

export YOLO_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
