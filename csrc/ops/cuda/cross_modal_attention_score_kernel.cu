// CUDA kernels of mmclip::cross_modal_attention_score.
//
//   out[b,p] = sum_t w[b,t] softmax_p(scale * q[b,t].k[b,p]) / sum_t w[b,t]   (float32)
//
// The weights arrive divided by their row maximum (normalized_attention_weights in the
// bindings), so every weight is in [0, 1], each partial sum is at most
// the tile's token count and the total at most T: nothing here can overflow, however
// large the caller's finite weights were. The [B, T, P] attention tensor never reaches
// global memory. Three stages:
//
// 1. Tile kernel, one block of 256 threads per (sample b, tile of TM weighted tokens);
//    blockIdx.x = b * n_tiles + tile, so the tiles of one sample run side by side and
//    share k[b] through L2. The block first compacts the sample's tokens with w != 0
//    (a block scan over weight[b, :]) and keeps the tile's TM of them, so padding tokens
//    cost nothing. For each chunk of PN patches it computes the [TM, PN] logits over D
//    in steps of 32, with the next step's q / k tiles prefetched into registers (16-byte
//    loads) while the current one is multiplied from shared memory:
//    * float16 / bfloat16 on sm_80+: tensor cores (wmma 16x16x16, float32 accumulation);
//      warps tile the block's [TM, PN] output WR x WC, FN fragments of 16x16 per warp;
//    * float32 / float64 (and 16-bit types on older GPUs): CUDA cores, thread (ty, tx)
//      of a 16 x 16 grid owns rows ty + 16 i and patches tx + 16 j, accumulating in
//      float32 (float64 for double).
//    The logits of all P patches of the tile's rows stay in shared memory ([TM, P]
//    float / double). Then warp w takes rows w, w + 8, ...: row max, exp, row sum, and
//    each entry becomes w_t * exp(l - max) / sum. Finally thread i sums column p = i,
//    i + 256, ... over the tile's rows in row order into partial[b, tile, p].
// 2. For P too large for the [16, P] logits buffer in shared memory, a recompute kernel
//    (one block per sample and tile of 16 tokens; warp per patch, lanes over D) makes
//    two passes per token: max / sum of exp, then the weighted probabilities, added in
//    token order into partial[b, tile, p] by the one thread that owns p.
// 3. Finalize kernel, one block per sample: total = sum_t w[b,t] (fixed tree), then
//    out[b,p] = sum over tiles (in tile order) of partial / total, or 1/P when total is
//    not > 0. All orders are fixed, so results are bitwise reproducible.
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "kernels.h"

