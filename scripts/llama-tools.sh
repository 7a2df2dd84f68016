# Sourced by the benchmarks (after env.sh): builds llama.cpp's own benchmark tools, the
# peers the Engine and the daemon are measured against, from the same pinned source and
# cmake flags as scripts/setup, once, into the cache. Sets llama_bench and batched_bench.
src_root="$LLAMA_SRC"
if [ ! -f "$LLAMA_PREFIX/.complete" ] || [ ! -f "$src_root/.extracted" ]; then
  echo "llama.cpp is not set up for this machine; run scripts/setup first" >&2
  exit 1
fi
tools_dir="$STRATEGYD_CACHE/llama.cpp/tools-$LLAMA_CPP_PYTHON_VERSION-p$patch_key-o$options_key-$cpu_key"
if [ ! -f "$tools_dir/.complete" ]; then
  echo "== llama.cpp peer tools -> $tools_dir" >&2
  cmake -S "$src_root/vendor/llama.cpp" -B "$tools_dir/build" "${LLAMA_CMAKE_OPTIONS[@]}" \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON >&2
  cmake --build "$tools_dir/build" -j "$(nproc)" --target llama-bench llama-batched-bench >&2
  touch "$tools_dir/.complete"
fi
llama_bench="$tools_dir/build/bin/llama-bench"
batched_bench="$tools_dir/build/bin/llama-batched-bench"
