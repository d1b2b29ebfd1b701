// Lets the generated CUDA C kernels compile as host C++20 (g++), for test/cuda-emulate.test.ts: a
// block's threads are OS threads sharing `static` arrays as __shared__ memory and one std::barrier as
// __syncthreads; blocks run one after another. Device intrinsics get their PTX semantics (saturating
// float → int conversions, bit casts). A check of what the CUDA text computes, not of a GPU.
#pragma once
#include <barrier>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <math.h>

struct wgf_uint3 {
  unsigned int x, y, z;
};
extern thread_local wgf_uint3 threadIdx;
extern thread_local wgf_uint3 blockIdx;
extern wgf_uint3 blockDim;
extern wgf_uint3 gridDim;
extern std::barrier<>* wgf_block_barrier;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)

inline void __syncthreads() { wgf_block_barrier->arrive_and_wait(); }

inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
// cvt.rzi.s32.f32 / cvt.rzi.u32.f32: round toward zero, saturate, NaN → 0.
inline int __float2int_rz(float f) {
  if (f != f) return 0;
  if (f >= 2147483648.0f) return INT_MAX;
  if (f <= -2147483648.0f) return INT_MIN;
  return (int)f;
}
inline unsigned int __float2uint_rz(float f) {
  if (!(f > 0.0f)) return 0u;
  if (f >= 4294967296.0f) return UINT_MAX;
  return (unsigned int)f;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
