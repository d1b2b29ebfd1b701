/*
 * A recording stand-in for libcuda.so.1, for testing wgflow's CUDA runtime FFI on machines without a
 * GPU (test/cuda-runtime.test.ts builds it with cc). It implements the driver calls the runtime makes
 * with host memory and checks their arguments; it executes no kernel. cuLaunchKernel checks that each
 * kernel parameter points at the start of a live allocation and logs the launch to $CUDA_STUB_LOG:
 *   launch <function> <gx> <gy> <gz> <bx> <by> <bz> <allocation index of each parameter...>
 * Allocations are filled with 0xAB so that a missing clear is visible. Compute capability: $CUDA_STUB_CC
 * (e.g. 86), default 90.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum { OK = 0, INVALID_VALUE = 1, NOT_INITIALIZED = 3, INVALID_IMAGE = 200, INVALID_PTX = 218, NOT_FOUND = 500 };

#define MAX_ALLOCS 4096
static struct { char *p; size_t n; int live; } allocs[MAX_ALLOCS];
static int nallocs = 0;
static int initialized = 0;

typedef struct { char *text; } Module;
typedef struct { char name[256]; int nparams; } Function;

static FILE *logfile(void) {
  static FILE *f = NULL;
  if (!f) {
    const char *path = getenv("CUDA_STUB_LOG");
    if (path) f = fopen(path, "a");
  }
  return f;
}

static int find_alloc(CUdeviceptr ptr, size_t bytes) {
  for (int i = 0; i < nallocs; i++) {
    char *p = (char *)(uintptr_t)ptr;
    if (allocs[i].live && p >= allocs[i].p && p + bytes <= allocs[i].p + allocs[i].n) return i;
  }
  return -1;
}

CUresult cuInit(unsigned int flags) {
  if (flags != 0) return INVALID_VALUE;
  initialized = 1;
  return OK;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = initialized ? 1 : 0; return initialized ? OK : NOT_INITIALIZED; }
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return INVALID_VALUE; *d = 0; return OK; }
CUresult cuDeviceGetName(char *name, int len, int dev) {
  (void)dev;
  snprintf(name, (size_t)len, "wgflow driver stub");
  return OK;
}
CUresult cuDeviceGetAttribute(int *v, int attrib, int dev) {
  (void)dev;
  const char *cc = getenv("CUDA_STUB_CC");
  int c = cc ? atoi(cc) : 90;
  if (attrib == 75) *v = c / 10;
  else if (attrib == 76) *v = c % 10;
  else return INVALID_VALUE;
  return OK;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) { (void)dev; *bytes = (size_t)80 << 30; return OK; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = (void *)0x5eed; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { return ctx == (void *)0x5eed ? OK : INVALID_VALUE; }
CUresult cuCtxSynchronize(void) { return OK; }

CUresult cuModuleLoadDataEx(void **mod, const void *image, unsigned int n, const int *opts, void **vals) {
  const char *text = (const char *)image;
  if (strncmp(text, "\x7f" "ELF", 4) != 0 && strstr(text, ".version") == NULL) {
    for (unsigned int i = 0; i < n; i++) {
      if (opts[i] != 5) continue;
      size_t size = 0;
      for (unsigned int j = 0; j < n; j++)
        if (opts[j] == 6) size = (size_t)(uintptr_t)vals[j];
      if (size > 0) snprintf((char *)vals[i], size, "stub ptxas: no .version directive in the image");
    }
    return INVALID_PTX;
  }
  Module *m = malloc(sizeof(Module));
  m->text = strncmp(text, "\x7f" "ELF", 4) == 0 ? NULL : strdup(text);
  *mod = m;
  return OK;
}
CUresult cuModuleUnload(void *mod) {
  Module *m = mod;
  free(m->text);
  free(m);
  return OK;
}
CUresult cuModuleGetFunction(void **fn, void *mod, const char *name) {
  Module *m = mod;
  if (!m->text) return NOT_FOUND;
  char pattern[300];
  snprintf(pattern, sizeof pattern, ".entry %s(", name);
  const char *at = strstr(m->text, pattern);
  if (!at) return NOT_FOUND;
  const char *end = strchr(at, ')');
  int nparams = 0;
  for (const char *p = strstr(at, ".param"); p && p < end; p = strstr(p + 1, ".param")) nparams++;
  Function *f = malloc(sizeof(Function));
  snprintf(f->name, sizeof f->name, "%s", name);
  f->nparams = nparams;
  *fn = f;
  return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  if (bytes == 0 || nallocs == MAX_ALLOCS) return INVALID_VALUE;
  char *p = malloc(bytes);
  memset(p, 0xab, bytes);
  allocs[nallocs].p = p;
  allocs[nallocs].n = bytes;
  allocs[nallocs].live = 1;
  nallocs++;
  *ptr = (CUdeviceptr)(uintptr_t)p;
  return OK;
}
CUresult cuMemFree_v2(CUdeviceptr ptr) {
  for (int i = 0; i < nallocs; i++)
    if (allocs[i].live && allocs[i].p == (char *)(uintptr_t)ptr) {
      free(allocs[i].p);
      allocs[i].live = 0;
      return OK;
    }
  return INVALID_VALUE;
}
CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
  if (find_alloc(dst, n) < 0) return INVALID_VALUE;
  memset((void *)(uintptr_t)dst, v, n);
  return OK;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
  if (find_alloc(dst, n) < 0) return INVALID_VALUE;
  memcpy((void *)(uintptr_t)dst, src, n);
  return OK;
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
  if (find_alloc(src, n) < 0) return INVALID_VALUE;
  memcpy(dst, (const void *)(uintptr_t)src, n);
  return OK;
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  if (find_alloc(dst, n) < 0 || find_alloc(src, n) < 0) return INVALID_VALUE;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
  return OK;
}

CUresult cuLaunchKernel(void *fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                        unsigned int bz, unsigned int shared, void *stream, void **params, void **extra) {
  Function *f = fn;
  if (gx == 0 || gy == 0 || gz == 0 || bx * by * bz == 0 || bx * by * bz > 1024 || shared != 0 || stream != NULL ||
      extra != NULL)
    return INVALID_VALUE;
  FILE *log = logfile();
  if (log) fprintf(log, "launch %s %u %u %u %u %u %u", f->name, gx, gy, gz, bx, by, bz);
  for (int i = 0; i < f->nparams; i++) {
    CUdeviceptr p = *(CUdeviceptr *)params[i];
    int a = -1;
    for (int j = 0; j < nallocs; j++)
      if (allocs[j].live && allocs[j].p == (char *)(uintptr_t)p) a = j;
    if (a < 0) return INVALID_VALUE;
    if (log) fprintf(log, " %d", a);
  }
  if (log) {
    fprintf(log, "\n");
    fflush(log);
  }
  return OK;
}

CUresult cuGetErrorName(CUresult e, const char **s) {
  switch (e) {
    case OK: *s = "CUDA_SUCCESS"; return OK;
    case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case INVALID_PTX: *s = "CUDA_ERROR_INVALID_PTX"; return OK;
    case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; return OK;
    default: *s = NULL; return INVALID_VALUE;
  }
}
CUresult cuGetErrorString(CUresult e, const char **s) {
  switch (e) {
    case INVALID_VALUE: *s = "invalid argument"; return OK;
    case INVALID_PTX: *s = "a PTX JIT compilation failed"; return OK;
    case NOT_FOUND: *s = "named symbol not found"; return OK;
    default: *s = NULL; return INVALID_VALUE;
  }
}
