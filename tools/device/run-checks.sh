#!/usr/bin/env bash
# Runs every GPU check on a CUDA host that has no .NET SDK, from a bundle made by
# tools/device/make-bundle.sh. Writes logs and results under OUTDIR; finishes within 8 minutes.
# Usage (repository root, bundle in ./bundle):  tools/device/run-checks.sh OUTDIR
#   GPTJX_BUNDLE=DIR overrides the bundle location.
# Steps: nvidia-smi; GPU tests (the test assembly is its own runner); gptjx make-test-model;
# gptjx verify --device cuda --dtype fp16 / bf16; gptjx bench --preset gpt-jx-3b --device cuda --json.
set -uo pipefail
out="${1:?usage: run-checks.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
bundle="${GPTJX_BUNDLE:-}"
if [[ -z "$bundle" ]]; then
  if [[ -f "$here/dotnet-runtime.tar.xz" ]]; then bundle="$here"; else bundle="$(cd "$here/../.." && pwd)/bundle"; fi
fi
summary="$out/summary.txt"
: > "$summary"
start=$SECONDS
note() { echo "$*" | tee -a "$summary"; }
step() {  # name seconds command...
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc in $((SECONDS - t0)) s$([[ $rc == 124 ]] && echo " (timed out after $limit s)")"
  return $rc
}

# .NET runtime from the bundle.
rt="$(mktemp -d)/dotnet"
mkdir -p "$rt"
tar -xJf "$bundle/dotnet-runtime.tar.xz" -C "$rt" || { note "cannot unpack $bundle/dotnet-runtime.tar.xz"; exit 1; }
export DOTNET_ROOT="$rt" PATH="$rt:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_gcServer=0

# cuBLAS: the toolkit's library folders, then PyTorch's wheel copy if the toolkit has none.
libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64; do
  [[ -d "$d" ]] && libs="$libs:$d"
done
if ! ls /usr/local/cuda*/lib64/libcublas.so.* >/dev/null 2>&1; then
  py="$(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null || true)"
  [[ -n "$py" ]] && libs="$libs:$py"
fi
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

{ date -u; uname -a; nvidia-smi || true; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ls $bundle; } > "$out/environment.log" 2>&1
note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"

step gpu-tests 240 dotnet "$bundle/tests/GptJx.Cuda.Tests.dll" --results-directory "$out/test-results" --no-progress
grep -E "^failed |total:|failed:|succeeded:|skipped:" "$out/gpu-tests.log" | sort -u | head -60 >> "$summary"

cli=""
if [[ -d "$bundle/cli" ]]; then
  cfg="$(ls "$bundle/cli"/*.runtimeconfig.json 2>/dev/null | head -1)"
  [[ -n "$cfg" ]] && cli="${cfg%.runtimeconfig.json}.dll"
fi
if [[ -z "$cli" ]]; then
  note "no CLI in the bundle: skipped make-test-model, verify and bench"
else
  model="$out/test-model"
  step make-test-model 45 dotnet "$cli" make-test-model --out "$model"
  step verify-fp16 50 dotnet "$cli" verify --model "$model" --device cuda --dtype fp16
  step verify-bf16 50 dotnet "$cli" verify --model "$model" --device cuda --dtype bf16
  left=$(( 470 - (SECONDS - start) ))
  (( left < 30 )) && left=30
  timeout --kill-after=10 "$left" dotnet "$cli" bench --preset gpt-jx-3b --device cuda --json "$out/bench.json" > "$out/bench.log" 2>&1
  note "bench: exit $? (limit $left s); results in bench.json"
  rm -rf "$model"
fi
note "total: $((SECONDS - start)) s"
