// Elementwise and row-wise kernels of a dense decoder layer (bf16 in memory, fp32 math), plus the fill,
// bandwidth and empty kernels the microbenchmarks use.

// out[i] = scale * uniform(seed, i) for i < n: synthetic weights and activations, seeded, never zero.
extern "C" __global__ void fill_uniform(bf16* out, i64 n, unsigned long long seed, float scale) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        out[i] = f2bf(scale * uniform_pm1(seed, (unsigned long long)i));
}

// One block per row: out = x * rsqrt(mean(x^2) + eps) * w. blockDim.x is a multiple of 32, at most 1024.
extern "C" __global__ void rmsnorm(bf16* out, const bf16* x, const bf16* w, int hidden, float eps) {
    const bf16* row = x + (i64)blockIdx.x * hidden;
    bf16* orow = out + (i64)blockIdx.x * hidden;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v = bf2f(row[i]);
        ss += v * v;
    }
    __shared__ float partial[32];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    float inv = rsqrtf(partial[0] / (float)hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) orow[i] = f2bf(bf2f(row[i]) * inv * bf2f(w[i]));
}

// x[i] += y[i] (the residual add), grid-stride.
extern "C" __global__ void residual_add(bf16* x, const bf16* y, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        x[i] = f2bf(bf2f(x[i]) + bf2f(y[i]));
}

// gate_up rows are [gate (inter) | up (inter)]; out[t, i] = silu(gate) * up.
extern "C" __global__ void silu_mul(bf16* out, const bf16* gate_up, int tokens, int inter) {
    i64 n = (i64)tokens * inter;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        i64 t = i / inter;
        int c = (int)(i - t * inter);
        float g = bf2f(gate_up[t * 2 * inter + c]);
        float u = bf2f(gate_up[t * 2 * inter + inter + c]);
        out[i] = f2bf(g / (1.0f + __expf(-g)) * u);
    }
}

// Rotary embedding (rotate-halves form) in place on the query and key heads of fused QKV rows
// [q (q_heads * HEAD_DIM) | k (kv_heads * HEAD_DIM) | v]. Grid: (tokens, q_heads + kv_heads); HEAD_DIM/2 threads.
extern "C" __global__ void rotary(bf16* qkv, const int* positions, int q_heads, int kv_heads, float theta) {
    int t = blockIdx.x, head = blockIdx.y, i = threadIdx.x;
    const int half = HEAD_DIM / 2;
    bf16* h = qkv + (i64)t * (q_heads + 2 * kv_heads) * HEAD_DIM + (i64)head * HEAD_DIM;
    float inv_freq = powf(theta, -2.0f * (float)i / (float)HEAD_DIM);
    float s, c;
    sincosf((float)positions[t] * inv_freq, &s, &c);
    float x1 = bf2f(h[i]), x2 = bf2f(h[i + half]);
    h[i] = f2bf(x1 * c - x2 * s);
    h[i + half] = f2bf(x2 * c + x1 * s);
}

// Writes each token's key and value heads into the paged cache. Cache layout: [blocks, BLOCK_TOKENS, kv_heads,
// HEAD_DIM] for K and for V; slot_of[t] = block * BLOCK_TOKENS + offset. Grid: (tokens, kv_heads); HEAD_DIM threads.
extern "C" __global__ void kv_append(bf16* k_cache, bf16* v_cache, const bf16* qkv, const int* slot_of, int q_heads,
                                     int kv_heads) {
    int t = blockIdx.x, head = blockIdx.y, i = threadIdx.x;
    const bf16* row = qkv + (i64)t * (q_heads + 2 * kv_heads) * HEAD_DIM;
    i64 dst = ((i64)slot_of[t] * kv_heads + head) * HEAD_DIM + i;
    k_cache[dst] = row[(i64)(q_heads + head) * HEAD_DIM + i];
    v_cache[dst] = row[(i64)(q_heads + kv_heads + head) * HEAD_DIM + i];
}

// out[t, :] = table[ids[t], :]. Grid: tokens; any block size.
extern "C" __global__ void embed(bf16* out, const bf16* table, const int* ids, int hidden) {
    const bf16* src = table + (i64)ids[blockIdx.x] * hidden;
    bf16* dst = out + (i64)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = src[i];
}

// Greedy sampling: out[r] = argmax over the row's logits (lowest index on ties). One block of 1024 threads per row.
extern "C" __global__ void argmax_rows(int* out, const bf16* logits, int vocab) {
    const bf16* row = logits + (i64)blockIdx.x * vocab;
    float best = NEG_BIG;
    int arg = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        float v = bf2f(row[i]);
        if (v > best) { best = v; arg = i; }
    }
    __shared__ float sv[1024];
    __shared__ int si[1024];
    sv[threadIdx.x] = best;
    si[threadIdx.x] = arg;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float ov = sv[threadIdx.x + s];
            int oi = si[threadIdx.x + s];
            if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
                sv[threadIdx.x] = ov;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = si[0];
}

// Reads n 16-byte vectors (grid-stride) and writes one value per block, so the loads cannot be dropped.
extern "C" __global__ void read_bw(const uint4* src, i64 n, unsigned* sink) {
    unsigned acc = 0;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        uint4 v = src[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    acc = __reduce_xor_sync(0xffffffffu, acc);
    if ((threadIdx.x & 31) == 0) atomicXor(sink + blockIdx.x % 1024, acc);
}

// dst = src, n 16-byte vectors, grid-stride.
extern "C" __global__ void copy_bw(uint4* dst, const uint4* src, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) dst[i] = src[i];
}

// Does nothing: launch overhead.
extern "C" __global__ void empty_kernel() {}
