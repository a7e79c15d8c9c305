/* edgectl's window kernel: preprocessing, per-stream running statistics and every window
 * feature kind, in C; the same arithmetic, in the same order, as edge_agent/windows.py and
 * edge_agent/preprocess.py (the reference), so its features equal theirs bit for bit.
 *
 * One source for every manifest: the plan (which channels, kinds, spans; the fitted
 * preprocessing) is given at run time as two flat arrays, built by edge_agent/kernel.py.
 * Compiled with -ffp-contract=off: a fused multiply-add would round differently from numpy.
 *
 * Sums follow numpy: along a window (numpy's axis 0) one row after another from 0.0; along a
 * row (numpy's contiguous axis: the condition distances, the derived channels) numpy's
 * pairwise summation. The only libm call is sqrt, which IEEE 754 rounds exactly everywhere.
 *
 * Built into each bundle's tree library (edge_serve.c feeds its windows to edge_predict) and, for
 * training features on the host, on its own. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EDGE_WINDOW_ABI 3

enum op { W_MEAN, W_STD, W_MIN, W_MAX, W_RMS, W_SLOPE, W_LAST, R_MEAN, R_STD, R_SLOPE, A_MEAN, A_SLOPE, EWM, BASE, PEAK };

typedef struct { int channel, op_a, arg_a, op_b, arg_b, span_a, span_b; } feature_t;

typedef struct {
  int n_cols, n_derived, n_ch, length, stride, ring, with_time, expanding;
  int n_spans, n_ewm, n_base, n_peak, n_settings, n_conditions, n_features, n_out;
  int64_t *spans, *ewm, *base, *peak;
  int *peak_span; /* index in spans of each peak's K */
  feature_t *features;
  double *fill, *center, *scale, *setting_scale, *centers, *weights;
} plan_t;

typedef struct {
  double time, first_time;
  int has_first;
  int64_t count;
  double *ring, *sums, *ewm, *base, *peak, *mean_x, *co_ix; /* sums: per span, x, x^2, i*x */
  double mean_i, m2_i;
  double *x; /* this sample, every channel */
} stream_t;

int edge_window_abi(void) { return EDGE_WINDOW_ABI; }

/* numpy's pairwise summation of a[0..n) with stride (numpy/_core/src/umath/loops_utils.h.src). */
static double pairwise(const double *a, int64_t n, int64_t stride) {
  if (n < 8) {
    double res = 0.0;
    for (int64_t i = 0; i < n; i++) res += a[i * stride];
    return res;
  }
  if (n <= 128) {
    double r[8], res;
    int64_t i;
    for (int j = 0; j < 8; j++) r[j] = a[j * stride];
    for (i = 8; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; j++) r[j] += a[(i + j) * stride];
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i * stride];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2, stride) + pairwise(a + n2 * stride, n - n2, stride);
}

static int span_index(const plan_t *p, int64_t k) {
  for (int i = 0; i < p->n_spans; i++)
    if (p->spans[i] == k) return i;
  return -1;
}

static int64_t *take_ints(const int64_t **in, int n) {
  int64_t *out = malloc(sizeof(int64_t) * (n ? n : 1));
  if (out) memcpy(out, *in, sizeof(int64_t) * n);
  *in += n;
  return out;
}

static double *take_reals(const double **in, int n) {
  double *out = malloc(sizeof(double) * (n ? n : 1));
  if (out) memcpy(out, *in, sizeof(double) * n);
  *in += n;
  return out;
}

void edge_window_plan_free(plan_t *p) {
  if (!p) return;
  free(p->spans); free(p->ewm); free(p->base); free(p->peak); free(p->peak_span); free(p->features);
  free(p->fill); free(p->center); free(p->scale); free(p->setting_scale); free(p->centers); free(p->weights);
  free(p);
}

