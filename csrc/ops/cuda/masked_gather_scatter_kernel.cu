// CUDA kernels of mmclip::masked_gather / masked_scatter and their backward operators.
//
// Rows of D elements are moved as raw bytes in the widest vector V (16, 8, 4 or 2
// bytes) that divides the row size and the alignment of every pointer involved, so the
// copies are dtype-agnostic; only the summing paths are typed.
//
// Thread mapping of the row kernels: a group of G lanes (G a power of two <= 32, the
// smallest covering the row's vectors up to 32) owns one row at a time; groups loop
// grid-stride over the rows; each lane moves vectors lane, lane + G, ... with four
// loads in flight before the stores.
//
// Index handling (no host synchronisation, so nothing is checked up front): an index
// outside [0, P) is never dereferenced. masked_gather writes a zero row for it,
// masked_gather_backward and masked_scatter ignore it, masked_scatter_backward gives a
// zero grad_visible row and excludes nothing from grad_token for it.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "common.cuh"
#include "kernels.h"

namespace mmclip {
namespace cuda {
namespace {

// Largest vector width (bytes) that divides row_bytes and every pointer's address.
inline int pick_vector_bytes(int64_t row_bytes, size_t elem_bytes,
                             std::initializer_list<const void*> ptrs) {
  for (int width : {16, 8, 4, 2}) {
    if (static_cast<size_t>(width) < elem_bytes) break;
    if (row_bytes % width != 0) continue;
    bool ok = true;
    for (const void* p : ptrs) ok = ok && aligned_to(p, width);
    if (ok) return width;
  }
  return static_cast<int>(elem_bytes);
}

// Lanes per row: the smallest power of two >= min(vectors per row, 32).
inline int lanes_per_row(int64_t nvec) {
  int g = 1;
  while (g < 32 && g < nvec) g *= 2;
  return g;
}

struct RowGrid {
  dim3 grid;
  dim3 block;
};

inline RowGrid row_grid(int64_t rows, int lanes) {
  const int64_t rows_per_block = kBlockThreads / lanes;
  const int64_t cap = static_cast<int64_t>(device_sm_count()) * 16;
  return {dim3(grid_for(rows, rows_per_block, cap)), dim3(kBlockThreads)};
}

// Copies n vectors src -> dst with the calling lane's share of a G-lane group: up to
// four loads are issued before their stores.
template <typename V>
__device__ __forceinline__ void copy_row(V* __restrict__ dst, const V* __restrict__ src, int64_t n,
                                         int lane, int lanes) {
  constexpr int kInFlight = 4;
  for (int64_t v = lane; v < n; v += kInFlight * lanes) {
    V a[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      if (v + u * lanes < n) a[u] = src[v + u * lanes];
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      if (v + u * lanes < n) dst[v + u * lanes] = a[u];
    }
  }
}

template <typename V>
__device__ __forceinline__ void zero_row(V* __restrict__ dst, int64_t n, int lane, int lanes) {
  const V zero{};
  for (int64_t v = lane; v < n; v += lanes) dst[v] = zero;
}

// Row group of the calling thread and the loop stride, in rows.
struct GroupIndex {
  int64_t first;
  int64_t stride;
  int lane;
};

__device__ __forceinline__ GroupIndex group_index(int lanes) {
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  return {thread / lanes, static_cast<int64_t>(gridDim.x) * blockDim.x / lanes,
          static_cast<int>(threadIdx.x % lanes)};
}

// ---------------------------------------------------------------------------------
// masked_gather (also grad_visible of masked_scatter_backward).
// Mapping: one G-lane group per output row (b, j).
template <typename V>
__global__ void __launch_bounds__(kBlockThreads)
    gather_rows_kernel(const V* __restrict__ x, const int64_t* __restrict__ idx,
                       V* __restrict__ out, int64_t P, int64_t K, int64_t rows, int64_t nvec,
                       int lanes) {
  const GroupIndex g = group_index(lanes);
  for (int64_t r = g.first; r < rows; r += g.stride) {
    const int64_t b = r / K;
    const int64_t p = idx[r];
    V* dst = out + r * nvec;
    if (p < 0 || p >= P) {
      zero_row(dst, nvec, g.lane, lanes);
    } else {
      copy_row(dst, x + (b * P + p) * nvec, nvec, g.lane, lanes);
    }
  }
}

template <typename V>
void gather_rows(const void* x, const int64_t* idx, void* out, int64_t B, int64_t P, int64_t K,
                 int64_t nvec, cudaStream_t stream) {
  const int64_t rows = B * K;
  const int lanes = lanes_per_row(nvec);
  const RowGrid rg = row_grid(rows, lanes);
  gather_rows_kernel<V><<<rg.grid, rg.block, 0, stream>>>(
      static_cast<const V*>(x), idx, static_cast<V*>(out), P, K, rows, nvec, lanes);
}

cudaError_t gather_dispatch(const void* x, const int64_t* idx, void* out, int64_t B, int64_t P,
                            int64_t K, int64_t D, DType dtype, cudaStream_t stream) {
  const int64_t row_bytes = D * static_cast<int64_t>(dtype_size(dtype));
  const int width = pick_vector_bytes(row_bytes, dtype_size(dtype), {x, out});
  const int64_t nvec = row_bytes / width;
  switch (width) {
    case 16: gather_rows<uint4>(x, idx, out, B, P, K, nvec, stream); break;
    case 8: gather_rows<uint2>(x, idx, out, B, P, K, nvec, stream); break;
    case 4: gather_rows<uint32_t>(x, idx, out, B, P, K, nvec, stream); break;
    default: gather_rows<uint16_t>(x, idx, out, B, P, K, nvec, stream); break;
  }
  return cudaGetLastError();
}

// ---------------------------------------------------------------------------------
// Inverse index maps (workspace int32 [B, P]).
// Mapping: one thread per index entry (b, j), grid-stride.

// hits[b,p] = number of j with idx[b,j] == p; first[b,p] = the smallest such j.
__global__ void __launch_bounds__(kBlockThreads)
    count_hits_kernel(const int64_t* __restrict__ idx, int* __restrict__ hits,
                      int* __restrict__ first, int64_t P, int64_t K, int64_t entries) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < entries;
       e += stride) {
    const int64_t p = idx[e];
    if (p < 0 || p >= P) continue;
    const int64_t b = e / K;
    atomicAdd(&hits[b * P + p], 1);
    atomicMin(&first[b * P + p], static_cast<int>(e - b * K));
  }
}

// owner[b,p] = the largest j with idx[b,j] == p, -1 when none (memset beforehand).
__global__ void __launch_bounds__(kBlockThreads)
    owner_kernel(const int64_t* __restrict__ idx, int* __restrict__ owner, int64_t P, int64_t K,
                 int64_t entries) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < entries;
       e += stride) {
    const int64_t p = idx[e];
    if (p < 0 || p >= P) continue;
    const int64_t b = e / K;
    atomicMax(&owner[b * P + p], static_cast<int>(e - b * K));
  }
}

