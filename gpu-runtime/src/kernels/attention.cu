// Attention over the paged KV cache (layout in elementwise.cu's kv_append: [blocks, BLOCK_TOKENS, kv_heads,
// HEAD_DIM]; a sequence's block table row lists its blocks). Scores are q.k * scale with natural exponent;
// softmax is computed online (running max and sum), so no score matrix is ever stored.

#define ELEMS (HEAD_DIM / 32)
#define DEC_WARPS 4
#define TOK_UNROLL 4

__device__ __forceinline__ i64 cache_index(const int* table, int t, int kv_heads, int kvh) {
    int slot = table[t / BLOCK_TOKENS] * BLOCK_TOKENS + t % BLOCK_TOKENS;
    return ((i64)slot * kv_heads + kvh) * HEAD_DIM;
}

// ELEMS consecutive bf16 values into floats, with one 8-byte load when ELEMS is 4 (head size 128).
__device__ __forceinline__ void load_elems(const bf16* p, float* out) {
#if ELEMS == 4
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    out[0] = __uint_as_float(r.x << 16);
    out[1] = __uint_as_float(r.x & 0xffff0000u);
    out[2] = __uint_as_float(r.y << 16);
    out[3] = __uint_as_float(r.y & 0xffff0000u);
#else
#pragma unroll
    for (int e = 0; e < ELEMS; e++) out[e] = bf2f(p[e]);
#endif
}

// Decode attention, split-K (flash-decoding): one block per (sequence, key/value head, split); the block reads the
// split's slice of the context once for all GROUP query heads that share the key/value head. Four warps take tokens
// in turns of TOK_UNROLL (loads issued before use); each lane holds ELEMS dimensions. Writes the unnormalised
// partial output and (max, sum) per split; decode_combine merges the splits.
// qkv rows: [seqs, (q_heads + 2 kv_heads) * HEAD_DIM] (one new token per sequence, already in the cache).
// part_acc: [seqs, q_heads, splits, HEAD_DIM]; part_ml: [seqs, q_heads, splits, 2].
extern "C" __global__ void __launch_bounds__(DEC_WARPS * 32)
decode_attention(float* part_acc, float* part_ml, const bf16* qkv, const bf16* k_cache, const bf16* v_cache,
                 const int* block_table, int max_blocks, const int* ctx_len, int q_heads, int kv_heads, int chunk,
                 float scale) {
    const int seq = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int len = ctx_len[seq];
    const int start = split * chunk;
    const int end = min(len, start + chunk);
    const bf16* qrow = qkv + (i64)seq * (q_heads + 2 * kv_heads) * HEAD_DIM;
    const int* table = block_table + (i64)seq * max_blocks;

    float q[GROUP][ELEMS], acc[GROUP][ELEMS], m[GROUP], l[GROUP];
#pragma unroll
    for (int h = 0; h < GROUP; h++) {
        m[h] = NEG_BIG;
        l[h] = 0.0f;
#pragma unroll
        for (int e = 0; e < ELEMS; e++) {
            q[h][e] = bf2f(qrow[(kvh * GROUP + h) * HEAD_DIM + lane * ELEMS + e]) * scale;
            acc[h][e] = 0.0f;
        }
    }

    for (int t0 = start + warp * TOK_UNROLL; t0 < end; t0 += DEC_WARPS * TOK_UNROLL) {
        float kf[TOK_UNROLL][ELEMS], vf[TOK_UNROLL][ELEMS];
        bool valid[TOK_UNROLL];
#pragma unroll
        for (int j = 0; j < TOK_UNROLL; j++) {
            const int t = t0 + j;
            valid[j] = t < end;
            if (valid[j]) {
                const i64 base = cache_index(table, t, kv_heads, kvh) + lane * ELEMS;
                load_elems(k_cache + base, kf[j]);
                load_elems(v_cache + base, vf[j]);
            } else {
#pragma unroll
                for (int e = 0; e < ELEMS; e++) kf[j][e] = vf[j][e] = 0.0f;
            }
        }
#pragma unroll
        for (int h = 0; h < GROUP; h++) {
            float s[TOK_UNROLL];
            float mx = m[h];
#pragma unroll
            for (int j = 0; j < TOK_UNROLL; j++) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < ELEMS; e++) d += q[h][e] * kf[j][e];
                s[j] = warp_sum(d);
                if (valid[j]) mx = fmaxf(mx, s[j]);
            }
            const float c = __expf(m[h] - mx);
            l[h] *= c;
#pragma unroll
            for (int e = 0; e < ELEMS; e++) acc[h][e] *= c;
#pragma unroll
            for (int j = 0; j < TOK_UNROLL; j++) {
                if (valid[j]) {
                    const float p = __expf(s[j] - mx);
                    l[h] += p;
#pragma unroll
                    for (int e = 0; e < ELEMS; e++) acc[h][e] += p * vf[j][e];
                }
            }
            m[h] = mx;
        }
    }

    __shared__ float sm_m[DEC_WARPS][GROUP], sm_l[DEC_WARPS][GROUP];
    __shared__ float sm_acc[DEC_WARPS][GROUP][HEAD_DIM];