/* The plan from the flat arrays kernel.py writes (see kernel.plan_arrays); NULL when it does not hold. */
plan_t *edge_window_plan(const int64_t *ints, const double *reals) {
  plan_t *p = calloc(1, sizeof(plan_t));
  if (!p || ints[0] != EDGE_WINDOW_ABI) { free(p); return NULL; }
  const int64_t *in = ints + 1;
  p->n_cols = (int)*in++; p->n_derived = (int)*in++; p->length = (int)*in++; p->stride = (int)*in++;
  p->ring = (int)*in++; p->with_time = (int)*in++; p->expanding = (int)*in++;
  p->n_ch = p->n_cols + p->n_derived;
  p->n_spans = (int)*in++; p->spans = take_ints(&in, p->n_spans);
  p->n_ewm = (int)*in++; p->ewm = take_ints(&in, p->n_ewm);
  p->n_base = (int)*in++; p->base = take_ints(&in, p->n_base);
  p->n_peak = (int)*in++; p->peak = take_ints(&in, p->n_peak);
  p->n_settings = (int)*in++; p->n_conditions = (int)*in++;
  p->n_features = (int)*in++;
  p->features = malloc(sizeof(feature_t) * (p->n_features ? p->n_features : 1));
  p->peak_span = malloc(sizeof(int) * (p->n_peak ? p->n_peak : 1));
  if (!p->features || !p->peak_span) { edge_window_plan_free(p); return NULL; }
  for (int i = 0; i < p->n_peak; i++) p->peak_span[i] = span_index(p, p->peak[i]);
  for (int f = 0; f < p->n_features; f++) {
    feature_t *ft = &p->features[f];
    ft->channel = (int)*in++; ft->op_a = (int)*in++; ft->arg_a = (int)*in++; ft->op_b = (int)*in++;
    ft->arg_b = (int)*in++;
    ft->span_a = span_index(p, ft->op_a <= W_LAST ? p->length : ft->arg_a);
    ft->span_b = span_index(p, ft->op_b <= W_LAST ? p->length : ft->arg_b);
  }
  p->n_out = p->n_features + (p->with_time ? 1 : 0);
  int k = p->n_conditions ? p->n_conditions : 1, c = p->n_cols;
  const double *r = reals;
  p->fill = take_reals(&r, c);
  p->center = take_reals(&r, k * c);
  p->scale = take_reals(&r, k * c);
  p->setting_scale = take_reals(&r, p->n_conditions ? p->n_settings : 0);
  p->centers = take_reals(&r, p->n_conditions * p->n_settings);
  p->weights = take_reals(&r, p->n_derived * c);
  return p;
}

int edge_window_n_features(const plan_t *p) { return p->n_out; }

void edge_window_stream_free(stream_t *s) {
  if (!s) return;
  free(s->ring); free(s->sums); free(s->ewm); free(s->base); free(s->peak); free(s->mean_x); free(s->co_ix);
  free(s->x); free(s);
}

/* Forget everything: the stream starts over (StreamWindow.reset). */
void edge_window_reset(const plan_t *p, stream_t *s) {
  int c = p->n_ch;
  s->time = 0.0; s->has_first = 0; s->first_time = 0.0; s->count = 0;
  memset(s->ring, 0, sizeof(double) * p->ring * c);
  memset(s->sums, 0, sizeof(double) * p->n_spans * 3 * c);
  memset(s->ewm, 0, sizeof(double) * (p->n_ewm ? p->n_ewm : 1) * c);
  memset(s->base, 0, sizeof(double) * (p->n_base ? p->n_base : 1) * c);
  for (int i = 0; i < p->n_peak * c; i++) s->peak[i] = -INFINITY;
  s->mean_i = 0.0; s->m2_i = 0.0;
  memset(s->mean_x, 0, sizeof(double) * c);
  memset(s->co_ix, 0, sizeof(double) * c);
}

