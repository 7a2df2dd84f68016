# Sourced by the other scripts: where the cache lives and how the build finds llama.cpp.
# The llama.cpp prefix is keyed by the pinned version, our patches and this CPU's features
# (GGML_NATIVE builds only run on the kind of CPU that built them).
STRATEGYD_CACHE="${STRATEGYD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strategyd}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)
# Our patches to that source (scripts/patches/llama.cpp, applied in name order) key the
# source tree and the build too.
LLAMA_PATCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")/patches/llama.cpp" && pwd)
patch_key=$(cat "$LLAMA_PATCHES"/*.patch | sha256sum | cut -c1-8)
LLAMA_SRC="$STRATEGYD_CACHE/llama.cpp/src-$LLAMA_CPP_PYTHON_VERSION-p$patch_key"
# The cmake options every build of that source takes (scripts/setup's library and the
# benchmarks' peer tools), so that peers and the daemon compute alike. GGML_RPC adds
# llama.cpp's RPC backend, through which the daemon puts layers on ggml-rpc-servers
# (docs/scaling.md); the options key the build too.
LLAMA_CMAKE_OPTIONS=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DGGML_RPC=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_CCACHE=OFF)
options_key=$(printf '%s\n' "${LLAMA_CMAKE_OPTIONS[@]}" | sha256sum | cut -c1-6)
LLAMA_PREFIX="$STRATEGYD_CACHE/llama.cpp/$LLAMA_CPP_PYTHON_VERSION-p$patch_key-o$options_key-$cpu_key"
# Package.swift points the rpath of everything it links at this stable link.
LLAMA_CURRENT="$STRATEGYD_CACHE/llama.cpp/current"
export STRATEGYD_CACHE PKG_CONFIG_PATH="$LLAMA_CURRENT/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