unsigned entry_grid(int64_t entries) {
  return grid_for(entries, kBlockThreads, static_cast<int64_t>(device_sm_count()) * 32);
}

// ---------------------------------------------------------------------------------
// masked_gather_backward.
// Mapping: one G-lane group per output row (b, p). A row hit once is a copy (exact, as
// the CPU); a row hit several times sums its j rows in increasing j in Acc, from 0,
// as the CPU kernel does (so the results agree bitwise); a row hit never is zero.
template <typename T, typename V>
__global__ void __launch_bounds__(kBlockThreads)
    gather_backward_rows_kernel(const V* __restrict__ grad, const int64_t* __restrict__ idx,
                                const int* __restrict__ hits, const int* __restrict__ first,
                                V* __restrict__ out, int64_t P, int64_t K, int64_t rows,
                                int64_t nvec, int lanes) {
  using Acc = typename AccType<T>::type;
  constexpr int kPerVec = sizeof(V) / sizeof(T);
  static_assert(kPerVec >= 1 && sizeof(V) % sizeof(T) == 0, "vector of whole elements");
  const GroupIndex g = group_index(lanes);
  for (int64_t r = g.first; r < rows; r += g.stride) {
    const int count = hits[r];
    V* dst = out + r * nvec;
    if (count == 0) {
      zero_row(dst, nvec, g.lane, lanes);
      continue;
    }
    const int64_t b = r / P;
    const V* grad_b = grad + b * K * nvec;
    if (count == 1) {
      copy_row(dst, grad_b + first[r] * nvec, nvec, g.lane, lanes);
      continue;
    }
    const int64_t p = r - b * P;
    const int64_t* idx_b = idx + b * K;
    for (int64_t v = g.lane; v < nvec; v += lanes) {
      Acc acc[kPerVec];
#pragma unroll
      for (int e = 0; e < kPerVec; ++e) acc[e] = Acc(0);
      for (int64_t j = first[r]; j < K; ++j) {
        if (idx_b[j] != p) continue;
        const V packed = grad_b[j * nvec + v];
        const T* elems = reinterpret_cast<const T*>(&packed);
#pragma unroll
        for (int e = 0; e < kPerVec; ++e) acc[e] += to_acc<Acc>(elems[e]);
      }
      V packed;
      T* elems = reinterpret_cast<T*>(&packed);
#pragma unroll
      for (int e = 0; e < kPerVec; ++e) elems[e] = from_acc<T>(acc[e]);
      dst[v] = packed;
    }
  }
}

