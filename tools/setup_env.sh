#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with the pinned
# OpenMMLab stack. Usage: tools/setup_env.sh [VENV_DIR]   (default: .venv)
#
# Steps: venv -> build tools -> torch (CPU wheel) -> mmengine -> mmcv 2.1.0
# compiled from source with ops (about 10 min on 2 cores, cached by pip
# afterwards) -> mmdet, mmdet3d -> test tools -> mmbinpc (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY=${PYTHON:-python3}
CONS=requirements/constraints.txt
log() { printf '\n[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
export PIP_DISABLE_PIP_VERSION_CHECK=1

# torch 2.13 declares setuptools>=77, so any pip call that resolves torch's
# dependencies upgrades setuptools and removes pkg_resources, which mmcv's
# setup.py and mmengine's config loader (mmdet3d:: paths) import. Re-pin it
# after such steps. pip reports the declared conflict with torch; that is
# expected, so it goes to a log.
pin_setuptools() {
  "${PIP[@]}" install -q 'setuptools<70' > "$VENV/setuptools-pin.log" 2>&1 \
    || { cat "$VENV/setuptools-pin.log" >&2; exit 1; }
}

log "build tools and torch"
"${PIP[@]}" install -q -c "$CONS" -r requirements/build.txt
pin_setuptools

log "mmengine"
"${PIP[@]}" install -q -c "$CONS" mmengine==0.10.7

if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  log "mmcv 2.1.0 with ops already installed"
else
  log "mmcv 2.1.0 with compiled ops (from source; ~10 min on 2 cores the first time, cached after)"
  # Build isolation would fetch a newer setuptools without pkg_resources, so the
  # build uses the environment's own setuptools<70 and torch.
  # Progress: one line per compiled source file (ninja's [i/n] counter).
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" install -v --no-build-isolation \
      -c "$CONS" mmcv==2.1.0 2>&1 \
    | tee "$VENV/mmcv-build.log" \
    | sed -nu -E 's#^ *(\[[0-9]+/[0-9]+\]) .* -c [^ ]*/([^/ ]+) .*#  mmcv build \1 \2#p;
                  /Successfully|ERROR|error:|Using cached|Building wheel|Created wheel/p' \
    | cut -c1-160
  "$VENV/bin/python" -c "import mmcv.ops" \
    || { echo "mmcv ops failed to import; see $VENV/mmcv-build.log" >&2; exit 1; }
fi

log "mmdet, mmdet3d and the other runtime requirements"
"${PIP[@]}" install -q -c "$CONS" -r requirements/runtime.txt

log "test tools"
"${PIP[@]}" install -q -c "$CONS" -r requirements/tests.txt

pin_setuptools

log "mmbinpc (editable)"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .

log "checking the environment"
"$VENV/bin/python" -W ignore::DeprecationWarning -c "import pkg_resources, mmcv.ops, mmdet, mmdet3d, numba, mmbinpc; \
print('mmbinpc', mmbinpc.__version__, '| mmdet3d', mmdet3d.__version__, '| mmcv', mmcv.__version__)"

log "environment ready: $VENV"
