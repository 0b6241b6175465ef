// Device helpers shared by the mmclip CUDA kernels: element conversions, vector
// widths, warp / block reductions and scans. Torch-free (CUDA toolkit headers only).
//
// Every block-wide helper here assumes blockDim.x == kBlockThreads (256) and must be
// reached by all threads of the block (they contain __syncthreads()).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>

#include "kernels.h"

namespace mmclip {
namespace cuda {

constexpr int kBlockThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kBlockWarps = kBlockThreads / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;

// ---------------------------------------------------------------------------------
// Element conversions (T -> accumulation type and back).
template <typename T>
struct Convert;

template <>
struct Convert<float> {
  __device__ __forceinline__ static float to_float(float v) { return v; }
  __device__ __forceinline__ static double to_double(float v) { return v; }
  __device__ __forceinline__ static float from_float(float v) { return v; }
  __device__ __forceinline__ static float from_double(double v) { return static_cast<float>(v); }
};
template <>
struct Convert<double> {
  __device__ __forceinline__ static float to_float(double v) { return static_cast<float>(v); }
  __device__ __forceinline__ static double to_double(double v) { return v; }
  __device__ __forceinline__ static double from_float(float v) { return v; }
  __device__ __forceinline__ static double from_double(double v) { return v; }
};
template <>
struct Convert<__half> {
  __device__ __forceinline__ static float to_float(__half v) { return __half2float(v); }
  __device__ __forceinline__ static double to_double(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half from_float(float v) { return __float2half_rn(v); }
  __device__ __forceinline__ static __half from_double(double v) {
    return __double2half(v);
  }
};
template <>
struct Convert<__nv_bfloat16> {
  __device__ __forceinline__ static float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static double to_double(__nv_bfloat16 v) {
    return __bfloat162float(v);
  }
  __device__ __forceinline__ static __nv_bfloat16 from_float(float v) {
    return __float2bfloat16_rn(v);
  }
  __device__ __forceinline__ static __nv_bfloat16 from_double(double v) {
    return __double2bfloat16(v);
  }
};

// Accumulation type of a storage type: float for float / half / bfloat16 (as ATen's
// opmath_type), double for double.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};

template <typename Acc, typename T>
__device__ __forceinline__ Acc to_acc(T v) {
  if constexpr (sizeof(Acc) == sizeof(double)) {
    return Convert<T>::to_double(v);
  } else {
    return Convert<T>::to_float(v);
  }
}

template <typename T, typename Acc>
__device__ __forceinline__ T from_acc(Acc v) {
  if constexpr (sizeof(Acc) == sizeof(double)) {
    return Convert<T>::from_double(v);
  } else {
    return Convert<T>::from_float(v);
  }
}

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
  }
  return 0;
}

inline bool aligned_to(const void* ptr, size_t bytes) {
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------
// Warp reductions (all lanes of the warp take part and all receive the result).
template <typename V>
__device__ __forceinline__ V warp_sum(V v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(kFullMask, v, offset);
  }
  return v;
}

template <typename V>
__device__ __forceinline__ V warp_max(V v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const V other = __shfl_xor_sync(kFullMask, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Inclusive scan of an int over the warp's lanes.
__device__ __forceinline__ int warp_inclusive_scan(int v) {
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const int other = __shfl_up_sync(kFullMask, v, offset);
    if (lane >= offset) v += other;
  }
  return v;
}

// Scratch of the block-wide helpers; one instance per block (in static shared memory
// of the kernel that uses them).
struct BlockScratch {
  int warp_int[kBlockWarps];
  double warp_double[kBlockWarps];
  int result_int[2];
  long long result_ll[2];
};

// Exclusive count of `flag` over the block's threads in thread order; `total` gets the
// block's count. Deterministic. Ends with the scratch free for reuse.
__device__ __forceinline__ int block_exclusive_count(bool flag, int& total, BlockScratch& s) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const unsigned ballot = __ballot_sync(kFullMask, flag);
  const int in_warp = __popc(ballot & ((1u << lane) - 1u));
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) s.warp_int[warp] = __popc(ballot);
  __syncthreads();
  int before = 0;
  total = 0;
#pragma unroll
  for (int w = 0; w < kBlockWarps; ++w) {
    const int c = s.warp_int[w];
    before += w < warp ? c : 0;
    total += c;
  }
  return before + in_warp;
}