namespace mmclip {
namespace cuda {
namespace {

constexpr int kTileD = 32;             // depth (features) of one shared-memory step
constexpr int kTcLd = kTileD + 8;      // row stride of 16-bit tiles: 80 bytes, 16-aligned
constexpr int kCcLd = kTileD + 1;      // row stride of float / double tiles (no conflicts)
constexpr int kCcPatches = 64;         // patches per chunk of the CUDA-core kernel
constexpr int kMinTokens = 16;         // smallest token tile (sizes the workspace)
constexpr int kRecomputeTokens = 16;   // token tile of the recompute kernel

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }

// ---------------------------------------------------------------------------------
// Shared pieces.

// Compacts the sample's tokens with w != 0 and keeps those of rank [tile*TM, tile*TM +
// TM) in tok_s / w_s. Returns their count (uniform over the block).
__device__ int collect_tile_tokens(const float* __restrict__ w_row, int T, int tile, int tm,
                                   int* tok_s, float* w_s, BlockScratch& scratch) {
  const int lo = tile * tm, hi = lo + tm;
  int seen = 0;
  for (int t0 = 0; t0 < T && seen < hi; t0 += kBlockThreads) {
    const int t = t0 + static_cast<int>(threadIdx.x);
    const float w = t < T ? w_row[t] : 0.0f;
    const bool valid = t < T && w != 0.0f;
    int total = 0;
    const int rank = seen + block_exclusive_count(valid, total, scratch);
    if (valid && rank >= lo && rank < hi) {
      tok_s[rank - lo] = t;
      w_s[rank - lo] = w;
    }
    seen += total;
  }
  __syncthreads();
  const int rows = seen - lo;
  return rows < 0 ? 0 : (rows > tm ? tm : rows);
}

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }

// Rows [0, rows) of logits ([rows, ld], raw dot products) become w_t * softmax; then the
// column sums over the rows go to partial_row[0, P). Mapping: warp per row, lanes over
// patches; then thread per column.
template <typename Acc>
__device__ void softmax_weighted_columns(Acc* logits, int ld, int rows, int P, float scale,
                                         const float* w_s, float* __restrict__ partial_row) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const Acc s = static_cast<Acc>(scale);
  for (int r = warp; r < rows; r += kBlockWarps) {
    Acc* row = logits + static_cast<int64_t>(r) * ld;
    Acc m = -INFINITY;
    for (int p = lane; p < P; p += kWarpSize) {
      const Acc v = row[p] * s;
      row[p] = v;
      m = v > m ? v : m;
    }
    m = warp_max(m);
    Acc sum = 0;
    for (int p = lane; p < P; p += kWarpSize) {
      const Acc e = exp_acc(row[p] - m);
      row[p] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    const Acc coef = static_cast<Acc>(w_s[r]) / sum;
    for (int p = lane; p < P; p += kWarpSize) row[p] *= coef;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < P; p += kBlockThreads) {
    Acc total = 0;
    for (int r = 0; r < rows; ++r) total += logits[static_cast<int64_t>(r) * ld + p];
    partial_row[p] = static_cast<float>(total);
  }
}

__device__ void zero_partial(float* partial_row, int P) {
  for (int p = threadIdx.x; p < P; p += kBlockThreads) partial_row[p] = 0.0f;
}

// ---------------------------------------------------------------------------------
// Tensor-core tile kernel (float16 / bfloat16, sm_80+).
template <int TM, int FN>
struct TcShape {
  static constexpr int kWarpRows = TM / 16;
  static constexpr int kWarpCols = kBlockWarps / kWarpRows;
  static constexpr int kPatches = kWarpCols * 16 * FN;            // PN
  static constexpr int kQChunks = TM * kTileD / 8;                // 16-byte chunks
  static constexpr int kKChunks = kPatches * kTileD / 8;
  static constexpr int kQPerThread = (kQChunks + kBlockThreads - 1) / kBlockThreads;
  static constexpr int kKPerThread = (kKChunks + kBlockThreads - 1) / kBlockThreads;
  static_assert(TM % 16 == 0 && kBlockWarps % kWarpRows == 0, "warp grid");

  static size_t smem_bytes(int64_t P) {
    const int64_t ld = ceil_div(P, kPatches) * kPatches;
    return align128(TM * kTcLd * 2) + align128(kPatches * kTcLd * 2) +
           align128(static_cast<size_t>(TM * ld) * sizeof(float)) + align128(TM * sizeof(int)) +
           align128(TM * sizeof(float));
  }
};

// 8 consecutive elements of a row (zeros past D or for a missing row) as 16 bytes.
template <typename T>
__device__ __forceinline__ uint4 load8(const T* __restrict__ row, int64_t d, int64_t D,
                                       bool vec) {
  if (row == nullptr || d >= D) return make_uint4(0, 0, 0, 0);
  if (vec) return *reinterpret_cast<const uint4*>(row + d);
  union {
    uint4 v;
    unsigned short h[8];
  } out;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    out.h[e] = d + e < D ? reinterpret_cast<const unsigned short*>(row)[d + e] : 0;
  }
  return out.v;
}

