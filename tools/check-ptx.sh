#!/usr/bin/env bash
# Checks the committed PTX: (1) regenerating it from kernels/*.cu gives the same bytes
# ("stale PTX" otherwise), (2) ptxas accepts every file for sm_80 and sm_90, and
# (3) no hot kernel spills registers. Prints the register/spill table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$root/tools/build-ptx.sh" "$tmp" >/dev/null
status=0
for f in "$root"/kernels/ptx/*.ptx; do
  n="$(basename "$f")"
  if ! cmp -s "$f" "$tmp/$n"; then echo "stale PTX: kernels/ptx/$n differs from kernels/${n%.ptx}.cu (run tools/build-ptx.sh)"; status=1; fi
done
for f in "$tmp"/*.ptx; do
  n="$(basename "$f")"
  [[ -f "$root/kernels/ptx/$n" ]] || { echo "stale PTX: kernels/ptx/$n is missing (run tools/build-ptx.sh)"; status=1; }
done
# Hot kernels: everything on the per-token path. A spill in any of them fails the check.
hot='^(gemv|embed_gather|layer_norm|rms_norm|bias_rows|swiglu|kv_append|attention_prefill|attention_decode|attention_combine|gather_rows|scale|argmax|sample)_'
printf '%-34s %-6s %5s %8s %8s %7s\n' kernel arch regs spill_st spill_ld smem
for arch in sm_80 sm_90; do
  for f in "$root"/kernels/ptx/*.ptx; do
    log="$(ptxas -arch=$arch -v "$f" -o /dev/null 2>&1)" || { echo "$log"; echo "ptxas failed for $(basename "$f") ($arch)"; status=1; continue; }
    while IFS='|' read -r name regs st ld smem; do
      printf '%-34s %-6s %5s %8s %8s %7s\n' "$name" "$arch" "$regs" "$st" "$ld" "$smem"
      if [[ "$name" =~ $hot ]] && { [[ "$st" != 0 ]] || [[ "$ld" != 0 ]]; }; then
        echo "register spill in hot kernel $name ($arch): $st bytes stored, $ld bytes loaded"; status=1
      fi
    done < <(awk '
      /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); name = substr($0, RSTART + 1, RLENGTH - 2); st = 0; ld = 0; smem = 0 }
      /spill stores/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "stores,") st = $i; if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "loads") ld = $i } }
      /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) { if ($i == "Used") regs = $(i+1); if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i } print name "|" regs "|" st "|" ld "|" smem }
    ' <<<"$log")
  done
done
[[ $status == 0 ]] && echo "PTX up to date; no spills in hot kernels" || echo "PTX check FAILED"
exit $status
