#!/usr/bin/env python3
"""Reads a checkpoint with PyTorch and prints its tensors as JSON.

Used to check that checkpoints written by the C# writer load in the Python
ecosystem: pytorch_model.bin through torch.load itself, safetensors (single or
sharded) through the small independent parser below, since the safetensors
package may not be installed. Output: {name: {"dtype", "shape", "hex"}} with
each tensor's contiguous little-endian bytes in hex.

    python3 tools/reference/read_checkpoint.py CHECKPOINT_FOLDER_OR_FILE
"""
import json
import os
import struct
import sys
import zipfile

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.uint8) if end > begin else torch.zeros(0, dtype=torch.uint8)
        out[name] = raw.view(DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return out


def load(path):
    if os.path.isdir(path):
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
            if os.path.exists(os.path.join(path, name)):
                return load(os.path.join(path, name))
        raise SystemExit(f"no checkpoint in {path}")
    if path.endswith(".index.json"):
        with open(path) as f:
            weight_map = json.load(f)["weight_map"]
        folder = os.path.dirname(path)
        shards = {s: read_safetensors(os.path.join(folder, s)) for s in sorted(set(weight_map.values()))}
        return {name: shards[s][name] for name, s in weight_map.items()}
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    # torch does not check zip CRCs; Python's zipfile does, so bad ones fail here.
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise SystemExit(f"{path}: CRC mismatch in {bad}")
    return torch.load(path, map_location="cpu")


def main(path):
    out = {}
    for name, t in load(path).items():
        out[name] = {
            "dtype": NAMES[t.dtype],
            "shape": list(t.shape),
            "hex": t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex(),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
