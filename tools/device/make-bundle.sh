#!/usr/bin/env bash
# Builds the folder a GPU host without .NET needs to run the device checks:
#   bundle/tests/                 GPU tests, framework-dependent, self-running (NUnit on Microsoft.Testing.Platform)
#   bundle/cli/                   the gptjx CLI, framework-dependent (when src/GptJx.Cli has a project)
#   bundle/dotnet-runtime.tar.xz  the dotnet host, hostfxr and shared/Microsoft.NETCore.App/<version> and
#                                 shared/Microsoft.AspNetCore.App/<version> (the CLI's `serve` needs ASP.NET Core)
#   bundle/run-checks.sh          the script to run there (see run-checks.sh)
# Usage: tools/device/make-bundle.sh [BUNDLE_DIR]   (default: bundle/ at the repository root; at most 64 MiB)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/bundle}"
limit=$((64 * 1024 * 1024))
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

publish() {  # project dir
  dotnet publish "$1" -c Release -o "$2" --self-contained false -p:UseAppHost=false -p:GenerateDocumentationFile=false \
    -p:DebugType=none -p:SatelliteResourceLanguages=en -nologo -v quiet
}

echo "publishing GPU tests"
publish "$root/tests/GptJx.Cuda.Tests" "$out/tests"
if compgen -G "$root/src/GptJx.Cli/*.csproj" >/dev/null; then
  echo "publishing the CLI"
  publish "$root/src/GptJx.Cli" "$out/cli"
else
  echo "no CLI project yet (src/GptJx.Cli): bundle has the GPU tests only"
fi

# The runtime the builds target: this SDK's Microsoft.NETCore.App (highest version).
line="$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2; p = $3 } END { print v, p }')"
version="${line%% *}"
shared="$(echo "${line#* }" | tr -d '[]')"
dotnet_root="$(cd "$shared/../.." && pwd)"
[[ -d "$shared/$version" ]] || { echo "runtime $version not found under $shared" >&2; exit 1; }
fxr="$(ls -d "$dotnet_root"/host/fxr/* | sort -V | tail -1)"
echo "packing runtime $version from $dotnet_root"
aspnet="$(dotnet --list-runtimes | awk '$1 == "Microsoft.AspNetCore.App" { v = $2 } END { print v }')"
[[ -n "$aspnet" && -d "$dotnet_root/shared/Microsoft.AspNetCore.App/$aspnet" ]] || { echo "ASP.NET Core runtime not found under $dotnet_root/shared" >&2; exit 1; }
tar -C "$dotnet_root" -cf - dotnet "host/fxr/$(basename "$fxr")" "shared/Microsoft.NETCore.App/$version" \
  "shared/Microsoft.AspNetCore.App/$aspnet" | xz -T2 -6 > "$out/dotnet-runtime.tar.xz"
echo "$version" > "$out/runtime-version.txt"
cp "$root/tools/device/run-checks.sh" "$out/run-checks.sh"

size=$(du -sb "$out" | cut -f1)
echo "bundle: $out, $((size / 1024 / 1024)) MiB ($size bytes)"
if (( size > limit )); then echo "bundle exceeds 64 MiB" >&2; exit 1; fi
