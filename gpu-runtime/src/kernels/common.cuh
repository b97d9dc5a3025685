// Shared helpers of duet's kernels: bf16 stored as raw 16-bit values (no CUDA headers needed, so NVRTC
// compiles the sources without an include path), fp32 arithmetic, warp reductions and a counter-based RNG.
//
// Compile-time constants (NVRTC -D options set by kernels.rs from the model): HEAD_DIM (a multiple of 32) and
// GROUP (query heads per key/value head).

typedef unsigned short bf16;
typedef long long i64;

__device__ __forceinline__ float bf2f(bf16 x) { return __uint_as_float(((unsigned)x) << 16); }

// Round to nearest even; NaN stays NaN.
__device__ __forceinline__ bf16 f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u) return (bf16)0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// splitmix64 finaliser of (seed, index): the same stream on every device and on the host (reference.rs).
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Uniform in [-1, 1) from (seed, index); never exactly zero.
__device__ __forceinline__ float uniform_pm1(unsigned long long seed, unsigned long long i) {
    unsigned long long z = mix64(seed * 0x9e3779b97f4a7c15ull + i + 1ull);
    float u = (float)(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    float v = 2.0f * u - 1.0f;
    return v == 0.0f ? 0.5f / 16777216.0f : v;
}

// Large negative instead of -inf, so exp(m_old - m_new) never sees inf - inf.
#define NEG_BIG (-1.0e30f)