#pragma unroll
    for (int h = 0; h < GROUP; h++) {
        if (lane == 0) {
            sm_m[warp][h] = m[h];
            sm_l[warp][h] = l[h];
        }
#pragma unroll
        for (int e = 0; e < ELEMS; e++) sm_acc[warp][h][lane * ELEMS + e] = acc[h][e];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < GROUP * HEAD_DIM; idx += blockDim.x) {
        const int h = idx / HEAD_DIM, d = idx % HEAD_DIM;
        float mm = NEG_BIG;
        for (int w = 0; w < DEC_WARPS; w++) mm = fmaxf(mm, sm_m[w][h]);
        float ll = 0.0f, aa = 0.0f;
        for (int w = 0; w < DEC_WARPS; w++) {
            const float c = __expf(sm_m[w][h] - mm);
            ll += sm_l[w][h] * c;
            aa += sm_acc[w][h][d] * c;
        }
        const i64 p = ((i64)seq * q_heads + kvh * GROUP + h) * splits + split;
        part_acc[p * HEAD_DIM + d] = aa;
        if (d == 0) {
            part_ml[p * 2] = mm;
            part_ml[p * 2 + 1] = ll;
        }
    }
}

// Merges the splits of decode_attention. Grid: (seqs, q_heads); HEAD_DIM threads. out: [seqs, q_heads * HEAD_DIM].
extern "C" __global__ void decode_combine(bf16* out, const float* part_acc, const float* part_ml, int q_heads,
                                          int splits) {
    const int seq = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    const i64 base = ((i64)seq * q_heads + h) * splits;
    float mm = NEG_BIG;
    for (int s = 0; s < splits; s++) mm = fmaxf(mm, part_ml[(base + s) * 2]);
    float ll = 0.0f, aa = 0.0f;
    for (int s = 0; s < splits; s++) {
        const float c = __expf(part_ml[(base + s) * 2] - mm);
        ll += part_ml[(base + s) * 2 + 1] * c;
        aa += part_acc[(base + s) * HEAD_DIM + d] * c;
    }
    out[((i64)seq * q_heads + h) * HEAD_DIM + d] = f2bf(ll > 0.0f ? aa / ll : 0.0f);
}

#define PF_BM 32
#define PF_BN 32
#define PF_TPR 4
#define PF_DPT (HEAD_DIM / PF_TPR)