template <typename T, typename V>
void gather_backward_rows(const void* grad, const int64_t* idx, const int* hits, const int* first,
                          void* out, int64_t B, int64_t K, int64_t P, int64_t nvec,
                          cudaStream_t stream) {
  const int64_t rows = B * P;
  const int lanes = lanes_per_row(nvec);
  const RowGrid rg = row_grid(rows, lanes);
  gather_backward_rows_kernel<T, V><<<rg.grid, rg.block, 0, stream>>>(
      static_cast<const V*>(grad), idx, hits, first, static_cast<V*>(out), P, K, rows, nvec,
      lanes);
}

template <typename T>
void gather_backward_typed(const void* grad, const int64_t* idx, const int* hits, const int* first,
                           void* out, int64_t B, int64_t K, int64_t P, int64_t D,
                           cudaStream_t stream) {
  const int64_t row_bytes = D * static_cast<int64_t>(sizeof(T));
  const int width = pick_vector_bytes(row_bytes, sizeof(T), {grad, out});
  const int64_t nvec = row_bytes / width;
  if constexpr (sizeof(T) <= 2) {
    if (width == 2) {
      gather_backward_rows<T, uint16_t>(grad, idx, hits, first, out, B, K, P, nvec, stream);
      return;
    }
  }
  if constexpr (sizeof(T) <= 4) {
    if (width == 4) {
      gather_backward_rows<T, uint32_t>(grad, idx, hits, first, out, B, K, P, nvec, stream);
      return;
    }
  }
  if (width == 8) {
    gather_backward_rows<T, uint2>(grad, idx, hits, first, out, B, K, P, nvec, stream);
  } else {
    gather_backward_rows<T, uint4>(grad, idx, hits, first, out, B, K, P, nvec, stream);
  }
}

// ---------------------------------------------------------------------------------
// masked_scatter.
// Mapping: one G-lane group per output row (b, p): the owner row of visible, or the
// mask token.
template <typename V>
__global__ void __launch_bounds__(kBlockThreads)
    scatter_rows_kernel(const V* __restrict__ visible, const int* __restrict__ owner,
                        const V* __restrict__ token, V* __restrict__ out, int64_t P, int64_t K,
                        int64_t rows, int64_t nvec, int lanes) {
  const GroupIndex g = group_index(lanes);
  for (int64_t r = g.first; r < rows; r += g.stride) {
    const int j = owner[r];
    const V* src = token;
    if (j >= 0) {
      const int64_t b = r / P;
      src = visible + (b * K + j) * nvec;
    }
    copy_row(out + r * nvec, src, nvec, g.lane, lanes);
  }
}

