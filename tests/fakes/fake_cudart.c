/* A stand-in libcudart for tests on machines without a GPU: the CUDA runtime calls neurohand uses, over host memory.
 *
 * Built at test time with the system C compiler (tests/fakes/harness.py) and loaded by the real ctypes code in
 * decoder/engines/cuda_runtime.py through NEUROHAND_LIBCUDART. Signatures, error codes, names and strings are the
 * CUDA runtime's own. Faithful where it matters for catching bugs:
 *   - "device" allocations are tracked; a copy whose pointers are on the wrong side for its kind, or a free of
 *     something never allocated, fails with cudaErrorInvalidValue, as on a GPU with separate memory;
 *   - cudaMemcpyAsync/cudaMemsetAsync are queued on their stream and only happen at cudaStreamSynchronize (the
 *     host source of a host-to-device copy is staged at the call, as CUDA does), so host code that reads an output
 *     before synchronizing sees stale data;
 *   - a driver older than the runtime makes every call fail with cudaErrorInsufficientDriver, as the real one does.
 * Configured per call through the environment (so a test can change it between calls):
 *   FAKE_CUDA_DEVICES (default 1; 0: cudaErrorNoDevice), FAKE_CUDA_GPU_NAME (default "Orin"),
 *   FAKE_CUDA_CC ("8.7"), FAKE_CUDA_RUNTIME_VERSION (11040), FAKE_CUDA_DRIVER_VERSION (11040; 0: no driver),
 *   FAKE_CUDA_MAX_BYTES (device memory, default 64 MiB: beyond it cudaMalloc fails with cudaErrorMemoryAllocation).
 * Test-only extras: fakecuda_device_bytes(ptr) (bytes of the allocation from ptr to its end, 0 if ptr is not device
 * memory), fakecuda_live_allocations(), fakecuda_live_streams().
 */
#include <stdlib.h>
#include <string.h>

typedef int cudaError_t;
#define cudaSuccess 0
#define cudaErrorInvalidValue 1
#define cudaErrorMemoryAllocation 2
#define cudaErrorInsufficientDriver 35
#define cudaErrorNoDevice 100
#define cudaErrorInvalidDevice 101
#define cudaErrorInvalidResourceHandle 400

#define MAX_ALLOCS 4096
#define MAX_STREAMS 64

static struct { char *ptr; size_t size; } allocs[MAX_ALLOCS];
static size_t allocated_bytes = 0;

typedef struct op { int kind; char *dst; char *src; size_t n; int value; struct op *next; } op_t;
typedef struct stream { int live; op_t *head, *tail; } stream_t;
static stream_t streams[MAX_STREAMS];

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return (v && *v) ? strtol(v, NULL, 10) : dflt;
}

static int n_devices(void) { return (int)env_long("FAKE_CUDA_DEVICES", 1); }

/* the real runtime refuses every call when the driver is older than itself, or absent */
static cudaError_t driver_error(void) {
    long rt = env_long("FAKE_CUDA_RUNTIME_VERSION", 11040), drv = env_long("FAKE_CUDA_DRIVER_VERSION", 11040);
    if (drv < rt) return cudaErrorInsufficientDriver;
    return n_devices() < 1 ? cudaErrorNoDevice : cudaSuccess;
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    default: return "unrecognized error code";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unrecognized error code";
    }
}

cudaError_t cudaRuntimeGetVersion(int *v) {
    if (!v) return cudaErrorInvalidValue;
    *v = (int)env_long("FAKE_CUDA_RUNTIME_VERSION", 11040);
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) {
    if (!v) return cudaErrorInvalidValue;
    *v = (int)env_long("FAKE_CUDA_DRIVER_VERSION", 11040);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n) {
    cudaError_t e;
    if (!n) return cudaErrorInvalidValue;
    *n = 0;
    e = driver_error();
    if (e) return e;
    *n = n_devices();
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
    cudaError_t e = driver_error();
    if (e) return e;
    return (d < 0 || d >= n_devices()) ? cudaErrorInvalidDevice : cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, int attr, int d) {
    const char *cc = getenv("FAKE_CUDA_CC");
    int major = 8, minor = 7;
    cudaError_t e = driver_error();
    if (e) return e;
    if (!value) return cudaErrorInvalidValue;
    if (d < 0 || d >= n_devices()) return cudaErrorInvalidDevice;
    if (cc && *cc) {
        char *end;
        major = (int)strtol(cc, &end, 10);
        minor = (*end == '.') ? (int)strtol(end + 1, NULL, 10) : 0;
    }
    if (attr == 75) *value = major;        /* cudaDevAttrComputeCapabilityMajor */
    else if (attr == 76) *value = minor;   /* cudaDevAttrComputeCapabilityMinor */
    else return cudaErrorInvalidValue;
    return cudaSuccess;
}

/* cudaDeviceProp starts with char name[256] in every CUDA version; the rest is zeroed up to a CUDA 12-sized
 * struct (1032 bytes), which a caller's buffer must hold */
static cudaError_t device_properties(void *prop, int d) {
    const char *name = getenv("FAKE_CUDA_GPU_NAME");
    cudaError_t e = driver_error();
    if (e) return e;
    if (!prop) return cudaErrorInvalidValue;
    if (d < 0 || d >= n_devices()) return cudaErrorInvalidDevice;
    memset(prop, 0, 1032);
    strncpy((char *)prop, (name && *name) ? name : "Orin", 255);
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(void *prop, int d) { return device_properties(prop, d); }
cudaError_t cudaGetDeviceProperties_v2(void *prop, int d) { return device_properties(prop, d); }

static int find_alloc(const char *p) {  /* index of the allocation holding p, or -1 */
    int i;
    for (i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].ptr && p >= allocs[i].ptr && p < allocs[i].ptr + allocs[i].size) return i;
    return -1;
}

