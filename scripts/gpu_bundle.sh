#!/usr/bin/env bash
# What a bare GPU machine needs beyond its own Python 3.12 + PyTorch + torchvision + numpy + pandas + matplotlib +
# scikit-learn + pytest, gathered here (a machine with the package registry) into one folder that travels with the
# working tree: bash scripts/gpu_bundle.sh <dir>   (docs/clusters.md, "On a GPU", gives the command that unpacks it there).
#
#   <dir>/wheels/                 Python 3.12 manylinux wheels, each package once, no dependency pulled twice: Hydra
#                                 and its parsers (the configs), tqdm, and BackPACK (gpu_check's reference trace).
#                                 wandb, submitit and pyhessian stay out: the GPU commands run with
#                                 logger.mode=disabled, the local launcher and our own curvature code.
#   <dir>/FashionMNIST/raw/       the four Fashion-MNIST files (dataset.root=<dir>).
#   <dir>/requirements.txt        the pinned list the GPU machine installs with pip --no-index.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash scripts/gpu_bundle.sh <dir> (e.g. gpu_bundle; it must fit the 64 MiB a working tree carries)" >&2
    exit 2
fi
BUNDLE=$1
case "$BUNDLE" in /*) ;; *) BUNDLE="$PWD/$BUNDLE" ;; esac  # named from where the command is typed
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LIMIT_MIB=60
# The packages, at the versions `make install` put in .venv when there is one (the GPU runs what CI tested); the
# GPU machine's own torch (2.11) satisfies BackPACK's range. antlr4-python3-runtime (omegaconf's parser) is published
# only as a source archive for the version omegaconf pins: it is built to a wheel here.
BINARY=(hydra-core omegaconf PyYAML packaging tqdm backpack-for-pytorch einops unfoldNd)
SOURCE_ONLY=(antlr4-python3-runtime)
pinned() {  # name -> name==version installed in .venv, or the bare name
    if [ -x .venv/bin/python ]; then
        .venv/bin/python -c "import importlib.metadata as m, sys
for name in sys.argv[1:]:
    try: print(f'{name}=={m.version(name)}')
    except m.PackageNotFoundError: print(name)" "$@"
    else printf '%s\n' "$@"; fi
}
mapfile -t PACKAGES < <(pinned "${BINARY[@]}")
mapfile -t SOURCE_PACKAGES < <(pinned "${SOURCE_ONLY[@]}")

# A bundle built before holds other versions: pip --no-index on the GPU machine would find two of a package and
# refuse (ResolutionImpossible). Its wheels are replaced, never added to.
rm -rf "$BUNDLE/wheels"
mkdir -p "$BUNDLE/wheels" "$BUNDLE/FashionMNIST/raw"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$BUNDLE/wheels" \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any "${PACKAGES[@]}"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$BUNDLE/wheels" "${SOURCE_PACKAGES[@]}"
printf '%s\n' "${PACKAGES[@]}" "${SOURCE_PACKAGES[@]}" > "$BUNDLE/requirements.txt"

FMNIST_FOUND=
for source in data/FashionMNIST/raw /usr/share/datasets/fashion-mnist; do
    if ls "$source"/train-images-idx3-ubyte* >/dev/null 2>&1; then FMNIST_FOUND=$source; break; fi
done
if [ -z "$FMNIST_FOUND" ]; then
    echo "Fashion-MNIST not found: run 'make fmnist' (Debian's dataset-fashion-mnist) first" >&2
    exit 1
fi
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    file=$(ls "$FMNIST_FOUND/$name".gz 2>/dev/null || ls "$FMNIST_FOUND/$name")
    cp "$file" "$BUNDLE/FashionMNIST/raw/"
done

SIZE_MIB=$(du -sm "$BUNDLE" | cut -f1)
if [ "$SIZE_MIB" -gt "$LIMIT_MIB" ]; then
    echo "the bundle is ${SIZE_MIB} MiB, over ${LIMIT_MIB} MiB: it would not travel with the working tree" >&2
    exit 1
fi
echo "bundle ready in $BUNDLE: ${SIZE_MIB} MiB, $(ls "$BUNDLE/wheels" | wc -l) wheels, Fashion-MNIST from $FMNIST_FOUND"
