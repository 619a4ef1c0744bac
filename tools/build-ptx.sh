#!/usr/bin/env bash
# Regenerates kernels/ptx/*.ptx from kernels/*.cu (PTX ISA 7.8 for compute_80, loaded
# and JIT-compiled by every driver >= 520 for the A100 and later).
# Usage: tools/build-ptx.sh [OUTDIR]   (default kernels/ptx)
# Output is deterministic: sources are compiled from kernels/ by relative name and
# without line info, so no path or timestamp lands in the PTX.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/kernels/ptx}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
nvcc="${NVCC:-nvcc}"
ccbin=()
if [[ -z "${NVCC_CCBIN:-}" ]] && command -v clang-14 >/dev/null 2>&1; then ccbin=(-ccbin clang-14)
elif [[ -n "${NVCC_CCBIN:-}" ]]; then ccbin=(-ccbin "$NVCC_CCBIN"); fi
cd "$root/kernels"
for src in *.cu; do
  name="${src%.cu}"
  "$nvcc" "${ccbin[@]}" -ptx -arch=compute_80 -std=c++17 -O3 -o "$out/$name.ptx" "$src"
done
echo "built $(ls "$out"/*.ptx | wc -l) PTX files into $out"
