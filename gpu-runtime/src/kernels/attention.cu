// Attention over the paged KV cache (layout in elementwise.cu's kv_append: [blocks, BLOCK_TOKENS, kv_heads,
// HEAD_DIM]; a sequence's block table row lists its blocks). Scores are q.k * scale with natural exponent;
// softmax is computed online (running max and sum), so no score matrix is ever stored.

#define ELEMS (HEAD_DIM / 32)
#define DEC_WARPS 4
#define TOK_UNROLL 4
#define DEC_ROUND 16
#define DEC_MIN_CHUNK 64

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
// partial output and (max, sum) per split; decode_combine merges the splits. Each sequence's slices are sized from
// its own context (decode_chunk in ops.rs computes the same): a step replayed from a CUDA graph captured with
// slices for the longest context the model takes still splits a short context into short slices. Slices past the
// context are empty (max -inf, sum 0) and drop out in the combine.
// qkv rows: [seqs, (q_heads + 2 kv_heads) * HEAD_DIM] (one new token per sequence, already in the cache).
// part_acc: [seqs, q_heads, splits, HEAD_DIM]; part_ml: [seqs, q_heads, splits, 2].
extern "C" __global__ void __launch_bounds__(DEC_WARPS * 32)
decode_attention(float* part_acc, float* part_ml, const bf16* qkv, const bf16* k_cache, const bf16* v_cache,
                 const int* block_table, int max_blocks, const int* ctx_len, int q_heads, int kv_heads,
                 float scale) {
    const int seq = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int len = ctx_len[seq];
    const int per_split = (len + splits - 1) / splits;
    const int chunk = max(DEC_MIN_CHUNK, (per_split + DEC_ROUND - 1) / DEC_ROUND * DEC_ROUND);
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

// Loads tokens n0 .. n0 + rows of one key/value head into shared-memory tiles (row stride `ld` values), 16 bytes
// per access; rows at or past kv_end are zero.
__device__ __forceinline__ void load_kv_tile(bf16* ks, bf16* vs, int ld, int rows, const bf16* k_cache,
                                             const bf16* v_cache, const int* table, int n0, int kv_end, int kv_heads,
                                             int kvh) {
    const int vec_per_row = HEAD_DIM / 8;
    for (int idx = threadIdx.x; idx < rows * vec_per_row; idx += blockDim.x) {
        const int tok = idx / vec_per_row, c8 = idx % vec_per_row;
        const int t = n0 + tok;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
        if (t < kv_end) {
            const i64 base = cache_index(table, t, kv_heads, kvh) + c8 * 8;
            kv = *reinterpret_cast<const uint4*>(k_cache + base);
            vv = *reinterpret_cast<const uint4*>(v_cache + base);
        }
        *reinterpret_cast<uint4*>(ks + tok * ld + c8 * 8) = kv;
        *reinterpret_cast<uint4*>(vs + tok * ld + c8 * 8) = vv;
    }
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
    for (int n0 = 0; n0 < kv_end; n0 += PF_BN) {
        __syncthreads();
        load_kv_tile(&ks[0][0], &vs[0][0], HEAD_DIM, PF_BN, k_cache, v_cache, table, n0, kv_end, kv_heads, kvh);
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

// ---------------------------------------------------------------------------------------------------------------
// Prefill attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate), FlashAttention-2 style: a block
// of 4 warps takes TC_BM = 64 query rows of one head (16 per warp); K and V tiles of TC_BN = 64 tokens go through
// shared memory (rows padded by 8 values so fragment loads avoid bank conflicts); S = Q K^T stays in registers,
// the online softmax works on the accumulator fragments, and P is reused in registers as the A operand of P V.
// Same arguments, layout and causal rule as prefill_attention. Grid: (ceil(max q_len / 64), q_heads, seqs); 128
// threads.

#define TC_BM 64
#define TC_BN 64
#define TC_PAD 8
#define TC_LD (HEAD_DIM + TC_PAD)

__device__ __forceinline__ void mma_bf16_16816(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Two floats as packed bf16 (the lower index in the low half, as the mma operands expect).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    return (unsigned)f2bf(lo) | ((unsigned)f2bf(hi) << 16);
}

extern "C" __global__ void __launch_bounds__(128)
prefill_attention_tc(bf16* out, const bf16* qkv, const bf16* k_cache, const bf16* v_cache, const int* block_table,
                     int max_blocks, const int* q_start, const int* q_len, const int* ctx_before, int q_heads,
                     int kv_heads, float scale) {
    const int seq = blockIdx.z, h = blockIdx.y, kvh = h / GROUP;
    const int qn = q_len[seq];
    const int tile0 = blockIdx.x * TC_BM;
    if (tile0 >= qn) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, tq = lane & 3;  // fragment row group and thread-in-group
    const int before = ctx_before[seq];
    const int kv_end = before + min(qn, tile0 + TC_BM);
    const int stride = (q_heads + 2 * kv_heads) * HEAD_DIM;
    const int* table = block_table + (i64)seq * max_blocks;
    // This thread's two query rows (fragment rows g and g + 8 of the warp's 16).
    const int r0 = tile0 + warp * 16 + g, r1 = r0 + 8;
    const int pos0 = before + r0, pos1 = before + r1;

    // Q fragments for every 16-wide slice of the head: rows r0 / r1, columns 2 tq (+1) and 2 tq + 8 (+1).
    unsigned qa[HEAD_DIM / 16][4];
    {
        const bf16* q0 = qkv + ((i64)q_start[seq] + r0) * stride + h * HEAD_DIM;
        const bf16* q1 = qkv + ((i64)q_start[seq] + r1) * stride + h * HEAD_DIM;
#pragma unroll
        for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
            const int c = kk * 16 + 2 * tq;
            qa[kk][0] = r0 < qn ? *reinterpret_cast<const unsigned*>(q0 + c) : 0u;
            qa[kk][1] = r1 < qn ? *reinterpret_cast<const unsigned*>(q1 + c) : 0u;
            qa[kk][2] = r0 < qn ? *reinterpret_cast<const unsigned*>(q0 + c + 8) : 0u;
            qa[kk][3] = r1 < qn ? *reinterpret_cast<const unsigned*>(q1 + c + 8) : 0u;
        }
    }
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = NEG_BIG, m1 = NEG_BIG, l0 = 0.0f, l1 = 0.0f;

    __shared__ __align__(16) bf16 ks[TC_BN * TC_LD];
    __shared__ __align__(16) bf16 vs[TC_BN * TC_LD];
    for (int n0 = 0; n0 < kv_end; n0 += TC_BN) {
        __syncthreads();
        load_kv_tile(ks, vs, TC_LD, TC_BN, k_cache, v_cache, table, n0, kv_end, kv_heads, kvh);
        __syncthreads();

        // S = Q K^T for this warp's 16 rows and the tile's 64 keys: 8 fragments of 16 x 8.
        float s[TC_BN / 8][4];
#pragma unroll
        for (int j = 0; j < TC_BN / 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            const bf16* krow = &ks[(j * 8 + g) * TC_LD + 2 * tq];
#pragma unroll
            for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
                unsigned b[2];
                b[0] = *reinterpret_cast<const unsigned*>(krow + kk * 16);
                b[1] = *reinterpret_cast<const unsigned*>(krow + kk * 16 + 8);
                mma_bf16_16816(s[j], qa[kk], b);
            }
        }
        // Scale, mask (causal and past the needed keys), running max per row.
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int j = 0; j < TC_BN / 8; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = n0 + j * 8 + 2 * tq + e;
                const bool ok = key < kv_end;
                s[j][e] = (ok && key <= pos0) ? s[j][e] * scale : NEG_BIG;
                s[j][2 + e] = (ok && key <= pos1) ? s[j][2 + e] * scale : NEG_BIG;
                mx0 = fmaxf(mx0, s[j][e]);
                mx1 = fmaxf(mx1, s[j][2 + e]);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float c0 = __expf(m0 - mx0), c1 = __expf(m1 - mx1);
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int j = 0; j < TC_BN / 8; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[j][e] = s[j][e] == NEG_BIG ? 0.0f : __expf(s[j][e] - mx0);
                s[j][2 + e] = s[j][2 + e] == NEG_BIG ? 0.0f : __expf(s[j][2 + e] - mx1);
                sum0 += s[j][e];
                sum1 += s[j][2 + e];
            }
        }
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
        l0 = l0 * c0 + sum0;
        l1 = l1 * c1 + sum1;
        m0 = mx0;
        m1 = mx1;
#pragma unroll
        for (int j = 0; j < HEAD_DIM / 8; j++) {
            o[j][0] *= c0;
            o[j][1] *= c0;
            o[j][2] *= c1;
            o[j][3] *= c1;
        }
        // O += P V: P's accumulator fragments are the A operand (16 keys per step); V columns as B.
#pragma unroll
        for (int kk = 0; kk < TC_BN / 16; kk++) {
            unsigned pa[4];
            pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            const int k0 = kk * 16 + 2 * tq;
#pragma unroll
            for (int j = 0; j < HEAD_DIM / 8; j++) {
                const int col = j * 8 + g;
                unsigned b[2];
                b[0] = (unsigned)vs[k0 * TC_LD + col] | ((unsigned)vs[(k0 + 1) * TC_LD + col] << 16);
                b[1] = (unsigned)vs[(k0 + 8) * TC_LD + col] | ((unsigned)vs[(k0 + 9) * TC_LD + col] << 16);
                mma_bf16_16816(o[j], pa, b);
            }
        }
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; j++) {
        const int col = h * HEAD_DIM + j * 8 + 2 * tq;
        if (r0 < qn) {
            *reinterpret_cast<unsigned*>(out + ((i64)q_start[seq] + r0) * q_heads * HEAD_DIM + col) =
                pack_bf16(o[j][0] * inv0, o[j][1] * inv0);
        }
        if (r1 < qn) {
            *reinterpret_cast<unsigned*>(out + ((i64)q_start[seq] + r1) * q_heads * HEAD_DIM + col) =
                pack_bf16(o[j][2] * inv1, o[j][3] * inv1);
        }
    }
}
