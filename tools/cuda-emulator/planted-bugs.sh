#!/usr/bin/env bash
# Proof that the GPU tests on the emulated CUDA device can fail: plants known bugs, one at a time,
# in copies of the kernels and of the launch code, runs the GPU tests that should notice, and checks
# that each bug is caught, and how. Exits 1 if any bug goes unnoticed.
#
#   kernel bugs (a copy of kernels/, built into a copy of the emulator):
#     alibi-sign      the ALiBi bias added instead of subtracted in decode attention
#     missing-barrier the __syncthreads between the warps' partial sums and their final sum removed
#                     from block_sum (common.cuh)
#     tail-guard      the GEMV's output-row guard off by one (o > n instead of o >= n)
#   launch-code bugs (a copy of src/, built apart):
#     leading-dim     cublasGemmEx given the weight's input width as its leading dimension, not the
#                     padded row stride
#     param-size      the weight streamer passing a 4-byte int where the convert kernel takes 8 bytes
#   setup fault:
#     broken-driver   a driver whose cuInit fails (the emulator without its kernel library): the
#                     GPU tests must fail, not skip
#
# Usage: tools/cuda-emulator/planted-bugs.sh [--tests DIR] [WORKDIR]
#   --tests DIR: an existing build of tests/GptJx.Cuda.Tests (with its cuda-emulator/ folder) to use
#   instead of building one; WORKDIR defaults to a temporary folder, removed after.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
built=""
if [[ "${1:-}" == --tests ]]; then built="$(cd "$2" && pwd)"; shift 2; fi
work="${1:-}"
if [[ -z "$work" ]]; then work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
failures=0
report() { printf '%-16s %s\n' "$1" "$2"; }

build_tests() {  # source-root output-dir [msbuild args...]
  local src="$1" out="$2"; shift 2
  dotnet build "$src/tests/GptJx.Cuda.Tests" -c Release -o "$out" -nologo -v quiet "$@" > "$out.build.log" 2>&1 \
    || { echo "build of $src failed:"; tail -20 "$out.build.log"; exit 1; }
}

# run_case NAME DRIVER_DIR TESTS_DIR FILTER PATTERN [ENV...]: the tests must fail and print PATTERN.
run_case() {
  local name="$1" emu="$2" tests="$3" filter="$4" pattern="$5"; shift 5
  local log="$work/$name.log"
  env GPTJX_CUDA_DRIVER_PATH="$emu/libcuda.so.1" GPTJX_CUBLAS_PATH="$emu/libcublas.so" "$@" \
    dotnet "$tests/GptJx.Cuda.Tests.dll" --filter "$filter" > "$log" 2>&1
  local rc=$?
  local evidence
  evidence="$(grep -m1 -E "$pattern" "$log" | sed -E 's/^[[:space:]]+//' | cut -c1-220)"
  if [[ $rc != 0 && -n "$evidence" ]]; then
    report "$name" "caught: $evidence"
  else
    report "$name" "NOT CAUGHT (exit $rc; see $log)"
    failures=$((failures + 1))
  fi
}

# plant FILE PERL-EXPRESSION: edits FILE in place; fails if nothing changed.
plant() {
  local before
  before="$(md5sum "$1")"
  perl -0pi -e "$2" "$1"
  [[ "$(md5sum "$1")" != "$before" ]] || { echo "planting failed: $2 changed nothing in $1"; exit 1; }
}

if [[ -n "$built" ]]; then
  ln -s "$built" "$work/tests"
else
  echo "building the GPU tests and the emulated device"
  build_tests "$root" "$work/tests"
fi
good="$work/tests/cuda-emulator"
[[ -f "$good/libcuda.so.1" ]] || { echo "the emulated device was not built"; exit 1; }

# ---- kernel bugs ---------------------------------------------------------------------------------
kernel_bug() {  # NAME FILE PERL FILTER PATTERN
  local name="$1" file="$2" edit="$3" filter="$4" pattern="$5"
  cp -a "$root/kernels" "$work/$name-kernels"
  plant "$work/$name-kernels/$file" "$edit"
  cp -a "$good" "$work/$name-emu"  # objects and their times: only the planted file recompiles
  bash "$root/tools/cuda-emulator/build.sh" "$work/$name-emu" "$work/$name-kernels" > "$work/$name-build.log" 2>&1 \
    || { echo "emulator build for $name failed:"; tail -20 "$work/$name-build.log"; exit 1; }
  run_case "$name" "$work/$name-emu" "$work/tests" "$filter" "$pattern" GPTJX_REQUIRE_GPU=1
}

kernel_bug alibi-sign attention_decode.cu 's/x = dot \* score_scale - slope \*/x = dot * score_scale + slope */' \
  "Name~ChunkedPrefillThenDecode" "Expected|element [0-9]+:"
kernel_bug missing-barrier common.cuh 's/(if \(lane == 0\) scratch\[warp\] = v;)\n    __syncthreads\(\);/$1/' \
  "Name~LayerNormMatchesCpu" "race|synchronization points|element [0-9]+:"
kernel_bug tail-guard gemv.cu 's/if \(o >= n\) return;/if (o > n) return;/' \
  "Name~PaddedWeightRowsWithOddInputWidth" "out-of-bounds|ILLEGAL_ADDRESS"

# ---- launch-code bugs -------------------------------------------------------------------------------
launch_bug() {  # NAME FILE PERL FILTER PATTERN
  local name="$1" file="$2" edit="$3" filter="$4" pattern="$5"
  local copy="$work/$name-src"
  mkdir -p "$copy"
  cp -a "$root/src" "$root/tests" "$root/kernels" "$root/Directory.Build.props" "$copy/"
  rm -rf "$copy"/src/*/bin "$copy"/src/*/obj "$copy"/tests/*/bin "$copy"/tests/*/obj
  plant "$copy/$file" "$edit"
  build_tests "$copy" "$work/$name-tests" -p:BuildCudaEmulator=false
  run_case "$name" "$good" "$work/$name-tests" "$filter" "$pattern" GPTJX_REQUIRE_GPU=1
}

launch_bug leading-dim src/GptJx.Cuda/LinearPlans.cs 's/return new GemmShape\(CuBlas.OpT, CuBlas.OpN, n, rows, k, ldw, k, n\);/return new GemmShape(CuBlas.OpT, CuBlas.OpN, n, rows, k, k, k, n);/' \
  "Name~PaddedWeightRowsWithOddInputWidth" "Expected|element [0-9]+:"
launch_bug param-size src/GptJx.Cuda/WeightStreamer.cs 's/\.Long\(leadingDim\)\.Long\(rowOffset \+ r0\)\.Int\(colOffset\)/.Int((int)leadingDim).Long(rowOffset + r0).Int(colOffset)/' \
  "Name~EmbedGathersAndScales" "takes parameters of"

# ---- a broken driver ----------------------------------------------------------------------------------
run_case broken-driver "$good" "$work/tests" "Name~EmbedGathersAndScales" "not usable" \
  GPTJX_CUDA_EMULATOR_KERNELS=/nonexistent/libgptjx-emu-kernels.so

if (( failures )); then echo "$failures planted bug(s) went unnoticed"; exit 1; fi
echo "every planted bug was caught"