stream_t *edge_window_stream(const plan_t *p) {
  stream_t *s = calloc(1, sizeof(stream_t));
  if (!s) return NULL;
  size_t c = p->n_ch;
  s->ring = malloc(sizeof(double) * p->ring * c);
  s->sums = malloc(sizeof(double) * (p->n_spans ? p->n_spans : 1) * 3 * c);
  s->ewm = malloc(sizeof(double) * (p->n_ewm ? p->n_ewm : 1) * c);
  s->base = malloc(sizeof(double) * (p->n_base ? p->n_base : 1) * c);
  s->peak = malloc(sizeof(double) * (p->n_peak ? p->n_peak : 1) * c);
  s->mean_x = malloc(sizeof(double) * c);
  s->co_ix = malloc(sizeof(double) * c);
  s->x = malloc(sizeof(double) * c);
  if (!s->ring || !s->sums || !s->ewm || !s->base || !s->peak || !s->mean_x || !s->co_ix || !s->x) {
    edge_window_stream_free(s);
    return NULL;
  }
  edge_window_reset(p, s);
  return s;
}

/* Whether a sample at `time` may be pushed (StreamWindow.enter): 1 yes, 0 stale (nothing changes);
 * a time at or before the run's first sample, once the stream has two, starts the stream over. */
int edge_window_enter(const plan_t *p, stream_t *s, double time) {
  if (!s->count || time > s->time) return 1;
  if (s->count > 1 && time <= s->first_time) {
    edge_window_reset(p, s);
    return 1;
  }
  return 0;
}

/* Preprocessing.apply: impute, pick the condition, standardize; then the derived channels. */
static void preprocess(const plan_t *p, const double *values, const double *settings, double *x) {
  int c = p->n_cols, k = 0;
  if (p->n_conditions) {
    double best = 0.0, z[p->n_settings], d[p->n_settings];
    int found_nan = 0;
    for (int j = 0; j < p->n_settings; j++) z[j] = settings[j] / p->setting_scale[j];
    for (int q = 0; q < p->n_conditions; q++) {
      for (int j = 0; j < p->n_settings; j++) {
        double diff = z[j] - p->centers[q * p->n_settings + j];
        d[j] = diff * diff;
      }
      double dist = pairwise(d, p->n_settings, 1);
      if (isnan(dist)) { /* numpy's argmin: the first NaN */
        if (!found_nan) { k = q; found_nan = 1; }
      } else if (!found_nan && (q == 0 || dist < best)) {
        best = dist;
        k = q;
      }
    }
  }
  for (int i = 0; i < c; i++) {
    double v = isnan(values[i]) ? p->fill[i] : values[i];
    x[i] = (v - p->center[k * c + i]) / p->scale[k * c + i];
  }
  for (int d = 0; d < p->n_derived; d++) {
    double prod[c];
    for (int i = 0; i < c; i++) prod[i] = p->weights[d * c + i] * x[i];
    x[c + d] = pairwise(prod, c, 1);
  }
}

static void resum(const plan_t *p, stream_t *s, int si) {
  int c = p->n_ch;
  int64_t k = p->spans[si];
  double *sx = s->sums + (size_t)si * 3 * c, *s2 = sx + c, *six = s2 + c;
  for (int j = 0; j < c; j++) sx[j] = s2[j] = six[j] = 0.0;
  for (int64_t i = 0; i < k; i++) {
    const double *row = s->ring + ((s->count - k + i) % p->ring) * c;
    for (int j = 0; j < c; j++) {
      sx[j] += row[j];
      s2[j] += row[j] * row[j];
      six[j] += (double)i * row[j];
    }
  }
}

/* StreamWindow.push of one sample's raw values (after enter said yes): 1 when a window is complete.
 * x_out (n_cols, or NULL) gets the preprocessed sample: the drift monitor reads it. */