template <typename T, int TM, int FN>
__global__ void __launch_bounds__(kBlockThreads, 2)
    attention_score_tc_kernel(const T* __restrict__ q, const T* __restrict__ k,
                              const float* __restrict__ weight, float* __restrict__ partial,
                              int T_, int P, int64_t D, int n_tiles, float scale, bool vec) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using Shape = TcShape<TM, FN>;
  constexpr int PN = Shape::kPatches;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ BlockScratch scratch;
  const int b = blockIdx.x / n_tiles;
  const int tile = blockIdx.x - b * n_tiles;
  const int64_t ld = ceil_div(P, PN) * PN;
  T* q_s = reinterpret_cast<T*>(smem);
  T* k_s = reinterpret_cast<T*>(smem + align128(TM * kTcLd * 2));
  float* logits = reinterpret_cast<float*>(smem + align128(TM * kTcLd * 2) +
                                           align128(PN * kTcLd * 2));
  int* tok_s = reinterpret_cast<int*>(reinterpret_cast<unsigned char*>(logits) +
                                      align128(static_cast<size_t>(TM * ld) * sizeof(float)));
  float* w_s = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(tok_s) +
                                        align128(TM * sizeof(int)));
  float* partial_row = partial + static_cast<int64_t>(blockIdx.x) * P;

  const int rows = collect_tile_tokens(weight + static_cast<int64_t>(b) * T_, T_, tile, TM, tok_s,
                                       w_s, scratch);
  if (rows == 0) {  // uniform: nothing weighted in this tile
    zero_partial(partial_row, P);
    return;
  }
  const int tid = threadIdx.x;
  const int warp = tid / kWarpSize;
  const int warp_row = warp / Shape::kWarpCols;
  const int warp_col = warp % Shape::kWarpCols;
  const T* q_b = q + static_cast<int64_t>(b) * T_ * D;
  const T* k_b = k + static_cast<int64_t>(b) * P * D;

  uint4 q_reg[Shape::kQPerThread];
  uint4 k_reg[Shape::kKPerThread];
  auto load_tiles = [&](int p0, int64_t d0) {
#pragma unroll
    for (int i = 0; i < Shape::kQPerThread; ++i) {
      const int c = tid + i * kBlockThreads;
      if (c < Shape::kQChunks) {
        const int r = c / (kTileD / 8);
        const int cc = c % (kTileD / 8);
        const T* row = r < rows ? q_b + static_cast<int64_t>(tok_s[r]) * D : nullptr;
        q_reg[i] = load8(row, d0 + cc * 8, D, vec);
      }
    }
#pragma unroll
    for (int i = 0; i < Shape::kKPerThread; ++i) {
      const int c = tid + i * kBlockThreads;
      if (c < Shape::kKChunks) {
        const int r = c / (kTileD / 8);
        const int cc = c % (kTileD / 8);
        const T* row = p0 + r < P ? k_b + static_cast<int64_t>(p0 + r) * D : nullptr;
        k_reg[i] = load8(row, d0 + cc * 8, D, vec);
      }
    }
  };
  auto store_tiles = [&]() {
#pragma unroll
    for (int i = 0; i < Shape::kQPerThread; ++i) {
      const int c = tid + i * kBlockThreads;
      if (c < Shape::kQChunks) {
        *reinterpret_cast<uint4*>(q_s + (c / (kTileD / 8)) * kTcLd + (c % (kTileD / 8)) * 8) =
            q_reg[i];
      }
    }
#pragma unroll
    for (int i = 0; i < Shape::kKPerThread; ++i) {
      const int c = tid + i * kBlockThreads;
      if (c < Shape::kKChunks) {
        *reinterpret_cast<uint4*>(k_s + (c / (kTileD / 8)) * kTcLd + (c % (kTileD / 8)) * 8) =
            k_reg[i];
      }
    }
  };

  for (int p0 = 0; p0 < P; p0 += PN) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FN];
