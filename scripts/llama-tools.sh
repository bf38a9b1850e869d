#!/usr/bin/env bash
# Builds llama.cpp's llama-server, llama-bench and llama-perplexity once per machine, from the
# llama.cpp revision vendored in the llama-cpp-python evalkit runs and with the same CMake flags
# (scripts/llama_cmake_args.py, or the CMAKE_ARGS you set), so every comparison runs the same
# kernels. Cached in ~/.cache/evalkit/llama-tools/<version>-<flags hash>/ (EVALKIT_LLAMA_TOOLS
# overrides the root); a re-run only prints the bin directory, which is always the last line.
#   usage: bash scripts/llama-tools.sh [LLAMA_CPP_PYTHON_VERSION]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
py=python3
[[ -x $root/.venv/bin/python ]] && py=$root/.venv/bin/python
ver=${1:-$("$py" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo 0.3.36)}
if [[ -z ${CMAKE_ARGS+x} ]]; then CMAKE_ARGS=$(python3 "$here/llama_cmake_args.py" 2>/dev/null); fi  # setup.sh already said CPU or CUDA
key=$(echo "$ver $CMAKE_ARGS" | sha256sum | cut -c1-12)
home=${EVALKIT_LLAMA_TOOLS:-$HOME/.cache/evalkit/llama-tools}/$ver-$key
bin=$home/build/bin
tools=(llama-server llama-bench llama-perplexity)
have_all() { for t in "${tools[@]}"; do [[ -x $bin/$t ]] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

mkdir -p "$home"
src=$home/src
if [[ ! -f $src/CMakeLists.txt ]]; then
  echo "llama-tools: fetching the llama-cpp-python $ver source (its vendored llama.cpp)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$ver" >&2
  tar xzf "$tmp"/llama_cpp_python-"$ver".tar.gz -C "$tmp"
  rm -rf "$src.partial" && mv "$tmp/llama_cpp_python-$ver/vendor/llama.cpp" "$src.partial"
  mv "$src.partial" "$src"
fi
echo "llama-tools: building ${tools[*]} (once per machine, about 6-12 minutes on 2 cores)${CMAKE_ARGS:+ with $CMAKE_ARGS}" >&2
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags
cmake -S "$src" -B "$home/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON ${CMAKE_ARGS} >&2
cmake --build "$home/build" -j "${JOBS:-$(nproc)}" --target "${tools[@]}" >&2
have_all || { echo "llama-tools: the build finished without ${tools[*]}" >&2; exit 1; }
echo "$bin"
