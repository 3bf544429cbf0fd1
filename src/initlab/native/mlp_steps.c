/* K plain-SGD steps of M small MLPs in one call, for initlab's engine (compile=True).

   Compiled by initlab.native with the machine's C compiler, twice: REAL = float and
   REAL = double, the function named by NAME. Each member's numbers come from the same
   operations in the same order wherever it sits in the stack and whichever thread runs
   it: members are independent, every buffer a reduction reads starts on a 64-byte
   boundary with rows padded to 32 elements, and the members are split among threads
   statically.

   Layout, as the engine's StackedLinear: weight l is (M, out, in) and bias l (M, out),
   both contiguous; x is (n, in) and the batch of a step is either all of x in order
   (mode 0), the rows idx[k] (B,) shared by every member (mode 1), or the rows
   idx[k][m] (B,) of each member (mode 2). Inside a member, activations are
   feature-major, (width, B): the inner loops run along the batch.

   Where the caller passes the BLAS's Fortran gemm (MKL's sgemm_ or dgemm_, from the
   torch that loaded this kernel), the products of each layer of at least gemm_min
   weights go to it: the matrix products of the larger nets, where MKL's blocking wins,
   with the rest of the step (bias, activation, loss, update) still here, with no
   dispatch between. The first layer then reads its batch as rows, (B, in), as x
   holds it. gemm is called from inside the members' threads when there are several
   (MKL sees the OpenMP region of torch's own libgomp, which this library shares, and
   runs on the calling thread), and from no region at all at M = 1, where MKL splits a
   product over its own threads. MKL may then sum in another order: a member alone and
   the same member stacked agree to the bit with one thread, and otherwise to rounding
   (float64: within 1e-10 in the tests). Built against another OpenMP runtime (clang's
   libomp), MKL would not see the region and would start threads in each member's:
   slower, not different. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef REAL
#define REAL float
#endif
#ifndef NAME
#define NAME initlab_mlp_steps
#endif

typedef REAL real;

/* The float functions for float: torch computes float activations in float. */
#define EXP(v) (sizeof(real) == 4 ? expf((float)(v)) : exp(v))
#define LOG(v) (sizeof(real) == 4 ? logf((float)(v)) : log(v))
#define LOG1P(v) (sizeof(real) == 4 ? log1pf((float)(v)) : log1p(v))
#define TANH(v) (sizeof(real) == 4 ? tanhf((float)(v)) : tanh(v))

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_TANH = 2, ACT_SIGMOID = 3 };
enum { LOSS_CE = 0, LOSS_BCE = 1 };
enum { BATCH_FULL = 0, BATCH_SHARED = 1, BATCH_MEMBER = 2 };
enum { RULE_SGD = 0, RULE_MOMENTUM = 1, RULE_NESTEROV = 2 };
enum { CLIP_NONE = 0, CLIP_NORM = 1, CLIP_VALUE = 2 };

#define ALIGNMENT 64
/* Rows are padded to whole blocks of CHUNK elements, each summed in CHUNK independent
   lanes (several vector registers: no chain of dependent adds). */
#define CHUNK 32
#define PADDED(n) ((((n) + CHUNK - 1) / CHUNK) * CHUNK)

