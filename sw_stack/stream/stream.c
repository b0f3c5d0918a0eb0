/* llmarch's own small STREAM (McCalpin's rules, fp32): the native C target of sw_stack.stream.native.
 *
 * usage: stream N REPETITIONS Q
 *
 * Three float arrays a, b, c of N elements (64-byte aligned) start as a = 1, b = 2, c = 0, then a is doubled.
 * Each repetition runs the four kernels in STREAM's order, each timed alone with CLOCK_MONOTONIC:
 *   copy c = a;  scale b = q*c;  add c = a + b;  triad a = b + q*c.
 * At the end every array is checked against the same recurrence run on float scalars: its mean absolute
 * error relative to the expected value must be at most 1e-6. Single-threaded.
 *
 * Output: one JSON object on stdout with every repetition's time of every kernel (seconds), the validation
 * result, each array's relative error, the first element of each array and the clock's resolution.
 *
 * Build with -ffp-contract=off: the triad must round twice (product, then sum) as numpy does, so that the
 * arrays are bit-exact against the scalar recurrence and numpy's float32.
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD > 0
#error "float arithmetic with excess precision: the arrays would not match numpy's float32 bit for bit"
#endif

#if defined(__GNUC__)
#define KERNEL static __attribute__((noinline)) void
#else
#define KERNEL static void
#endif

#define ALIGNMENT 64
#define BLOCK 16 /* elements: a multiple of every vector width up to 64 bytes */
#define EPSILON 1e-6 /* STREAM's bound for float */
#define NKERNELS 4

/* External pointers: the arrays escape, so no store can be moved across the clock calls. */
float *stream_a, *stream_b, *stream_c;

static const char *const KERNEL_NAMES[NKERNELS] = {"copy", "scale", "add", "triad"};

/* Each kernel runs a loop over a multiple of BLOCK elements, then the few left. McCalpin's STREAM has a
 * compile-time N, so -O2's cheapest vectoriser takes its loops; with a run-time n it needs an epilogue and
 * leaves the loop scalar, and a scalar triad is compute-bound on a core (about half its vector bandwidth).
 * A trip count that is a multiple of BLOCK needs no epilogue, so the main loop is vectorised at -O2. */
KERNEL copy(size_t n, float *restrict c, const float *restrict a) {
    size_t m = n & ~(size_t)(BLOCK - 1);
    for (size_t j = 0; j < m; j++) c[j] = a[j];
    for (size_t j = m; j < n; j++) c[j] = a[j];
}

KERNEL scale(size_t n, float *restrict b, const float *restrict c, float q) {
    size_t m = n & ~(size_t)(BLOCK - 1);
    for (size_t j = 0; j < m; j++) b[j] = q * c[j];
    for (size_t j = m; j < n; j++) b[j] = q * c[j];
}

KERNEL add(size_t n, float *restrict c, const float *restrict a, const float *restrict b) {
    size_t m = n & ~(size_t)(BLOCK - 1);
    for (size_t j = 0; j < m; j++) c[j] = a[j] + b[j];
    for (size_t j = m; j < n; j++) c[j] = a[j] + b[j];
}

KERNEL triad(size_t n, float *restrict a, const float *restrict b, const float *restrict c, float q) {
    size_t m = n & ~(size_t)(BLOCK - 1);
    for (size_t j = 0; j < m; j++) a[j] = b[j] + q * c[j];
    for (size_t j = m; j < n; j++) a[j] = b[j] + q * c[j];
}

/* Nanoseconds on CLOCK_MONOTONIC, as an integer: differences are exact. */
static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static float *aligned_array(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, ALIGNMENT, n * sizeof(float)) != 0) {
        fprintf(stderr, "stream: cannot allocate %zu floats\n", n);
        exit(1);
    }
    return p;
}

/* A double as a JSON number; NaN and infinities as the literals Python's json module reads. */
static void print_number(double x) {
    if (isnan(x))
        fputs("NaN", stdout);
    else if (isinf(x))
        fputs(x > 0 ? "Infinity" : "-Infinity", stdout);
    else
        printf("%.17g", x);
}

/* Mean absolute error of x relative to the expected value v. */
static double relative_error(const float *x, size_t n, float v) {
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) sum += fabs((double)x[j] - (double)v);
    return sum / (double)n / fabs((double)v);
}