#pragma unroll
    for (int f = 0; f < FN; ++f) wmma::fill_fragment(acc[f], 0.0f);
    load_tiles(p0, 0);
    for (int64_t d0 = 0; d0 < D; d0 += kTileD) {
      __syncthreads();  // the previous step's fragments are loaded
      store_tiles();
      __syncthreads();
      if (d0 + kTileD < D) load_tiles(p0, d0 + kTileD);  // in flight during the mma
#pragma unroll
      for (int kk = 0; kk < kTileD; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, q_s + warp_row * 16 * kTcLd + kk, kTcLd);
#pragma unroll
        for (int f = 0; f < FN; ++f) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bk;
          wmma::load_matrix_sync(bk, k_s + (warp_col * FN + f) * 16 * kTcLd + kk, kTcLd);
          wmma::mma_sync(acc[f], a, bk, acc[f]);
        }
      }
    }
#pragma unroll
    for (int f = 0; f < FN; ++f) {
      wmma::store_matrix_sync(logits + warp_row * 16 * ld + p0 + (warp_col * FN + f) * 16, acc[f],
                              static_cast<unsigned>(ld), wmma::mem_row_major);
    }
  }
  __syncthreads();
  softmax_weighted_columns<float>(logits, static_cast<int>(ld), rows, P, scale, w_s, partial_row);
#endif
}

// ---------------------------------------------------------------------------------
// CUDA-core tile kernel (float32 / float64; 16-bit types on GPUs before sm_80).
template <typename T, int TM>
struct CcShape {
  using Acc = typename AccType<T>::type;
  static constexpr int kRowsPerThread = TM / 16;
  static constexpr int kColsPerThread = kCcPatches / 16;
  static size_t smem_bytes(int64_t P) {
    const int64_t ld = ceil_div(P, kCcPatches) * kCcPatches;
    return align128(TM * kCcLd * sizeof(Acc)) + align128(kCcPatches * kCcLd * sizeof(Acc)) +
           align128(static_cast<size_t>(TM * ld) * sizeof(Acc)) + align128(TM * sizeof(int)) +
           align128(TM * sizeof(float));
  }
};

template <typename T, int TM>
__global__ void __launch_bounds__(kBlockThreads)
    attention_score_cc_kernel(const T* __restrict__ q, const T* __restrict__ k,
                              const float* __restrict__ weight, float* __restrict__ partial,
                              int T_, int P, int64_t D, int n_tiles, float scale) {
  using Shape = CcShape<T, TM>;
  using Acc = typename Shape::Acc;
  constexpr int PN = kCcPatches;
  constexpr int RM = Shape::kRowsPerThread;
  constexpr int RN = Shape::kColsPerThread;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ BlockScratch scratch;
  const int b = blockIdx.x / n_tiles;
  const int tile = blockIdx.x - b * n_tiles;
  const int64_t ld = ceil_div(P, PN) * PN;
  Acc* q_s = reinterpret_cast<Acc*>(smem);
  Acc* k_s = reinterpret_cast<Acc*>(smem + align128(TM * kCcLd * sizeof(Acc)));
  Acc* logits = reinterpret_cast<Acc*>(smem + align128(TM * kCcLd * sizeof(Acc)) +
                                       align128(PN * kCcLd * sizeof(Acc)));
  int* tok_s = reinterpret_cast<int*>(reinterpret_cast<unsigned char*>(logits) +
                                      align128(static_cast<size_t>(TM * ld) * sizeof(Acc)));
  float* w_s = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(tok_s) +
                                        align128(TM * sizeof(int)));
  float* partial_row = partial + static_cast<int64_t>(blockIdx.x) * P;

  const int rows = collect_tile_tokens(weight + static_cast<int64_t>(b) * T_, T_, tile, TM, tok_s,
                                       w_s, scratch);
  if (rows == 0) {
    zero_partial(partial_row, P);
    return;
  }
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const T* q_b = q + static_cast<int64_t>(b) * T_ * D;
  const T* k_b = k + static_cast<int64_t>(b) * P * D;

  for (int p0 = 0; p0 < P; p0 += PN) {
    Acc acc[RM][RN];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
#pragma unroll
      for (int j = 0; j < RN; ++j) acc[i][j] = Acc(0);
    }
    for (int64_t d0 = 0; d0 < D; d0 += kTileD) {
      __syncthreads();
      for (int e = tid; e < TM * kTileD; e += kBlockThreads) {
        const int r = e / kTileD, c = e % kTileD;
        const int64_t d = d0 + c;
        q_s[r * kCcLd + c] =
            r < rows && d < D ? to_acc<Acc>(q_b[static_cast<int64_t>(tok_s[r]) * D + d]) : Acc(0);
      }
      for (int e = tid; e < PN * kTileD; e += kBlockThreads) {
        const int r = e / kTileD, c = e % kTileD;
        const int64_t d = d0 + c;
        k_s[r * kCcLd + c] =
            p0 + r < P && d < D ? to_acc<Acc>(k_b[static_cast<int64_t>(p0 + r) * D + d]) : Acc(0);
      }
      __syncthreads();
#pragma unroll 8
      for (int kk = 0; kk < kTileD; ++kk) {
        Acc a[RM], bk[RN];
#pragma unroll
        for (int i = 0; i < RM; ++i) a[i] = q_s[(ty + 16 * i) * kCcLd + kk];
#pragma unroll
        for (int j = 0; j < RN; ++j) bk[j] = k_s[(tx + 16 * j) * kCcLd + kk];
#pragma unroll
        for (int i = 0; i < RM; ++i) {
#pragma unroll
          for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * bk[j];
        }
      }
    }