// Inclusive scan of an int over the block's threads in thread order.
__device__ __forceinline__ int block_inclusive_scan(int v, BlockScratch& s) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int incl = warp_inclusive_scan(v);
  __syncthreads();
  if (lane == kWarpSize - 1) s.warp_int[warp] = incl;
  __syncthreads();
  int before = 0;
#pragma unroll
  for (int w = 0; w < kBlockWarps; ++w) before += w < warp ? s.warp_int[w] : 0;
  return before + incl;
}

// Block-wide sum of an int (every thread receives it).
__device__ __forceinline__ int block_sum_int(int v, BlockScratch& s) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) s.warp_int[warp] = v;
  __syncthreads();
  int total = 0;
#pragma unroll
  for (int w = 0; w < kBlockWarps; ++w) total += s.warp_int[w];
  return total;
}

// Block-wide sum of a double in a fixed tree order (deterministic).
__device__ __forceinline__ double block_sum_double(double v, BlockScratch& s) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) s.warp_double[warp] = v;
  __syncthreads();
  double total = 0.0;
#pragma unroll
  for (int w = 0; w < kBlockWarps; ++w) total += s.warp_double[w];
  return total;
}

// ---------------------------------------------------------------------------------
// Launch helpers.

// Shared memory a block may use without the cudaFuncAttributeMaxDynamicSharedMemorySize
// opt-in: static and dynamic together.
constexpr int64_t kDefaultSmemBytes = 48 * 1024;
// Slack for the alignment of the static __shared__ objects that the sizeof() sums of
// the kernels' budgets below do not see.
constexpr int64_t kStaticSmemSlack = 256;

// Attributes of one device, queried once per device and process (the launchers run on
// every call of an op; cudaDeviceGetAttribute is not free).
struct DeviceInfo {
  int sm_count;        // streaming multiprocessors
  int max_smem_optin;  // bytes of shared memory per block with the opt-in
  int cc_major;        // compute capability, major
};

inline DeviceInfo query_device_info(int device) {
  DeviceInfo info{108, 48 * 1024, 0};
  int value = 0;
  if (cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device) == cudaSuccess &&
      value > 0) {
    info.sm_count = value;
  }
  if (cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) ==
          cudaSuccess &&
      value > 0) {
    info.max_smem_optin = value;
  }
  if (cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess) {
    info.cc_major = value;
  }
  return info;
}

// query(device) for the current device, computed once per device and process
// (std::call_once: thread-safe); `fallback` when no device is current. Each call site
// passes its own lambda, so each gets its own cache.
template <typename T, typename Query>
T cached_per_device(Query query, T fallback) {
  constexpr int kMaxDevices = 64;
  static T cache[kMaxDevices];
  static std::once_flag queried[kMaxDevices];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0) return fallback;
  if (device >= kMaxDevices) return query(device);
  std::call_once(queried[device], [&] { cache[device] = query(device); });
  return cache[device];
}

// The current device's attributes (queried once per device).
inline DeviceInfo current_device_info() {
  return cached_per_device([](int device) { return query_device_info(device); },
                           DeviceInfo{108, 48 * 1024, 0});
}

inline int device_sm_count() { return current_device_info().sm_count; }
inline int device_max_smem_optin() { return current_device_info().max_smem_optin; }
inline int device_cc_major() { return current_device_info().cc_major; }

// A 1-D grid of at most `cap` blocks covering `work` items of `per_block` each
// (kernels loop grid-stride over the rest).
inline unsigned grid_for(int64_t work, int64_t per_block, int64_t cap) {
  int64_t blocks = ceil_div(work, per_block);
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

}  // namespace cuda
}  // namespace mmclip