static int parse_args(int argc, char **argv, size_t *n, long *reps, float *q) {
    if (argc != 4) return 0;
    char *end;
    unsigned long long nn = strtoull(argv[1], &end, 10);
    if (*end != '\0' || argv[1][0] == '-' || nn == 0) return 0;
    long r = strtol(argv[2], &end, 10);
    if (*end != '\0' || r < 2) return 0;
    double qq = strtod(argv[3], &end);
    if (*end != '\0' || end == argv[3]) return 0;
    *n = (size_t)nn;
    *reps = r;
    *q = (float)qq;
    return 1;
}

int main(int argc, char **argv) {
    size_t n;
    long reps;
    float q;
    if (!parse_args(argc, argv, &n, &reps, &q)) {
        fprintf(stderr, "usage: %s N REPETITIONS Q  (N >= 1 elements, REPETITIONS >= 2)\n", argv[0]);
        return 2;
    }
    stream_a = aligned_array(n);
    stream_b = aligned_array(n);
    stream_c = aligned_array(n);
    float *a = stream_a, *b = stream_b, *c = stream_c;
    double *times = malloc((size_t)reps * NKERNELS * sizeof(double));
    if (times == NULL) {
        fprintf(stderr, "stream: cannot allocate the timing table\n");
        return 1;
    }

    for (size_t j = 0; j < n; j++) {
        a[j] = 1.0f;
        b[j] = 2.0f;
        c[j] = 0.0f;
    }
    for (size_t j = 0; j < n; j++) a[j] = 2.0f * a[j];

    for (long r = 0; r < reps; r++) {
        double *t = times + r * NKERNELS;
        long long t0 = now_ns();
        copy(n, c, a);
        t[0] = (double)(now_ns() - t0) / 1e9;
        t0 = now_ns();
        scale(n, b, c, q);
        t[1] = (double)(now_ns() - t0) / 1e9;
        t0 = now_ns();
        add(n, c, a, b);
        t[2] = (double)(now_ns() - t0) / 1e9;
        t0 = now_ns();
        triad(n, a, b, c, q);
        t[3] = (double)(now_ns() - t0) / 1e9;
    }

    float aj = 1.0f, bj = 2.0f, cj = 0.0f;
    aj = 2.0f * aj;
    for (long r = 0; r < reps; r++) {
        cj = aj;
        bj = q * cj;
        cj = aj + bj;
        aj = bj + q * cj;
    }
    double err[3] = {relative_error(a, n, aj), relative_error(b, n, bj), relative_error(c, n, cj)};
    const char *const arrays[3] = {"a", "b", "c"};
    int failed[3], validated = 1;
    for (int i = 0; i < 3; i++) {
        failed[i] = !(err[i] <= EPSILON); /* a NaN error fails */
        validated = validated && !failed[i];
    }

    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);

    printf("{\"n\": %zu, \"repetitions\": %ld, \"q\": ", n, reps);
    print_number(q);
    fputs(", \"clock\": \"CLOCK_MONOTONIC\", \"clock_resolution_s\": ", stdout);
    print_number((double)res.tv_sec + (double)res.tv_nsec / 1e9);
    fputs(", \"times_s\": {", stdout);
    for (int k = 0; k < NKERNELS; k++) {
        printf("%s\"%s\": [", k ? ", " : "", KERNEL_NAMES[k]);
        for (long r = 0; r < reps; r++) {
            if (r) fputs(", ", stdout);
            print_number(times[r * NKERNELS + k]);
        }
        fputs("]", stdout);
    }
    printf("}, \"validated\": %s, \"errors\": {", validated ? "true" : "false");
    for (int i = 0; i < 3; i++) {
        printf("%s\"%s\": ", i ? ", " : "", arrays[i]);
        print_number(err[i]);
    }
    fputs("}, \"failed\": [", stdout);
    for (int i = 0, first = 1; i < 3; i++) {
        if (failed[i]) {
            printf("%s\"%s\"", first ? "" : ", ", arrays[i]);
            first = 0;
        }
    }
    fputs("], \"final\": {", stdout);
    const float *finals[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        printf("%s\"%s\": ", i ? ", " : "", arrays[i]);
        print_number((double)finals[i][0]);
    }
    fputs("}}\n", stdout);

    free(times);
    free(stream_a);
    free(stream_b);
    free(stream_c);
    return fflush(stdout) == 0 ? 0 : 1;
}