int edge_window_push(const plan_t *p, stream_t *s, const double *values, const double *settings, double time,
                     double *x_out) {
  int c = p->n_ch;
  double *x = s->x;
  preprocess(p, values, settings, x);
  if (!s->has_first) { s->first_time = time; s->has_first = 1; }
  s->time = time;
  int64_t t = s->count;
  for (int si = 0; si < p->n_spans; si++) {
    int64_t k = p->spans[si];
    double *sx = s->sums + (size_t)si * 3 * c, *s2 = sx + c, *six = s2 + c;
    if (t < k) {
      for (int j = 0; j < c; j++) {
        sx[j] += x[j];
        s2[j] += x[j] * x[j];
        six[j] += (double)t * x[j];
      }
    } else {
      const double *old = s->ring + ((t - k) % p->ring) * c;
      for (int j = 0; j < c; j++) {
        sx[j] -= old[j];
        s2[j] -= old[j] * old[j];
        six[j] -= sx[j];
        sx[j] += x[j];
        s2[j] += x[j] * x[j];
        six[j] += (double)(k - 1) * x[j];
      }
    }
  }
  memcpy(s->ring + (t % p->ring) * c, x, sizeof(double) * c);
  if (x_out) memcpy(x_out, x, sizeof(double) * p->n_cols);
  s->count = t + 1;
  for (int si = 0; si < p->n_spans; si++) {
    int64_t k = p->spans[si];
    if (s->count > k && s->count % k == 0) resum(p, s, si);
  }
  for (int e = 0; e < p->n_ewm; e++) {
    double *m = s->ewm + (size_t)e * c, alpha = 2.0 / (double)(p->ewm[e] + 1);
    for (int j = 0; j < c; j++) m[j] = t ? m[j] + (x[j] - m[j]) * alpha : m[j] + x[j];
  }
  for (int b = 0; b < p->n_base; b++) {
    if (t < p->base[b]) {
      double *m = s->base + (size_t)b * c;
      for (int j = 0; j < c; j++) m[j] += x[j];
    }
  }
  for (int q = 0; q < p->n_peak; q++) {
    int64_t k = p->peak[q], n = s->count < k ? s->count : k;
    const double *sx = s->sums + (size_t)p->peak_span[q] * 3 * c;
    double *m = s->peak + (size_t)q * c;
    for (int j = 0; j < c; j++) {
      double v = sx[j] / (double)n; /* np.maximum: NaN wins */
      if (isnan(m[j]) || isnan(v)) m[j] = isnan(m[j]) ? m[j] : v;
      else if (v > m[j]) m[j] = v;
    }
  }
  if (p->expanding) { /* Welford, as windows.py */
    double d_i = (double)t - s->mean_i, count = (double)s->count;
    s->mean_i += d_i / count;
    for (int j = 0; j < c; j++) {
      s->mean_x[j] += (x[j] - s->mean_x[j]) / count;
      s->co_ix[j] += d_i * (x[j] - s->mean_x[j]);
    }
    s->m2_i += d_i * ((double)t - s->mean_i);
  }
  int64_t n = p->length;
  return s->count >= n && (s->count - n) % p->stride == 0;
}

/* enter, then push: -1 stale (nothing changed), 0 pushed, 1 pushed and a window is complete. */
int edge_window_step(const plan_t *p, stream_t *s, const double *values, const double *settings, double time,
                     double *x_out) {
  if (!edge_window_enter(p, s, time)) return -1;
  return edge_window_push(p, s, values, settings, time, x_out);
}

static double rolling(const plan_t *p, const stream_t *s, int kind, int64_t k, int si, int j) {
  int c = p->n_ch;
  int64_t n = s->count < k ? s->count : k;
  const double *sx = s->sums + (size_t)si * 3 * c, *s2 = sx + c, *six = s2 + c;
  double mean = sx[j] / (double)n;
  if (kind == 0) return mean;
  if (kind == 1) {
    double v = s2[j] / (double)n - mean * mean;
    return sqrt(v > 0.0 ? v : (isnan(v) ? v : 0.0));
  }
  double var_i = (double)(n * (n * n - 1)) / 12.0;
  if (var_i == 0.0) var_i = 1.0;
  return (six[j] - ((double)(n - 1) / 2.0) * sx[j]) / var_i;
}