#pragma unroll
    for (int i = 0; i < RM; ++i) {
#pragma unroll
      for (int j = 0; j < RN; ++j) logits[(ty + 16 * i) * ld + p0 + tx + 16 * j] = acc[i][j];
    }
  }
  __syncthreads();
  softmax_weighted_columns<Acc>(logits, static_cast<int>(ld), rows, P, scale, w_s, partial_row);
}

// ---------------------------------------------------------------------------------
// Recompute kernel: any P (nothing of size P in shared memory).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    attention_score_recompute_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                     const float* __restrict__ weight, float* __restrict__ partial,
                                     int T_, int P, int64_t D, int n_tiles, float scale) {
  using Acc = typename AccType<T>::type;
  __shared__ BlockScratch scratch;
  __shared__ int tok_s[kRecomputeTokens];
  __shared__ float w_s[kRecomputeTokens];
  __shared__ Acc warp_max_s[kBlockWarps], warp_sum_s[kBlockWarps];
  const int b = blockIdx.x / n_tiles;
  const int tile = blockIdx.x - b * n_tiles;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  float* partial_row = partial + static_cast<int64_t>(blockIdx.x) * P;
  const int rows = collect_tile_tokens(weight + static_cast<int64_t>(b) * T_, T_, tile,
                                       kRecomputeTokens, tok_s, w_s, scratch);
  // Patch p is owned by lane 0 of warp p % 8 for every write below: no races, fixed order.
  for (int p = warp; p < P; p += kBlockWarps) {
    if (lane == 0) partial_row[p] = 0.0f;
  }
  const T* k_b = k + static_cast<int64_t>(b) * P * D;
  const Acc s = static_cast<Acc>(scale);
  auto logit = [&](const T* q_row, int p) {
    const T* k_row = k_b + static_cast<int64_t>(p) * D;
    Acc dot = 0;
    for (int64_t d = lane; d < D; d += kWarpSize) dot += to_acc<Acc>(q_row[d]) * to_acc<Acc>(k_row[d]);
    return warp_sum(dot) * s;
  };
  for (int r = 0; r < rows; ++r) {
    const T* q_row = q + (static_cast<int64_t>(b) * T_ + tok_s[r]) * D;
    // Pass 1: online max / sum of exp per warp, then combined in warp order.
    Acc m = -INFINITY, sum = 0;
    for (int p = warp; p < P; p += kBlockWarps) {
      const Acc v = logit(q_row, p);
      const Acc m_new = v > m ? v : m;
      if (m_new != -INFINITY) sum = sum * exp_acc(m - m_new) + exp_acc(v - m_new);
      m = m_new;
    }
    __syncthreads();  // the previous token's totals have been read
    if (lane == 0) {
      warp_max_s[warp] = m;
      warp_sum_s[warp] = sum;
    }
    __syncthreads();
    Acc row_max = -INFINITY;
    for (int w = 0; w < kBlockWarps; ++w) row_max = warp_max_s[w] > row_max ? warp_max_s[w] : row_max;
    Acc row_sum = 0;
    for (int w = 0; w < kBlockWarps; ++w) {
      if (warp_max_s[w] != -INFINITY) row_sum += warp_sum_s[w] * exp_acc(warp_max_s[w] - row_max);
    }
    const Acc coef = static_cast<Acc>(w_s[r]) / row_sum;
    // Pass 2: weighted probabilities, added by the owner of p.
    for (int p = warp; p < P; p += kBlockWarps) {
      const Acc v = logit(q_row, p);
      if (lane == 0) partial_row[p] += static_cast<float>(exp_acc(v - row_max) * coef);
    }
  }
}

