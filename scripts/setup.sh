#!/usr/bin/env bash
# Creates .venv at the repository root and installs evalkit with everything it needs.
# Idempotent: re-running does nothing unless pyproject.toml or this script changed.
# llama-cpp-python is compiled once per machine and CMake flags, into ~/.cache/evalkit/wheels,
# and every later venv (a fresh clone, CI) installs that wheel in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LLAMA_VERSION=0.3.36

if [[ ! -x .venv/bin/python ]]; then
  echo "evalkit setup: creating .venv" >&2
  "$PY" -m venv .venv
fi

# CMake flags for llama.cpp on this machine: CUDA for a visible NVIDIA GPU with nvcc, else CPU
# (empty: llama.cpp's native default). Its one-line notice is shown when the setup installs.
notice=$(mktemp)
trap 'rm -f "$notice"' EXIT
if [[ -z ${CMAKE_ARGS+x} ]]; then
  CMAKE_ARGS=$("$PY" scripts/llama_cmake_args.py 2>"$notice")
fi
export CMAKE_ARGS

stamp=.venv/.evalkit-installed
want=$(cat pyproject.toml scripts/setup.sh scripts/llama_cmake_args.py <(echo "$CMAKE_ARGS") | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

cat "$notice" >&2
wheel_key=$(echo "$LLAMA_VERSION $CMAKE_ARGS $("$PY" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
wheels=${EVALKIT_WHEELS:-$HOME/.cache/evalkit/wheels}/$wheel_key
if ! ls "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "evalkit setup: compiling llama-cpp-python $LLAMA_VERSION (once per machine, about 5 minutes on 2 cores for the CPU, much longer with CUDA)${CMAKE_ARGS:+ with $CMAKE_ARGS}" >&2
  mkdir -p "$wheels"
  .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$wheels" "llama-cpp-python==$LLAMA_VERSION"
fi

echo "evalkit setup: installing dependencies into .venv" >&2
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
.venv/bin/python -m pip install -q --find-links "$wheels" -e ".[all]"
echo "$want" > "$stamp"
echo "evalkit setup: done" >&2