template <typename V>
void scatter_rows(const void* visible, const int* owner, const void* token, void* out, int64_t B,
                  int64_t K, int64_t P, int64_t nvec, cudaStream_t stream) {
  const int64_t rows = B * P;
  const int lanes = lanes_per_row(nvec);
  const RowGrid rg = row_grid(rows, lanes);
  scatter_rows_kernel<V><<<rg.grid, rg.block, 0, stream>>>(
      static_cast<const V*>(visible), owner, static_cast<const V*>(token), static_cast<V*>(out),
      P, K, rows, nvec, lanes);
}

// ---------------------------------------------------------------------------------
// masked_scatter_backward: grad_token = sum of the rows not kept.
// Stage 1 mapping: block (x = a slab of 32 vector columns, y = a chunk of rows); lane
// = vector column, warp w sums rows w, w + 8, ... of the chunk that are not kept; the 8
// warp sums are added in warp order in shared memory -> partial[chunk, column].
// Stage 2: one thread per element d sums partial[0..chunks) in order. Both orders are
// fixed by the shapes alone, so the result is reproducible bitwise.
constexpr int kReduceColumns = kWarpSize;
constexpr int64_t kReduceMinRows = 64;
constexpr int64_t kReduceMaxChunks = 1024;

inline int64_t reduce_rows_per_chunk(int64_t rows) {
  const int64_t per = ceil_div(rows, kReduceMaxChunks);
  return per > kReduceMinRows ? per : kReduceMinRows;
}

inline int64_t reduce_chunks(int64_t rows) {
  return rows == 0 ? 0 : ceil_div(rows, reduce_rows_per_chunk(rows));
}