size_t fakecuda_device_bytes(const char *p) {
    int i = p ? find_alloc(p) : -1;
    return i < 0 ? 0 : (size_t)(allocs[i].ptr + allocs[i].size - p);
}

int fakecuda_live_allocations(void) {
    int i, n = 0;
    for (i = 0; i < MAX_ALLOCS; i++) n += allocs[i].ptr != NULL;
    return n;
}

int fakecuda_live_streams(void) {
    int i, n = 0;
    for (i = 0; i < MAX_STREAMS; i++) n += streams[i].live;
    return n;
}

cudaError_t cudaMalloc(void **p, size_t size) {
    int i;
    cudaError_t e = driver_error();
    if (e) return e;
    if (!p) return cudaErrorInvalidValue;
    if (allocated_bytes + size > (size_t)env_long("FAKE_CUDA_MAX_BYTES", 64L << 20)) return cudaErrorMemoryAllocation;
    for (i = 0; i < MAX_ALLOCS; i++) {
        if (!allocs[i].ptr) {
            allocs[i].ptr = malloc(size ? size : 1);
            if (!allocs[i].ptr) return cudaErrorMemoryAllocation;
            memset(allocs[i].ptr, 0xA5, size);  /* cudaMalloc does not zero: neither does this */
            allocs[i].size = size;
            allocated_bytes += size;
            *p = allocs[i].ptr;
            return cudaSuccess;
        }
    }
    return cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *p) {
    int i;
    if (!p) return cudaSuccess;
    for (i = 0; i < MAX_ALLOCS; i++) {
        if (allocs[i].ptr == p) {
            free(allocs[i].ptr);
            allocated_bytes -= allocs[i].size;
            allocs[i].ptr = NULL;
            allocs[i].size = 0;
            return cudaSuccess;
        }
    }
    return cudaErrorInvalidValue;
}

static stream_t *get_stream(void *s) {  /* NULL (the legacy default stream) is slot 0 */
    stream_t *st = s ? (stream_t *)s : &streams[0];
    if (st < streams || st >= streams + MAX_STREAMS || (s && !st->live)) return NULL;
    return st;
}

static void enqueue(stream_t *st, op_t *o) {
    o->next = NULL;
    if (st->tail) st->tail->next = o; else st->head = o;
    st->tail = o;
}

static void drain(stream_t *st) {
    op_t *o = st->head, *next;
    while (o) {
        next = o->next;
        if (o->kind == 1) memset(o->dst, o->value, o->n);  /* 0: copy, 1: memset, 2: copy of a staged source */
        else memcpy(o->dst, o->src, o->n);
        if (o->kind == 2) free(o->src);  /* a staged host source */
        free(o);
        o = next;
    }
    st->head = st->tail = NULL;
}

static int is_device_range(const char *p, size_t n) { return fakecuda_device_bytes(p) >= n && n > 0; }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *s) {
    stream_t *st = get_stream(s);
    op_t *o;
    cudaError_t e = driver_error();
    if (e) return e;
    if (!st) return cudaErrorInvalidResourceHandle;
    if (!dst || !src) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    if (kind == 1) {         /* cudaMemcpyHostToDevice: the host source is staged now */
        if (!is_device_range(dst, n) || fakecuda_device_bytes(src)) return cudaErrorInvalidValue;
    } else if (kind == 2) {  /* cudaMemcpyDeviceToHost */
        if (!is_device_range(src, n) || fakecuda_device_bytes(dst)) return cudaErrorInvalidValue;
    } else {
        return cudaErrorInvalidValue;  /* neurohand uses only these two */
    }
    o = malloc(sizeof(op_t));
    o->kind = kind == 1 ? 2 : 0;
    o->dst = dst;
    o->n = n;
    if (kind == 1) {
        o->src = malloc(n);
        memcpy(o->src, src, n);
    } else {
        o->src = (char *)src;
    }
    enqueue(st, o);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, void *s) {
    stream_t *st = get_stream(s);
    op_t *o;
    cudaError_t e = driver_error();
    if (e) return e;
    if (!st) return cudaErrorInvalidResourceHandle;
    if (!is_device_range(dst, n)) return cudaErrorInvalidValue;
    o = malloc(sizeof(op_t));
    o->kind = 1;
    o->dst = dst;
    o->src = NULL;
    o->n = n;
    o->value = value;
    enqueue(st, o);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(void **s) {
    int i;
    cudaError_t e = driver_error();
    if (e) return e;
    if (!s) return cudaErrorInvalidValue;
    for (i = 1; i < MAX_STREAMS; i++) {
        if (!streams[i].live) {
            streams[i].live = 1;
            streams[i].head = streams[i].tail = NULL;
            *s = &streams[i];
            return cudaSuccess;
        }
    }
    return cudaErrorMemoryAllocation;
}

cudaError_t cudaStreamSynchronize(void *s) {
    stream_t *st = get_stream(s);
    cudaError_t e = driver_error();
    if (e) return e;
    if (!st) return cudaErrorInvalidResourceHandle;
    drain(st);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(void *s) {
    stream_t *st = get_stream(s);
    if (!s || !st) return cudaErrorInvalidResourceHandle;
    drain(st);  /* pending work completes before the stream's resources are released */
    st->live = 0;
    return cudaSuccess;
}