// ---------------------------------------------------------------------------------
// Finalize: one block per sample.
__global__ void __launch_bounds__(kBlockThreads)
    attention_score_finalize_kernel(const float* __restrict__ weight,
                                    const float* __restrict__ partial, float* __restrict__ out,
                                    int T_, int P, int n_tiles) {
  __shared__ BlockScratch scratch;
  const int64_t b = blockIdx.x;
  double local = 0.0;
  for (int t = threadIdx.x; t < T_; t += kBlockThreads) local += weight[b * T_ + t];
  const double total = block_sum_double(local, scratch);
  const float* partial_b = partial + b * static_cast<int64_t>(n_tiles) * P;
  const float total_f = static_cast<float>(total);
  for (int p = threadIdx.x; p < P; p += kBlockThreads) {
    float value;
    if (total > 0.0) {
      float sum = 0.0f;
      for (int i = 0; i < n_tiles; ++i) sum += partial_b[static_cast<int64_t>(i) * P + p];
      value = sum / total_f;
    } else {
      value = 1.0f / static_cast<float>(P);
    }
    out[b * P + p] = value;
  }
}

// ---------------------------------------------------------------------------------
// Host side.
template <typename Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// Whether the tensor-core kernels of type T carry their body on this device. Their body
// exists only when compiled for sm_80+ (`__CUDA_ARCH__ >= 800`); a build for older
// architectures whose PTX is JIT-compiled on an sm_80+ GPU would launch an empty kernel
// and return garbage, so the CUDA-core kernels are used instead. Queried once per device.
template <typename T>
bool tensor_core_kernels_compiled() {
  const int ptx_version = cached_per_device(
      [](int) {
        cudaFuncAttributes attr{};
        if (cudaFuncGetAttributes(&attr, attention_score_tc_kernel<T, 16, 1>) != cudaSuccess) {
          (void)cudaGetLastError();  // not sticky: clear it so the next launch is not blamed
          return 0;
        }
        return attr.ptxVersion;
      },
      0);
  return ptx_version >= 80;
}

