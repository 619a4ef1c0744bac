#!/usr/bin/env bash
# Builds the emulated CUDA device from source with the system C++ compiler:
#   OUTDIR/libcuda.so.1                the CUDA driver API subset the engine uses
#   OUTDIR/libcublas.so                the cuBLAS subset (cublasGemmEx and handle calls)
#   OUTDIR/libgptjx-emu-kernels.so     kernels/*.cu compiled for the host, loaded by the driver
# Usage: tools/cuda-emulator/build.sh OUTDIR [KERNELS_DIR]
#   KERNELS_DIR defaults to the repository's kernels/. CXX picks the compiler (default g++).
# Run the engine on it with GPTJX_CUDA_DRIVER_PATH=OUTDIR/libcuda.so.1 GPTJX_CUBLAS_PATH=OUTDIR/libcublas.so.
# Only what changed is rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:?usage: build.sh OUTDIR [KERNELS_DIR]}"
kernels="$(cd "${2:-$root/kernels}" && pwd)"
mkdir -p "$out/obj"
out="$(cd "$out" && pwd)"
obj="$out/obj"
cxx="${CXX:-g++}"
command -v "$cxx" >/dev/null || { echo "build.sh: no C++ compiler ($cxx); install g++ or set CXX" >&2; exit 1; }

# Built where it runs, for the host's own instruction set (GPTJX_CUDA_EMULATOR_ARCH overrides -march).
# Multiplies and adds stay apart (-ffp-contract=off), so results do not depend on the host (nvcc does
# contract them on the device: one more reason device results are compared with tolerances).
flags=(-std=c++17 -O3 "-march=${GPTJX_CUDA_EMULATOR_ARCH:-native}" -ffp-contract=off -fPIC -fno-strict-aliasing -U_FORTIFY_SOURCE -Wall -Wno-unused-function -Wno-unused-variable -Wno-unknown-pragmas)
jobs="$(nproc 2>/dev/null || echo 2)"

# newer TARGET DEPS...: true when TARGET is missing or older than a dependency
newer() { local t="$1"; shift; [[ ! -e "$t" ]] && return 0; local d; for d in "$@"; do [[ "$d" -nt "$t" ]] && return 0; done; return 1; }

pids=()
run() { "$@" & pids+=($!); if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi; }
finish() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }

# ---- driver -------------------------------------------------------------------------------------
driver_objs=()
for src in "$here"/driver/*.cpp; do
  o="$obj/driver-$(basename "${src%.cpp}").o"
  driver_objs+=("$o")
  newer "$o" "$src" "$here"/driver/*.h "$here"/device/emu_abi.h && run "$cxx" "${flags[@]}" -c "$src" -o "$o"
done
if [[ "$(uname -m)" == x86_64 ]]; then
  o="$obj/driver-fiber-asm.o"
  driver_objs+=("$o")
  newer "$o" "$here/driver/fiber_x86_64.S" && run "$cxx" -c "$here/driver/fiber_x86_64.S" -o "$o"
fi
o="$obj/cublas.o"
newer "$o" "$here/cublas/cublas.cpp" "$here/device/emu_half.h" && run "$cxx" "${flags[@]}" -c "$here/cublas/cublas.cpp" -o "$o"

# ---- kernels: find each file's extern "C" __global__ functions, register them, compile ------------
device=(-fno-extern-tls-init -include "$here/device/emu_device.h" -I "$here/include" -I "$here/device" -I "$kernels")
headers=("$here"/device/*.h "$here"/include/*.h "$kernels"/*.cuh "$here/build.sh")
kernel_objs=()
dynamic_names=()
for src in "$kernels"/*.cu; do
  name="$(basename "${src%.cu}")"
  pre="$("$cxx" -std=c++17 -E -P -DGPTJX_EMU_LIST_KERNELS "${device[@]}" -x c++ "$src" | tr '\n' ' ')"
  mapfile -t names < <(grep -oE 'extern "C" __gptjx_emu_global__ void +[A-Za-z_][A-Za-z0-9_]* *\(' <<<"$pre" | sed -E 's/.*void +([A-Za-z0-9_]+).*/\1/')
  mapfile -t -O "${#dynamic_names[@]}" dynamic_names < <(grep -oE 'extern thread_local [^;]*\[ *\]' <<<"$pre" | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*) *\[ *\]$/\1/')
  wrapper="$obj/kernels-$name.cpp"
  { echo "#include \"$name.cu\""; echo "#include \"emu_registry.h\""; for k in "${names[@]}"; do echo "GPTJX_EMU_KERNEL($k)"; done; } > "$wrapper.new"
  cmp -s "$wrapper.new" "$wrapper" && rm "$wrapper.new" || mv "$wrapper.new" "$wrapper"
  o="$obj/kernels-$name.o"
  kernel_objs+=("$o")
  newer "$o" "$wrapper" "$src" "${headers[@]}" && run "$cxx" "${flags[@]}" "${device[@]}" -x c++ -c "$wrapper" -o "$o"
done

# The dynamic shared memory arrays (`extern __shared__` names), sized for the largest opt-in of any profile.
shared="$obj/kernels-dynamic-shared.cpp"
{
  echo '#include "emu_device.h"'
  echo 'extern "C" __attribute__((visibility("default"))) const size_t gptjx_emu_dynamic_shared_bytes = 232448;'
  mapfile -t unique < <(printf '%s\n' gptjx_emu_dynamic_shared_default "${dynamic_names[@]}" | awk 'NF && !seen[$0]++')
  for n in "${unique[@]}"; do echo "thread_local __attribute__((aligned(256))) unsigned char $n[232448];"; done
  echo 'extern "C" __attribute__((visibility("default"))) unsigned char* gptjx_emu_dynamic_shared(int i) {'
  echo '    switch (i) {'
  i=0; for n in "${unique[@]}"; do echo "        case $i: return $n;"; i=$((i + 1)); done
  echo '        default: return nullptr;'
  echo '    }'
  echo '}'
} > "$shared.new"
cmp -s "$shared.new" "$shared" && rm "$shared.new" || mv "$shared.new" "$shared"
for src in "$shared" "$here/device/kernel_library.cpp"; do
  o="$obj/$(basename "${src%.cpp}").o"
  kernel_objs+=("$o")
  newer "$o" "$src" "${headers[@]}" && run "$cxx" "${flags[@]}" -I "$here/device" -c "$src" -o "$o"
done
finish

# ---- link ----------------------------------------------------------------------------------------
newer "$out/libcuda.so.1" "${driver_objs[@]}" && \
  "$cxx" -shared -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so.1" "${driver_objs[@]}" -ldl -lpthread
newer "$out/libcublas.so" "$obj/cublas.o" && \
  "$cxx" -shared -Wl,-soname,libcublas.so -o "$out/libcublas.so" "$obj/cublas.o" -ldl
newer "$out/libgptjx-emu-kernels.so" "${kernel_objs[@]}" && \
  "$cxx" -shared -o "$out/libgptjx-emu-kernels.so" "${kernel_objs[@]}"
echo "emulated CUDA device built in $out (kernels from $kernels)"