// Prefill attention over cached context, causal, flash-style: a block takes PF_BM query rows of one head of one
// sequence (PF_TPR threads per row, PF_DPT dimensions each) and streams the key/value cache through shared memory
// in tiles of PF_BN tokens, keeping a running max and sum per row. Query row i of a sequence sits at absolute
// position ctx_before + i and sees keys 0..=ctx_before + i (its own chunk's keys are in the cache already).
// Grid: (ceil(max q_len / PF_BM), q_heads, seqs); PF_BM * PF_TPR threads.
// q_start[s]: the sequence's first row in qkv/out; out: [tokens, q_heads * HEAD_DIM].
extern "C" __global__ void __launch_bounds__(PF_BM * PF_TPR)
prefill_attention(bf16* out, const bf16* qkv, const bf16* k_cache, const bf16* v_cache, const int* block_table,
                  int max_blocks, const int* q_start, const int* q_len, const int* ctx_before, int q_heads,
                  int kv_heads, float scale) {
    const int seq = blockIdx.z, h = blockIdx.y, kvh = h / GROUP;
    const int qn = q_len[seq];
    const int tile0 = blockIdx.x * PF_BM;
    if (tile0 >= qn) return;
    const int row = threadIdx.x / PF_TPR, sub = threadIdx.x % PF_TPR;
    const int qi = tile0 + row;
    const bool active = qi < qn;
    const int before = ctx_before[seq];
    const int qpos = before + qi;
    const int kv_end = before + min(qn, tile0 + PF_BM);
    const int stride = (q_heads + 2 * kv_heads) * HEAD_DIM;
    const i64 trow = (i64)q_start[seq] + qi;
    const int* table = block_table + (i64)seq * max_blocks;

    float q[PF_DPT], acc[PF_DPT];
#pragma unroll
    for (int e = 0; e < PF_DPT; e++) {
        q[e] = active ? bf2f(qkv[trow * stride + h * HEAD_DIM + sub * PF_DPT + e]) * scale : 0.0f;
        acc[e] = 0.0f;
    }
    float m = NEG_BIG, l = 0.0f;

    __shared__ __align__(16) bf16 ks[PF_BN][HEAD_DIM];
    __shared__ __align__(16) bf16 vs[PF_BN][HEAD_DIM];
    const int vec_per_row = HEAD_DIM / 8;
    for (int n0 = 0; n0 < kv_end; n0 += PF_BN) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < PF_BN * vec_per_row; idx += blockDim.x) {
            const int tok = idx / vec_per_row, c8 = idx % vec_per_row;
            const int t = n0 + tok;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (t < kv_end) {
                const i64 base = cache_index(table, t, kv_heads, kvh) + c8 * 8;
                kv = *reinterpret_cast<const uint4*>(k_cache + base);
                vv = *reinterpret_cast<const uint4*>(v_cache + base);
            }
            *reinterpret_cast<uint4*>(&ks[tok][c8 * 8]) = kv;
            *reinterpret_cast<uint4*>(&vs[tok][c8 * 8]) = vv;
        }
        __syncthreads();
        float s[PF_BN];
        float mx = m;
#pragma unroll
        for (int j = 0; j < PF_BN; j++) {
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < PF_DPT; e++) d += q[e] * bf2f(ks[j][sub * PF_DPT + e]);
            d += __shfl_xor_sync(0xffffffffu, d, 1);
            d += __shfl_xor_sync(0xffffffffu, d, 2);
            const bool ok = n0 + j <= qpos && n0 + j < kv_end;
            s[j] = ok ? d : NEG_BIG;
            mx = fmaxf(mx, s[j]);
        }
        const float c = __expf(m - mx);
        l *= c;
#pragma unroll
        for (int e = 0; e < PF_DPT; e++) acc[e] *= c;
#pragma unroll
        for (int j = 0; j < PF_BN; j++) {
            const float p = s[j] == NEG_BIG ? 0.0f : __expf(s[j] - mx);
            l += p;
#pragma unroll
            for (int e = 0; e < PF_DPT; e++) acc[e] += p * bf2f(vs[j][sub * PF_DPT + e]);
        }
        m = mx;
    }
    if (active) {
#pragma unroll
        for (int e = 0; e < PF_DPT; e++)
            out[trow * q_heads * HEAD_DIM + h * HEAD_DIM + sub * PF_DPT + e] = f2bf(l > 0.0f ? acc[e] / l : 0.0f);
    }
}