static double value(const plan_t *p, const stream_t *s, int op, int arg, int si, int j) {
  int c = p->n_ch;
  int64_t n = p->length;
  switch (op) {
    case W_MEAN: return rolling(p, s, 0, n, si, j);
    case W_STD: return rolling(p, s, 1, n, si, j);
    case W_SLOPE: return rolling(p, s, 2, n, si, j);
    case W_RMS: {
      double v = s->sums[(size_t)si * 3 * c + c + j] / (double)n;
      return sqrt(v > 0.0 ? v : (isnan(v) ? v : 0.0));
    }
    case W_LAST: return s->ring[((s->count - 1) % p->ring) * c + j];
    case W_MIN:
    case W_MAX: {
      double m = s->ring[((s->count - n) % p->ring) * c + j];
      for (int64_t i = 1; i < n && !isnan(m); i++) { /* numpy's min and max: NaN wins */
        double v = s->ring[((s->count - n + i) % p->ring) * c + j];
        if (isnan(v) || (op == W_MIN ? v < m : v > m)) m = v;
      }
      return m;
    }
    case R_MEAN: return rolling(p, s, 0, arg, si, j);
    case R_STD: return rolling(p, s, 1, arg, si, j);
    case R_SLOPE: return rolling(p, s, 2, arg, si, j);
    case A_MEAN: return s->mean_x[j];
    case A_SLOPE: return s->m2_i != 0.0 ? s->co_ix[j] / s->m2_i : 0.0 * s->mean_x[j];
    case EWM:
      for (int e = 0; e < p->n_ewm; e++)
        if (p->ewm[e] == arg) return s->ewm[(size_t)e * c + j];
      return NAN;
    case BASE:
      for (int b = 0; b < p->n_base; b++)
        if (p->base[b] == arg) return s->base[(size_t)b * c + j] / (double)(s->count < arg ? s->count : arg);
      return NAN;
    case PEAK:
      for (int q = 0; q < p->n_peak; q++)
        if (p->peak[q] == arg) return s->peak[(size_t)q * c + j];
      return NAN;
  }
  return NAN;
}

/* StreamWindow.features: the plan's features of the stream's current window, then its time. */
void edge_window_features(const plan_t *p, const stream_t *s, double *out) {
  for (int f = 0; f < p->n_features; f++) {
    const feature_t *ft = &p->features[f];
    double a = value(p, s, ft->op_a, ft->arg_a, ft->span_a, ft->channel);
    out[f] = ft->op_b < 0 ? a : a - value(p, s, ft->op_b, ft->arg_b, ft->span_b, ft->channel);
  }
  if (p->with_time) out[p->n_features] = s->time;
}

/* StreamWindow.raw: the window's samples of the input columns in time order, (length, n_cols). */
void edge_window_raw(const plan_t *p, const stream_t *s, double *out) {
  int64_t n = p->length;
  for (int64_t i = 0; i < n; i++)
    memcpy(out + i * p->n_cols, s->ring + ((s->count - n + i) % p->ring) * p->n_ch, sizeof(double) * p->n_cols);
}

/* The drift monitor (edge_agent/drift.py: DriftMonitor, whose numpy and Python code is the reference):
 * its arrays and settings, as drift.py's DriftState lays them out. */
typedef struct {
  double *ring;           /* (window, n_features): the last `window` preprocessed samples */
  int8_t *bins;           /* (window, n_features): each slot's bin, -1 before the slot is first binned (a byte:
                           * the bins of a window of samples stay in a core's cache) */
  int64_t *counts;        /* n_features * (width + 1): how many slots are in each feature's bins */
  const double *edges;    /* (n_features, width): each feature's bin edges, padded with +inf */
  const double *expected; /* (n_features, width + 1): the training proportions, at least eps */
  int8_t *drifting;       /* n_features: 1 while a feature is in drift, as the monitor's records say */
  int64_t n_features, width, window, every;
  double eps, threshold;
} drift_t;