static real *aligned(int64_t count) {
    size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(real);
    bytes = (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    return (real *)aligned_alloc(ALIGNMENT, bytes);
}

/* dst (in, bp) = the rows of x (n, in) picked by rows (or the first b rows), transposed. */
static void gather_t(real *dst, int64_t bp, const real *x, int64_t in, const int64_t *rows,
                     int64_t b) {
    for (int64_t j = 0; j < b; j++) {
        const real *src = x + (rows ? rows[j] : j) * in;
        for (int64_t i = 0; i < in; i++) dst[i * bp + j] = src[i];
    }
    for (int64_t i = 0; i < in; i++)
        for (int64_t j = b; j < bp; j++) dst[i * bp + j] = 0;
}

/* dst (b, in) = the rows of x (n, in) picked by rows (or the first b rows), as they are. */
static void gather(real *dst, const real *x, int64_t in, const int64_t *rows, int64_t b) {
    for (int64_t j = 0; j < b; j++)
        memcpy(dst + j * in, x + (rows ? rows[j] : j) * in, sizeof(real) * (size_t)in);
}

/* The lanes added in a fixed tree: the same order on every machine and member. */
static real lanes(real *acc) {
    for (int width = CHUNK / 2; width > 0; width /= 2)
        for (int t = 0; t < width; t++) acc[t] += acc[t + width];
    return acc[0];
}

/* Explicit vectors (GCC/Clang vector extensions): the CHUNK lanes of a block stay in
   registers across the loop that adds into them. */
typedef real vec __attribute__((vector_size(32)));
#define LANES ((int)(sizeof(vec) / sizeof(real)))
#define VECS (CHUNK / LANES)

static inline vec load(const real *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(real *p, vec v) { memcpy(p, &v, sizeof v); }

static real sum_row(const real *a, int64_t bp) {
    vec acc[VECS];
    for (int v = 0; v < VECS; v++) acc[v] = load(a + v * LANES);
    for (int64_t j = CHUNK; j < bp; j += CHUNK)
        for (int v = 0; v < VECS; v++) acc[v] += load(a + j + v * LANES);
    real out[CHUNK];
    for (int v = 0; v < VECS; v++) store(out + v * LANES, acc[v]);
    return lanes(out);
}

static real dot_row(const real *a, const real *c, int64_t bp) {
    vec acc[VECS];
    for (int v = 0; v < VECS; v++) acc[v] = load(a + v * LANES) * load(c + v * LANES);
    for (int64_t j = CHUNK; j < bp; j += CHUNK)
        for (int v = 0; v < VECS; v++) acc[v] += load(a + j + v * LANES) * load(c + j + v * LANES);
    real out[CHUNK];
    for (int v = 0; v < VECS; v++) store(out + v * LANES, acc[v]);
    return lanes(out);
}

/* Σ a[i]² in double, in 8 independent sums added in a fixed tree: for the 784-100
   layer's 78,400 floats, 10 µs against 70 µs in one chain of dependent adds (measured
   on a 2-core AMD EPYC). */
static double sum_of_squares(const real *a, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) acc[t] += (double)a[i + t] * a[i + t];
    for (; i < n; i++) acc[i % 8] += (double)a[i] * a[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* z[0:CHUNK] = start + Σ_i w[i·ws] · rows[i·rs : i·rs + CHUNK], i < count */
static inline void combine(real *z, real start, const real *w, int64_t ws, const real *rows,
                           int64_t rs, int64_t count) {
    vec acc[VECS];
    const vec zero = {0};
    for (int v = 0; v < VECS; v++) acc[v] = zero + start;
    for (int64_t i = 0; i < count; i++) {
        const real wv = w[i * ws];
        const real *r = rows + i * rs;
        for (int v = 0; v < VECS; v++) acc[v] += wv * load(r + v * LANES);
    }
    for (int v = 0; v < VECS; v++) store(z + v * LANES, acc[v]);
}

/* The Fortran BLAS gemm: C = alpha·op(A)·op(B) + beta·C, column-major. */
typedef void (*gemm_fn)(const char *, const char *, const int *, const int *, const int *,
                        const real *, const real *, const int *, const real *, const int *,
                        const real *, real *, const int *);

typedef struct {
    int64_t members, layers, batch, bp, loss;
    const int64_t *widths, *acts;
    real *const *weights, *const *biases, *const *grad_w, *const *grad_b;
    gemm_fn gemm;     /* NULL: every product in the loops here */
    int64_t gemm_min; /* the fewest weights of a layer whose products go to gemm */
    int xrow;         /* the batch's input is (B, in) rows, not (in, bp) */
    int64_t rule, clip;              /* RULE_*, CLIP_* */
    real mu, wd;                     /* momentum's β, the L2 weight decay λ */
    real *const *buf_w, *const *buf_b; /* momentum's buffers, as the weights (or NULL) */
} Net;

static int uses_gemm(const Net *net, int64_t l) {
    return net->gemm && net->widths[l - 1] * net->widths[l] >= net->gemm_min;
}

/* C (m, n) with column stride ldc = beta·C + op(A) (m, k) · op(B) (k, n), column-major. */
static void product(const Net *net, char ta, char tb, int64_t m, int64_t n, int64_t k,
                    const real *a, int64_t lda, const real *b, int64_t ldb, real beta, real *c,
                    int64_t ldc) {
    const int im = (int)m, in = (int)n, ik = (int)k, ia = (int)lda, ib = (int)ldb, ic = (int)ldc;
    const real one = 1;
    net->gemm(&ta, &tb, &im, &in, &ik, &one, a, &ia, b, &ib, &beta, c, &ic);
}

/* One step of member m on the input h[0] (width[0], bp); h[1..L] and the two delta
   buffers are the member's scratch. Returns the mean loss; leaves the gradients in
   grad_w/grad_b and their global 2-norm in *norm. */
static real member_step(const Net *net, int64_t m, real **h, real *d0, real *d1,
                        const int64_t *labels, const real *targets, real *norm) {
    const int64_t L = net->layers, b = net->batch, bp = net->bp;
    const int64_t *w = net->widths;
    for (int64_t l = 1; l <= L; l++) {
        const int64_t in = w[l - 1], out = w[l], act = net->acts[l - 1];
        const real *W = net->weights[l - 1] + m * out * in;
        const real *bias = net->biases[l - 1] ? net->biases[l - 1] + m * out : NULL;
        const real *hin = h[l - 1];
        real *z = h[l];
        const int gemm = uses_gemm(net, l);
        if (gemm) { /* z (out, bp): the bias, then + W · hin over the batch's b columns */
            for (int64_t o = 0; o < out; o++)
                for (int64_t j = 0; j < b; j++) z[o * bp + j] = bias ? bias[o] : 0;
            if (l == 1 && net->xrow) product(net, 'T', 'N', b, out, in, hin, in, W, in, 1, z, bp);
            else product(net, 'N', 'N', b, out, in, hin, bp, W, in, 1, z, bp);
        }
        for (int64_t o = 0; o < out; o++) {
            real *zr = z + o * bp;
            const real start = bias ? bias[o] : 0;
            const real *wr = W + o * in;
            if (!gemm)
                for (int64_t j = 0; j < bp; j += CHUNK)
                    combine(zr + j, start, wr, 1, hin + j, bp, in);
            if (act == ACT_RELU) {
                for (int64_t j = 0; j < b; j++) zr[j] = zr[j] <= 0 ? 0 : zr[j];
            } else if (act == ACT_TANH) {
                for (int64_t j = 0; j < b; j++) zr[j] = TANH(zr[j]);
            } else if (act == ACT_SIGMOID) {
                for (int64_t j = 0; j < b; j++) zr[j] = 1 / (1 + EXP(-zr[j]));
            }
            for (int64_t j = b; j < bp; j++) zr[j] = 0; /* the padding stays 0 */
        }
    }
    /* The loss and its gradient with respect to the logits, divided by B. */
    const real *z = h[L];
    real *delta = d0;
    const int64_t classes = w[L];
    double total = 0; /* the batch's loss summed in double, whatever real is */
    const real inv = (real)1 / (real)b;
    if (net->loss == LOSS_CE) {
        for (int64_t j = 0; j < b; j++) {
            real top = z[j];
            for (int64_t c = 1; c < classes; c++) top = z[c * bp + j] > top ? z[c * bp + j] : top;
            real s = 0;
            for (int64_t c = 0; c < classes; c++) {
                delta[c * bp + j] = EXP(z[c * bp + j] - top);
                s += delta[c * bp + j];
            }
            const int64_t y = labels[j];
            total += top + LOG(s) - z[y * bp + j];
            for (int64_t c = 0; c < classes; c++)
                delta[c * bp + j] = (delta[c * bp + j] / s - (c == y ? 1 : 0)) * inv;
        }
    } else { /* bce on one logit z: −log σ(z) for label 1, −log(1 − σ(z)) for 0, i.e. the
                cross-entropy of the logits (0, z); its gradient σ(z) − y */
        for (int64_t j = 0; j < b; j++) {
            const real v = z[j], y = targets[j];
            const real t = y > (real)0.5 ? -v : v; /* the loss is softplus(t) */
            total += (t > 0 ? t : 0) + LOG1P(EXP(t < 0 ? t : -t));
            const real e = EXP(v < 0 ? v : -v);
            const real sig = v >= 0 ? 1 / (1 + e) : e / (1 + e);
            delta[j] = (sig - y) * inv;
        }
    }
    for (int64_t c = 0; c < classes; c++)
        for (int64_t j = b; j < bp; j++) delta[c * bp + j] = 0;
    /* Backward: each layer's gradients, then the delta of the layer below. */
    double squares = 0; /* the gradient norm, summed in double too */
    for (int64_t l = L; l >= 1; l--) {
        const int64_t in = w[l - 1], out = w[l];
        const real *W = net->weights[l - 1] + m * out * in;
        real *gW = net->grad_w[l - 1] + m * out * in;
        real *gB = net->grad_b[l - 1] ? net->grad_b[l - 1] + m * out : NULL;
        const real *hin = h[l - 1];
        const int gemm = uses_gemm(net, l);
        if (gemm) { /* gW (out, in) = delta (out, b) · hinᵀ (b, in) */
            if (l == 1 && net->xrow) product(net, 'N', 'N', in, out, b, hin, in, delta, bp, 0, gW, in);
            else product(net, 'T', 'N', in, out, b, hin, bp, delta, bp, 0, gW, in);
        }
        for (int64_t o = 0; o < out; o++) {
            const real *dr = delta + o * bp;
            if (gB) {
                gB[o] = sum_row(dr, bp);
                squares += (double)gB[o] * gB[o];
            }
            if (!gemm) {
                for (int64_t i = 0; i < in; i++) {
                    const real g = dot_row(dr, hin + i * bp, bp);
                    gW[o * in + i] = g;
                    squares += (double)g * g;
                }
            }
        }
        if (gemm) squares += sum_of_squares(gW, out * in);
        if (l == 1) break;
        real *below = delta == d0 ? d1 : d0;
        const int64_t act = net->acts[l - 2];
        if (gemm) /* below (in, b) = Wᵀ (in, out) · delta (out, b) */
            product(net, 'N', 'T', b, in, out, delta, bp, W, in, 0, below, bp);
        for (int64_t i = 0; i < in; i++) {
            real *br = below + i * bp;
            if (!gemm)
                for (int64_t j = 0; j < bp; j += CHUNK)
                    combine(br + j, 0, W + i, in, delta + j, bp, out);
            const real *hr = hin + i * bp; /* the activation's output */
            if (act == ACT_RELU) {
                for (int64_t j = 0; j < b; j++) br[j] = hr[j] <= 0 ? 0 : br[j];
            } else if (act == ACT_TANH) {
                for (int64_t j = 0; j < b; j++) br[j] *= 1 - hr[j] * hr[j];
            } else if (act == ACT_SIGMOID) {
                for (int64_t j = 0; j < b; j++) br[j] *= (1 - hr[j]) * hr[j];
            }
            for (int64_t j = b; j < bp; j++) br[j] = 0; /* inf·0 would leave NaN there */
        }
        delta = below;
    }
    *norm = (real)sqrt(squares);
    return (real)(total / (double)b);
}

/* Clipping, as initlab.clip with the engine's arguments, on member m's gradients in
   place: by the global norm (every gradient times min(1, c/(‖g‖ + 1e-6)), fired when
   that is < 1) or by value (each element clamped to [−c, c], fired when one was past
   it). A member whose norm is not finite keeps its gradients and does not fire, as
   there (nonfinite="pass"). Returns fired. */
static int clip_member(const Net *net, int64_t m, real norm, real c) {
    if (!isfinite(norm)) return 0;
    const int64_t *w = net->widths;
    const real scale0 = c / (norm + (real)1e-6);
    const real scale = scale0 > 1 ? 1 : scale0;
    int fired = net->clip == CLIP_NORM ? scale < 1 : 0;
    for (int64_t l = 1; l <= net->layers; l++) {
        for (int part = 0; part < 2; part++) {
            const int64_t size = part ? w[l] : w[l] * w[l - 1];
            real *const *grads = part ? net->grad_b : net->grad_w;
            if (!grads[l - 1]) continue;
            real *g = grads[l - 1] + m * size;
            if (net->clip == CLIP_NORM) {
                for (int64_t i = 0; i < size; i++) g[i] *= scale;
            } else {
                for (int64_t i = 0; i < size; i++) {
                    if (g[i] > c) g[i] = c, fired = 1;
                    else if (g[i] < -c) g[i] = -c, fired = 1;
                }
            }
        }
    }
    return fired;
}

/* The update of one tensor, as the engine's _Rule: v = g (+ λ·p), then SGD's s = lr·v,
   momentum's b ← β·b + v, s = lr·b, or Nesterov's s = lr·(β·b + v); p ← p − s where the
   member trains (a held member's momentum still moves, as in the engine). */
static void update_tensor(const Net *net, real *p, const real *g, real *buf, int64_t size,
                          real lr, int active) {
    const real mu = net->mu, wd = net->wd;
    const int decay = wd != 0, nesterov = net->rule == RULE_NESTEROV;
    if (net->rule == RULE_SGD) { /* (a held member's SGD step is skipped by the caller) */
        if (decay)
            for (int64_t i = 0; i < size; i++) p[i] -= (p[i] * wd + g[i]) * lr;
        else
            for (int64_t i = 0; i < size; i++) p[i] -= g[i] * lr;
        return;
    }
    for (int64_t i = 0; i < size; i++) { /* the invariant tests are hoisted by -O3 */
        const real v = decay ? p[i] * wd + g[i] : g[i];
        const real b = buf[i] * mu + v;
        buf[i] = b;
        const real s = nesterov ? (b * mu + v) * lr : b * lr;
        if (active) p[i] -= s;
    }
}

static void update(const Net *net, int64_t m, real lr, int active) {
    if (!active && net->rule == RULE_SGD) return; /* nothing moves */
    const int64_t *w = net->widths;
    for (int64_t l = 1; l <= net->layers; l++) {
        const int64_t size = w[l] * w[l - 1];
        real *bw = net->buf_w ? net->buf_w[l - 1] + m * size : NULL;
        update_tensor(net, net->weights[l - 1] + m * size, net->grad_w[l - 1] + m * size, bw,
                      size, lr, active);
        if (net->biases[l - 1]) {
            real *bb = net->buf_b ? net->buf_b[l - 1] + m * w[l] : NULL;
            update_tensor(net, net->biases[l - 1] + m * w[l], net->grad_b[l - 1] + m * w[l], bb,
                          w[l], lr, active);
        }
    }
}

typedef struct {
    const Net *net;
    const real *x, *targets, *lr, *full; /* full: mode 0's batch, as the layers read it */
    const real *thresholds;              /* clipping's, per member */
    uint8_t *fired;                      /* (K, M): clipping fired */
    const int64_t *labels, *idx;
    const uint8_t *active;
    real *losses, *norms, *scratch;
    int64_t *own_labels;
    real **pointers;
    int64_t own, steps, mode;
} Work;

/* Thread t of count: its members' steps, with its own scratch. Each step's rows are
   gathered by the thread that runs the member (mode 1: the same rows for every member),
   into its own buffer. */
static void members_steps(const Work *w, int64_t t, int64_t count) {
    const Net *net = w->net;
    const int64_t layers = net->layers, bp = net->bp, batch = net->batch, members = net->members;
    const int64_t in = net->widths[0], mode = w->mode;
    int64_t widest = 0;
    for (int64_t l = 1; l <= layers; l++) widest = net->widths[l] > widest ? net->widths[l] : widest;
    real **h = w->pointers + t * (layers + 1);
    real *p = w->scratch + t * w->own;
    for (int64_t l = 1; l <= layers; l++) {
        h[l] = p;
        p += net->widths[l] * bp;
    }
    real *d0 = p, *d1 = p + widest * bp;
    /* modes 1 and 2: the step's batch, then its targets */
    real *own_x = mode != BATCH_FULL ? d1 + widest * bp : NULL;
    real *own_tar = own_x ? own_x + in * bp : NULL;
    int64_t *own_lab = w->own_labels ? w->own_labels + t * batch : NULL;
    const int64_t first = members * t / count, last = members * (t + 1) / count;
    for (int64_t m = first; m < last; m++) {
        for (int64_t k = 0; k < w->steps; k++) {
            const int64_t *lab = w->labels;
            const real *tar = w->targets;
            if (mode == BATCH_FULL) {
                h[0] = (real *)w->full; /* read, never written */
            } else {
                const int64_t *rows = w->idx + (mode == BATCH_SHARED ? k : k * members + m) * batch;
                if (net->xrow) gather(own_x, w->x, in, rows, batch);
                else gather_t(own_x, bp, w->x, in, rows, batch);
                for (int64_t j = 0; j < batch; j++) {
                    if (net->loss == LOSS_CE) own_lab[j] = w->labels[rows[j]];
                    else own_tar[j] = w->targets[rows[j]];
                }
                h[0] = own_x;
                lab = own_lab;
                tar = own_tar;
            }
            real norm;
            w->losses[k * members + m] = member_step(net, m, h, d0, d1, lab, tar, &norm);
            w->norms[k * members + m] = norm;
            if (net->clip != CLIP_NONE)
                w->fired[k * members + m] = (uint8_t)clip_member(net, m, norm, w->thresholds[m]);
            update(net, m, w->lr[m], w->active[m]);
        }
    }
}

/* Returns 0; 1 when memory could not be had, 2 for an unknown activation code, 3 for an
   unknown rule or clipping, or momentum without its buffers (nothing was changed then). */
int NAME(int64_t members, int64_t layers, const int64_t *widths, const int64_t *acts,
         real *const *weights, real *const *biases, real *const *grad_w, real *const *grad_b,
         int64_t loss, const real *x, int64_t n, const int64_t *labels, const real *targets,
         int64_t steps, int64_t batch, int64_t mode, const int64_t *idx, const real *lr,
         const uint8_t *active, real *losses, real *norms, int64_t threads, gemm_fn gemm,
         int64_t gemm_min, int64_t rule, double mu, double wd, real *const *buf_w,
         real *const *buf_b, int64_t clip, const real *thresholds, uint8_t *fired) {
    (void)n;
    const int64_t bp = PADDED(batch), in = widths[0];
    if (rule < RULE_SGD || rule > RULE_NESTEROV || clip < CLIP_NONE || clip > CLIP_VALUE) return 3;
    if (rule != RULE_SGD && !buf_w) return 3;
    Net net = {.members = members, .layers = layers, .batch = batch, .bp = bp, .loss = loss,
               .widths = widths, .acts = acts, .weights = weights, .biases = biases,
               .grad_w = grad_w, .grad_b = grad_b, .gemm = gemm, .gemm_min = gemm_min,
               .xrow = 0, .rule = rule, .clip = clip, .mu = (real)mu, .wd = (real)wd,
               .buf_w = rule == RULE_SGD ? NULL : buf_w, .buf_b = rule == RULE_SGD ? NULL : buf_b};
    net.xrow = uses_gemm(&net, 1);
    int64_t widest = 0, hidden = 0; /* the deltas hold layers 1..L's widths */
    for (int64_t l = 1; l <= layers; l++) {
        widest = widths[l] > widest ? widths[l] : widest;
        hidden += widths[l];
    }
    for (int64_t l = 0; l < layers; l++)
        if (acts[l] < ACT_NONE || acts[l] > ACT_SIGMOID) return 2;
    /* Mode 0's batch, once for every step and member: x itself where the first layer
       reads rows, else x transposed. */
    real *xt = mode == BATCH_FULL && !net.xrow ? aligned(in * bp) : NULL;
    if (mode == BATCH_FULL && !net.xrow && !xt) return 1;
    if (xt) gather_t(xt, bp, x, in, NULL, batch);
    /* Each thread's scratch, made before the threads start (a thread that could not
       have its own would leave the others waiting for it). */
    const int64_t nthreads = threads < 1 ? 1 : threads > members ? members : threads;
    const int64_t own = (hidden + 2 * widest + (mode != BATCH_FULL ? in + 1 : 0)) * bp;
    real *scratch = aligned(nthreads * own);
    int64_t *own_labels =
        mode != BATCH_FULL ? (int64_t *)malloc(sizeof(int64_t) * nthreads * batch) : NULL;
    real **pointers = (real **)malloc(sizeof(real *) * nthreads * (layers + 1));
    if (!scratch || (mode != BATCH_FULL && !own_labels) || !pointers) {
        free(xt);
        free(scratch);
        free(own_labels);
        free(pointers);
        return 1;
    }
    const Work work = {
        .net = &net,       .x = x,         .targets = targets, .lr = lr,
        .full = xt ? xt : x, .labels = labels, .idx = idx,       .active = active,
        .losses = losses,  .norms = norms, .scratch = scratch, .own_labels = own_labels,
        .pointers = pointers, .own = own,  .steps = steps,     .mode = mode,
        .thresholds = thresholds, .fired = fired,
    };
#ifdef _OPENMP
    if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
        members_steps(&work, omp_get_thread_num(), omp_get_num_threads());
    } else /* not even an inactive region: MKL then runs its own threads */
#endif
        members_steps(&work, 0, 1);
    free(scratch);
    free(own_labels);
    free(pointers);
    free(xt);
    return 0;
}
