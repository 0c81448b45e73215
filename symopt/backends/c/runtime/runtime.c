// symopt's C runtime: thread control and the NumPy array records of symopt_c (see
// include/symopt/runtime.h). The second-order solvers are in runtime_dense.c, runtime_newton.c
// and runtime_radius.c.
#include "symopt/runtime.h"

#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

long symopt_openmp(void)
{
#ifdef _OPENMP
    return (long)_OPENMP;
#else
    return 0;
#endif
}

int symopt_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n >= 1) {
        omp_set_num_threads(n);
    }
#else
    (void)n;
#endif
    return symopt_get_num_threads();
}

int symopt_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// The leading fields of NumPy's PyArrayObject_fields, after the Python object header.
typedef struct rt_ndarray {
    char *data;
    int nd;
    intptr_t *dimensions;
    intptr_t *strides;
    void *base;
    void *descr;
    int flags;
} rt_ndarray;

static rt_ndarray rt_ndarray_read(const void *array, size_t head, uintptr_t *record)
{
    rt_ndarray a;
    uintptr_t size = 1;
    int k;
    memcpy(&a, (const char *)array + head, sizeof a);
    for (k = 0; k < a.nd; ++k) {
        size *= (uintptr_t)a.dimensions[k];
    }
    record[0] = (uintptr_t)a.data;
    record[1] = size;
    record[2] = (uintptr_t)a.descr;
    record[3] = (uintptr_t)(unsigned int)a.flags;
    record[4] = (uintptr_t)a.nd;
    return a;
}

void symopt_ndarray_records(
    size_t count, const void *const *arrays, size_t head, uintptr_t *records)
{
    size_t k;
    for (k = 0; k < count; ++k) {
        (void)rt_ndarray_read(arrays[k], head, records + SYMOPT_NDARRAY_WORDS * k);
    }
}

size_t symopt_ndarray_changed(
    size_t count, const void *const *arrays, size_t head, const uintptr_t *records,
    const intptr_t *dims)
{
    uintptr_t now[SYMOPT_NDARRAY_WORDS];
    size_t k;
    for (k = 0; k < count; ++k) {
        const rt_ndarray a = rt_ndarray_read(arrays[k], head, now);
        const size_t bytes = (size_t)a.nd * sizeof *dims;
        if (memcmp(now, records + SYMOPT_NDARRAY_WORDS * k, sizeof now) != 0
            || (bytes > 0 && memcmp(a.dimensions, dims, bytes) != 0)) {
            return k;
        }
        dims += a.nd;
    }
    return count;
}