// Launches the stage-1 kernel chosen for the dtype, P and the device; returns the
// number of token tiles per sample it used.
template <typename T>
cudaError_t launch_tiles(const T* q, const T* k, const float* w, float* partial, int64_t B,
                         int T_, int P, int64_t D, float scale, cudaStream_t stream,
                         int* n_tiles_out) {
  // Dynamic shared memory allowed per block, less a margin for the static scratch.
  const size_t max_smem = static_cast<size_t>(device_max_smem_optin()) - 1024;
  constexpr bool kHalfType = sizeof(T) == 2;
  const bool vec = D % 8 == 0 && aligned_to(q, 16) && aligned_to(k, 16);
  auto run = [&](auto kernel, int tm, size_t smem, auto... extra) -> cudaError_t {
    const int n_tiles = static_cast<int>(ceil_div(T_, tm));
    *n_tiles_out = n_tiles;
    cudaError_t err = allow_smem(kernel, smem);
    if (err != cudaSuccess) return err;
    const int64_t blocks = B * n_tiles;
    if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
    kernel<<<static_cast<unsigned>(blocks), kBlockThreads, smem, stream>>>(
        q, k, w, partial, T_, P, D, n_tiles, scale, extra...);
    return cudaGetLastError();
  };
  if constexpr (kHalfType) {
    if (device_cc_major() >= 8 && tensor_core_kernels_compiled<T>()) {
      if (P <= 64) {
        const size_t bytes = TcShape<64, 2>::smem_bytes(P);
        if (bytes <= max_smem) return run(attention_score_tc_kernel<T, 64, 2>, 64, bytes, vec);
      }
      size_t bytes = TcShape<64, 8>::smem_bytes(P);
      if (bytes <= max_smem) return run(attention_score_tc_kernel<T, 64, 8>, 64, bytes, vec);
      bytes = TcShape<16, 1>::smem_bytes(P);
      if (bytes <= max_smem) return run(attention_score_tc_kernel<T, 16, 1>, 16, bytes, vec);
      return run(attention_score_recompute_kernel<T>, kRecomputeTokens, 0);
    }
  }
  size_t bytes = CcShape<T, 64>::smem_bytes(P);
  if (bytes <= max_smem) return run(attention_score_cc_kernel<T, 64>, 64, bytes);
  bytes = CcShape<T, 16>::smem_bytes(P);
  if (bytes <= max_smem) return run(attention_score_cc_kernel<T, 16>, 16, bytes);
  return run(attention_score_recompute_kernel<T>, kRecomputeTokens, 0);
}

}  // namespace

size_t cross_modal_attention_score_workspace_bytes(int64_t B, int64_t T, int64_t P) {
  // Every stage-1 kernel uses token tiles of at least kMinTokens.
  static_assert(kRecomputeTokens >= kMinTokens, "workspace sizing");
  return static_cast<size_t>(B * ceil_div(T, kMinTokens) * P) * sizeof(float);
}

cudaError_t launch_cross_modal_attention_score(const void* q, const void* k, const float* weight,
                                               float* out, void* workspace, int64_t B, int64_t T,
                                               int64_t P, int64_t D, float scale, DType dtype,
                                               cudaStream_t stream) {
  if (B == 0 || P == 0) return cudaSuccess;
  if (B > 0x7fffffffLL || T > 0x7fffffffLL || P > 0x7fffffffLL) return cudaErrorInvalidValue;
  float* partial = static_cast<float*>(workspace);
  int n_tiles = 0;
  if (T > 0) {
    cudaError_t err = cudaSuccess;
    const int t = static_cast<int>(T), p = static_cast<int>(P);
    switch (dtype) {
      case DType::F32:
        err = launch_tiles<float>(static_cast<const float*>(q), static_cast<const float*>(k),
                                  weight, partial, B, t, p, D, scale, stream, &n_tiles);
        break;
      case DType::F64:
        err = launch_tiles<double>(static_cast<const double*>(q), static_cast<const double*>(k),
                                   weight, partial, B, t, p, D, scale, stream, &n_tiles);
        break;
      case DType::F16:
        err = launch_tiles<__half>(static_cast<const __half*>(q), static_cast<const __half*>(k),
                                   weight, partial, B, t, p, D, scale, stream, &n_tiles);
        break;
      case DType::BF16:
        err = launch_tiles<__nv_bfloat16>(static_cast<const __nv_bfloat16*>(q),
                                          static_cast<const __nv_bfloat16*>(k), weight, partial,
                                          B, t, p, D, scale, stream, &n_tiles);
        break;
    }
    if (err != cudaSuccess) return err;
  }
  attention_score_finalize_kernel<<<static_cast<unsigned>(B), kBlockThreads, 0, stream>>>(
      weight, partial, out, static_cast<int>(T), static_cast<int>(P), n_tiles);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace mmclip