template <typename T, typename V>
__global__ void __launch_bounds__(kBlockThreads)
    token_partial_kernel(const V* __restrict__ grad, const int* __restrict__ owner,
                         typename AccType<T>::type* __restrict__ partial, int64_t rows,
                         int64_t rows_per_chunk, int64_t nvec, int64_t D) {
  using Acc = typename AccType<T>::type;
  constexpr int kPerVec = sizeof(V) / sizeof(T);
  __shared__ Acc sums[kBlockWarps][kReduceColumns][kPerVec];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int64_t column = static_cast<int64_t>(blockIdx.x) * kReduceColumns + lane;
  const int64_t row_begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  int64_t row_end = row_begin + rows_per_chunk;
  row_end = row_end < rows ? row_end : rows;
  Acc acc[kPerVec];
#pragma unroll
  for (int e = 0; e < kPerVec; ++e) acc[e] = Acc(0);
  if (column < nvec) {
    for (int64_t r = row_begin + warp; r < row_end; r += kBlockWarps) {
      if (owner[r] >= 0) continue;  // kept: its gradient goes to grad_visible
      const V packed = grad[r * nvec + column];
      const T* elems = reinterpret_cast<const T*>(&packed);
#pragma unroll
      for (int e = 0; e < kPerVec; ++e) acc[e] += to_acc<Acc>(elems[e]);
    }
  }
#pragma unroll
  for (int e = 0; e < kPerVec; ++e) sums[warp][lane][e] = acc[e];
  __syncthreads();
  if (warp == 0 && column < nvec) {
#pragma unroll
    for (int e = 0; e < kPerVec; ++e) {
      Acc total = sums[0][lane][e];
#pragma unroll
      for (int w = 1; w < kBlockWarps; ++w) total += sums[w][lane][e];
      const int64_t d = column * kPerVec + e;
      if (d < D) partial[static_cast<int64_t>(blockIdx.y) * D + d] = total;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    token_final_kernel(const typename AccType<T>::type* __restrict__ partial, T* __restrict__ token,
                       int64_t chunks, int64_t D) {
  using Acc = typename AccType<T>::type;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; d < D;
       d += stride) {
    Acc total = Acc(0);
    for (int64_t c = 0; c < chunks; ++c) total += partial[c * D + d];
    token[d] = from_acc<T>(total);
  }
}

template <typename T, typename V>
void token_partial(const void* grad, const int* owner, void* partial, int64_t rows, int64_t D,
                   cudaStream_t stream) {
  using Acc = typename AccType<T>::type;
  const int64_t nvec = D * static_cast<int64_t>(sizeof(T)) / static_cast<int64_t>(sizeof(V));
  const int64_t chunks = reduce_chunks(rows);
  const dim3 grid(static_cast<unsigned>(ceil_div(nvec, kReduceColumns)),
                  static_cast<unsigned>(chunks));
  token_partial_kernel<T, V><<<grid, kBlockThreads, 0, stream>>>(
      static_cast<const V*>(grad), owner, static_cast<Acc*>(partial), rows,
      reduce_rows_per_chunk(rows), nvec, D);
}

constexpr size_t kWorkspaceAlign = 256;

inline size_t align_up(size_t bytes) {
  return (bytes + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

template <typename T>
cudaError_t scatter_backward_typed(const void* grad, const int64_t* keep_idx, void* grad_visible,
                                   void* grad_token, void* workspace, int64_t B, int64_t P,
                                   int64_t K, int64_t D, DType dtype, cudaStream_t stream) {
  using Acc = typename AccType<T>::type;
  // grad_visible: a gather of grad (every j, repeated or not, gets its row).
  if (B * K > 0) {
    cudaError_t err = gather_dispatch(grad, keep_idx, grad_visible, B, P, K, D, dtype, stream);
    if (err != cudaSuccess) return err;
  }
  const int64_t rows = B * P;
  int* owner = static_cast<int*>(workspace);
  Acc* partial = reinterpret_cast<Acc*>(static_cast<char*>(workspace) +
                                        align_up(static_cast<size_t>(rows) * sizeof(int)));
  const int64_t chunks = reduce_chunks(rows);
  if (rows > 0) {
    cudaError_t err = cudaMemsetAsync(owner, 0xff, static_cast<size_t>(rows) * sizeof(int), stream);
    if (err != cudaSuccess) return err;
    if (B * K > 0) {
      owner_kernel<<<entry_grid(B * K), kBlockThreads, 0, stream>>>(keep_idx, owner, P, K, B * K);
    }
    const int64_t row_bytes = D * static_cast<int64_t>(sizeof(T));
    const int width = pick_vector_bytes(row_bytes, sizeof(T), {grad});
    if (width == 16) {
      token_partial<T, uint4>(grad, owner, partial, rows, D, stream);
    } else if (width == 8 && sizeof(T) <= 8) {
      token_partial<T, uint2>(grad, owner, partial, rows, D, stream);
    } else {
      token_partial<T, T>(grad, owner, partial, rows, D, stream);
    }
  }
  token_final_kernel<T><<<grid_for(D, kBlockThreads, 1024), kBlockThreads, 0, stream>>>(
      partial, static_cast<T*>(grad_token), chunks, D);
  return cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------------------------
// Launchers.

cudaError_t launch_masked_gather(const void* x, const int64_t* idx, void* out, int64_t B,
                                 int64_t P, int64_t K, int64_t D, DType dtype,
                                 cudaStream_t stream) {
  if (B == 0 || K == 0 || D == 0) return cudaSuccess;
  return gather_dispatch(x, idx, out, B, P, K, D, dtype, stream);
}

size_t masked_gather_backward_workspace_bytes(int64_t B, int64_t P) {
  return 2 * align_up(static_cast<size_t>(B * P) * sizeof(int));
}

cudaError_t launch_masked_gather_backward(const void* grad, const int64_t* idx, void* out,
                                          void* workspace, int64_t B, int64_t K, int64_t P,
                                          int64_t D, DType dtype, cudaStream_t stream) {
  const int64_t rows = B * P;
  if (rows == 0 || D == 0) return cudaSuccess;
  if (K > 0x7f000000LL) return cudaErrorInvalidValue;  // j must fit the int workspace
  const size_t map_bytes = static_cast<size_t>(rows) * sizeof(int);
  int* hits = static_cast<int*>(workspace);
  int* first = reinterpret_cast<int*>(static_cast<char*>(workspace) + align_up(map_bytes));
  cudaError_t err = cudaMemsetAsync(hits, 0, map_bytes, stream);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(first, 0x7f, map_bytes, stream);  // 0x7f7f7f7f > any j
  if (err != cudaSuccess) return err;
  if (B * K > 0) {
    count_hits_kernel<<<entry_grid(B * K), kBlockThreads, 0, stream>>>(idx, hits, first, P, K,
                                                                        B * K);
  }
  switch (dtype) {
    case DType::F32: gather_backward_typed<float>(grad, idx, hits, first, out, B, K, P, D, stream); break;
    case DType::F64: gather_backward_typed<double>(grad, idx, hits, first, out, B, K, P, D, stream); break;
    case DType::F16: gather_backward_typed<__half>(grad, idx, hits, first, out, B, K, P, D, stream); break;
    case DType::BF16: gather_backward_typed<__nv_bfloat16>(grad, idx, hits, first, out, B, K, P, D, stream); break;
  }
  return cudaGetLastError();
}

size_t masked_scatter_workspace_bytes(int64_t B, int64_t P) {
  return align_up(static_cast<size_t>(B * P) * sizeof(int));
}

cudaError_t launch_masked_scatter(const void* visible, const int64_t* keep_idx,
                                  const void* mask_token, void* out, void* workspace, int64_t B,
                                  int64_t K, int64_t P, int64_t D, DType dtype,
                                  cudaStream_t stream) {
  const int64_t rows = B * P;
  if (rows == 0 || D == 0) return cudaSuccess;
  if (K > 0x7f000000LL) return cudaErrorInvalidValue;
  int* owner = static_cast<int*>(workspace);
  cudaError_t err = cudaMemsetAsync(owner, 0xff, static_cast<size_t>(rows) * sizeof(int), stream);
  if (err != cudaSuccess) return err;
  if (B * K > 0) {
    owner_kernel<<<entry_grid(B * K), kBlockThreads, 0, stream>>>(keep_idx, owner, P, K, B * K);
  }
  const int64_t row_bytes = D * static_cast<int64_t>(dtype_size(dtype));
  const int width = pick_vector_bytes(row_bytes, dtype_size(dtype), {visible, mask_token, out});
  const int64_t nvec = row_bytes / width;
  switch (width) {
    case 16: scatter_rows<uint4>(visible, owner, mask_token, out, B, K, P, nvec, stream); break;
    case 8: scatter_rows<uint2>(visible, owner, mask_token, out, B, K, P, nvec, stream); break;
    case 4: scatter_rows<uint32_t>(visible, owner, mask_token, out, B, K, P, nvec, stream); break;
    default: scatter_rows<uint16_t>(visible, owner, mask_token, out, B, K, P, nvec, stream); break;
  }
  return cudaGetLastError();
}

size_t masked_scatter_backward_workspace_bytes(int64_t B, int64_t P, int64_t D, DType dtype) {
  const size_t acc = dtype == DType::F64 ? sizeof(double) : sizeof(float);
  return align_up(static_cast<size_t>(B * P) * sizeof(int)) +
         align_up(static_cast<size_t>(reduce_chunks(B * P)) * static_cast<size_t>(D) * acc);
}

cudaError_t launch_masked_scatter_backward(const void* grad, const int64_t* keep_idx,
                                           void* grad_visible, void* grad_token, void* workspace,
                                           int64_t B, int64_t P, int64_t K, int64_t D,
                                           DType dtype, cudaStream_t stream) {
  if (D == 0) return cudaSuccess;
  if (K > 0x7f000000LL) return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::F32:
      return scatter_backward_typed<float>(grad, keep_idx, grad_visible, grad_token, workspace, B,
                                           P, K, D, dtype, stream);
    case DType::F64:
      return scatter_backward_typed<double>(grad, keep_idx, grad_visible, grad_token, workspace, B,
                                            P, K, D, dtype, stream);
    case DType::F16:
      return scatter_backward_typed<__half>(grad, keep_idx, grad_visible, grad_token, workspace, B,
                                            P, K, D, dtype, stream);
    case DType::BF16:
      return scatter_backward_typed<__nv_bfloat16>(grad, keep_idx, grad_visible, grad_token,
                                                   workspace, B, P, K, D, dtype, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace mmclip
