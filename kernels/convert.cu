// Element-type conversion with a strided 2-D destination, used while streaming
// weights: a chunk of rows of one checkpoint tensor lands at its column offset
// inside a concatenated device weight (e.g. c_fc | c_fc2 side by side).
//
// Math:    dst[(dst_row0 + r) * dst_ld + dst_col0 + c] = convert(src[r * cols + c])
//          fp32 -> fp16/bf16 rounds to nearest even; bf16 <-> fp16 goes through fp32.
// Layouts: src [rows, cols] row-major (checkpoint bytes, staged on the device);
//          dst row-major with leading dimension dst_ld. Names: convert_<src>_<dst>.
// Launch:  grid (ceil(cols / 256), min(rows, 65535)), block 256; rows loop by gridDim.y.
#include "common.cuh"

template <typename S, typename D>
__device__ void convert2d(const S* __restrict__ src, long long rows, int cols, D* __restrict__ dst,
                          long long dst_ld, long long dst_row0, int dst_col0) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    for (long long r = blockIdx.y; r < rows; r += gridDim.y)
        dst[(dst_row0 + r) * dst_ld + dst_col0 + c] = from_f32<D>(to_f32(src[r * cols + c]));
}

#define CONVERT_INSTANCE(sn, S, dn, D) \
extern "C" __global__ void convert_##sn##_##dn(const S* src, long long rows, int cols, D* dst, long long dst_ld, long long dst_row0, int dst_col0) \
{ convert2d<S, D>(src, rows, cols, dst, dst_ld, dst_row0, dst_col0); }

CONVERT_INSTANCE(f32, float, f32, float)
CONVERT_INSTANCE(f32, float, f16, __half)
CONVERT_INSTANCE(f32, float, bf16, bf16)
CONVERT_INSTANCE(f16, __half, f32, float)
CONVERT_INSTANCE(f16, __half, f16, __half)
CONVERT_INSTANCE(f16, __half, bf16, bf16)
CONVERT_INSTANCE(bf16, bf16, f32, float)
CONVERT_INSTANCE(bf16, bf16, f16, __half)
CONVERT_INSTANCE(bf16, bf16, bf16, bf16)
