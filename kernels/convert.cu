// Element-type conversion with a strided 2-D destination, used while streaming
// weights: a chunk of rows of one checkpoint tensor lands at its column offset
// inside a concatenated device weight (e.g. c_fc | c_fc2 side by side).
//
// Math:    dst[(dst_row0 + r) * dst_ld + dst_col0 + c] = convert(src[r * cols + c])
//          fp32 -> fp16/bf16 rounds to nearest even; bf16 <-> fp16 goes through fp32.
// Layouts: src [rows, cols] row-major (checkpoint bytes, staged on the device);
//          dst row-major with leading dimension dst_ld. Names: convert_<src>_<dst>.
// Launch:  grid (ceil(cols / 256), min(rows, 65535)), block 256; rows loop by gridDim.y.
//
// Transposing variant (an [in, out] checkpoint weight kept as [out, in] rows on the device):
// Math:    dst[(dst_row0 + c) * dst_ld + dst_col0 + r] = convert(src[r * cols + c])
//          i.e. source row r (an input feature) becomes destination column dst_col0 + r, source
//          column c (an output feature) becomes destination row dst_row0 + c.
// Launch:  grid (ceil(cols / 32), min(ceil(rows / 32), 65535)), block (32, 8); 32 x 32 tiles
//          through shared memory so both the reads and the writes are coalesced; tile rows loop
//          by gridDim.y. Names: convert_t_<src>_<dst>.
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

template <typename S, typename D>
__device__ void convert2d_t(const S* __restrict__ src, long long rows, int cols, D* __restrict__ dst,
                            long long dst_ld, long long dst_row0, long long dst_col0) {
    __shared__ float tile[32][33];
    const int c0 = blockIdx.x * 32;
    for (long long r0 = (long long)blockIdx.y * 32; r0 < rows; r0 += (long long)gridDim.y * 32) {
        __syncthreads();  // the previous tile has been written out
        for (int j = threadIdx.y; j < 32; j += 8) {
            const long long r = r0 + j;
            const int c = c0 + threadIdx.x;
            if (r < rows && c < cols) tile[j][threadIdx.x] = to_f32(src[r * cols + c]);
        }
        __syncthreads();
        for (int j = threadIdx.y; j < 32; j += 8) {
            const int c = c0 + j;
            const long long r = r0 + threadIdx.x;
            if (r < rows && c < cols) dst[(dst_row0 + c) * dst_ld + dst_col0 + r] = from_f32<D>(tile[threadIdx.x][j]);
        }
    }
}

#define CONVERT_T_INSTANCE(sn, S, dn, D) \
extern "C" __global__ void __launch_bounds__(256) convert_t_##sn##_##dn(const S* src, long long rows, int cols, D* dst, long long dst_ld, long long dst_row0, long long dst_col0) \
{ convert2d_t<S, D>(src, rows, cols, dst, dst_ld, dst_row0, dst_col0); }

CONVERT_T_INSTANCE(f32, float, f16, __half)
CONVERT_T_INSTANCE(f32, float, bf16, bf16)
CONVERT_T_INSTANCE(f16, __half, f16, __half)
CONVERT_T_INSTANCE(f16, __half, bf16, bf16)
CONVERT_T_INSTANCE(bf16, bf16, f16, __half)
CONVERT_T_INSTANCE(bf16, bf16, bf16, bf16)
