/* The roof of a sparse Adagrad apply: gather, update and scatter the rows
 * named by unique indices, with no check of any kind (no range check, no
 * duplicate handling, no period state), split over the threads by position.
 * benchmarks/bench_adagrad_swap.py compiles it (gcc -O3 -march=native
 * -fopenmp) and times it beside the ops, on the same arrays. */
#include <math.h>
#include <stdint.h>

#define ROOF_APPLY(NAME, INDEX)                                              \
  void NAME(float* var, float* accum, const float* grad,                     \
            const INDEX* indices, int64_t n, int64_t inner, float lr,        \
            float eps, int threads) {                                        \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")        \
    for (int64_t i = 0; i < n; ++i) {                                        \
      float* w = var + (int64_t)indices[i] * inner;                          \
      float* a = accum + (int64_t)indices[i] * inner;                        \
      const float* g = grad + i * inner;                                     \
      for (int64_t k = 0; k < inner; ++k) {                                  \
        a[k] += g[k] * g[k];                                                 \
        w[k] -= g[k] * lr / (sqrtf(a[k]) + eps);                             \
      }                                                                      \
    }                                                                        \
  }

ROOF_APPLY(roof_sparse_adagrad_i64, int64_t)
ROOF_APPLY(roof_sparse_adagrad_i32, int32_t)
