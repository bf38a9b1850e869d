#!/usr/bin/env bash
# Builds (once) llama.cpp's llama-bench, llama-perplexity and llama-server with the same CMake
# flags evalkit's llama-cpp-python was built with, using ../shared/tools/build-llama-tools.sh,
# so comparisons run the same kernels. Prints the bin directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
builder=${LLAMA_TOOLS_BUILDER:-$here/../../shared/tools/build-llama-tools.sh}
[[ -x $builder || -f $builder ]] || { echo "llama-tools: $builder not found" >&2; exit 2; }
if [[ -z ${CMAKE_ARGS+x} ]]; then CMAKE_ARGS=$(python3 "$here/llama_cmake_args.py"); fi
export CMAKE_ARGS
key=$(echo "$CMAKE_ARGS" | sha256sum | cut -c1-12)
export LLAMA_TOOLS_HOME=${LLAMA_TOOLS_HOME:-$HOME/.cache/llama-tools/$key}
bash "$builder" "${1:-0.3.36}"