/* Sample i, the values x, into its bins (slot i % window): how many of a feature's edges are <= the
 * value (NaN: 0); the slot's earlier bin, if it has one, leaves the counts. */
static void drift_bin(const drift_t *d, int64_t i, const double *x) {
  int64_t w = d->width;
  int8_t *b = d->bins + (i % d->window) * d->n_features;
  for (int64_t f = 0; f < d->n_features; f++) {
    const double *e = d->edges + f * w;
    int64_t k = 0;
    for (int64_t j = 0; j < w; j++) k += e[j] <= x[f];
    if (b[f] >= 0) d->counts[f * (w + 1) + b[f]]--;
    b[f] = (int8_t)k;
    d->counts[f * (w + 1) + k]++;
  }
}

/* Sample i from the ring, where observe (line by line) left it to be binned at the next check. */
static void drift_bin_ring(const drift_t *d, int64_t i) { drift_bin(d, i, d->ring + (i % d->window) * d->n_features); }

/* Each feature's PSI of the counts against the expected proportions into psi, summed bin by bin in
 * the reference's order with the same libm log, so the values are its bits. A feature enters drift
 * above the threshold and leaves it below half of it (the monitor's hysteresis: drifting follows the
 * records the monitor will write); returns how many changed. Usually none: nothing to write. */
static int64_t drift_psi(const drift_t *d, double *psi) {
  int64_t changes = 0, w = d->width;
  for (int64_t f = 0; f < d->n_features; f++) {
    double sum = 0.0;
    for (int64_t j = 0; j <= w; j++) {
      double a = (double)d->counts[f * (w + 1) + j] / (double)d->window, e = d->expected[f * (w + 1) + j];
      if (a < d->eps) a = d->eps;
      sum += (a - e) * log(a / e);
    }
    psi[f] = sum;
    int8_t change = d->drifting[f] ? sum < d->threshold / 2 : sum > d->threshold;
    d->drifting[f] ^= change;
    changes += change;
  }
  return changes;
}

/* A check over the ring as it is: the samples first..seen-1 not binned yet into their bins, then the
 * PSI (into psi); returns how many features change state. */
int64_t edge_drift_check(const drift_t *d, int64_t first, int64_t seen, double *psi) {
  for (int64_t i = first; i < seen; i++) drift_bin_ring(d, i);
  return drift_psi(d, psi);
}

/* A block's samples, in order: each of the n rows of xs (x_stride doubles apart) whose status is not
 * negative goes into its bins, after the samples still in the ring that were not binned yet
 * (max(binned, seen - window)..seen-1). Binned at once, it is not copied to the ring: no check reads it
 * there again.
 * At each check (a sample count that is a multiple of every, and at least window) the PSI goes to
 * psi + k * n_features and (row, sample count, features changing state) to checks + 3 * k.
 * Returns the number of checks k (the caller has room for n / every + 1). */
int64_t edge_drift_observe(const drift_t *d, int64_t binned, int64_t seen, const double *xs, int64_t x_stride,
                           const int8_t *status, int64_t n, double *psi, int64_t *checks) {
  for (int64_t i = binned > seen - d->window ? binned : seen - d->window; i < seen; i++) drift_bin_ring(d, i);
  int64_t k = 0;
  for (int64_t row = 0; row < n; row++) {
    if (status[row] < 0) continue;
    drift_bin(d, seen++, xs + row * x_stride);
    if (seen >= d->window && seen % d->every == 0) {
      int64_t *c = checks + 3 * k;
      c[0] = row;
      c[1] = seen;
      c[2] = drift_psi(d, psi + k * d->n_features);
      k++;
    }
  }
  return k;
}
