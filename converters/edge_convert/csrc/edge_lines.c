/* Plain sample lines read in C, for the agent's block path (edge_agent/blocks.py). The reference is
 * edge_agent/samples.py, which reads every line this leaves to it (ok = 0): a line with a byte outside
 * printable ASCII and tab, a JSON line, a wrong field count, an empty stream, or a field the model
 * reads that is not a plain finite number (empty, NaN, an ISO time, a header's name). So a line read
 * here gives the values Python's float() gives: both round correctly, and the grammar is float()'s. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* 10^k for k <= 22: each exactly a double. */
static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number already checked against number()'s grammar (no blanks), when its digits make an integer m
 * of at most 2^53 and its decimal exponent k is within 22: m and 10^|k| are then exact doubles, and
 * one IEEE multiply or divide rounds m * 10^k correctly, as strtod does (Clinger's fast path), at a
 * tenth of strtod's cost. Returns 0 for any other number: strtod reads it. A sensor's "641.82" or
 * "-0.0007" takes this path. */
static int exact_decimal(const char *p, const char *end, double *out) {
  int negative = *p == '-', k = 0;
  if (*p == '+' || *p == '-') p++;
  uint64_t m = 0;
  for (int fraction = 0; p < end && *p != 'e' && *p != 'E'; p++) {
    if (*p == '.') {
      fraction = 1;
      continue;
    }
    if (m > 900719925474099u) return 0; /* m * 10 + 9 could pass 2^53 */
    m = m * 10 + (uint64_t)(*p - '0');
    k -= fraction;
  }
  if (p < end) { /* the exponent */
    int negative_exp = *++p == '-', e = 0;
    if (*p == '+' || *p == '-') p++;
    for (; p < end; p++) {
      if (e > 1000) return 0;
      e = e * 10 + (*p - '0');
    }
    k += negative_exp ? -e : e;
  }
  if (m > (UINT64_C(1) << 53) || k < -22 || k > 22) return 0;
  double v = k < 0 ? (double)m / POW10[-k] : (double)m * POW10[k];
  *out = negative ? -v : v;
  return 1;
}

/* [sign] digits [. digits] [(e|E) [sign] digits], at least one mantissa digit, blanks around. */
static int number(const char *s, const char *end, double *out) {
  while (s < end && is_blank(*s)) s++;
  while (end > s && is_blank(end[-1])) end--;
  const char *p = s;
  int digits = 0, exp_digits = 0;
  if (p < end && (*p == '+' || *p == '-')) p++;
  for (; p < end && *p >= '0' && *p <= '9'; p++) digits++;
  if (p < end && *p == '.')
    for (p++; p < end && *p >= '0' && *p <= '9'; p++) digits++;
  if (!digits) return 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++) exp_digits++;
    if (!exp_digits) return 0;
  }
  char buf[64];
  size_t n = (size_t)(end - s);
  if (p != end || n >= sizeof buf) return 0;
  double v;
#if FLT_EVAL_METHOD == 0 /* doubles computed as doubles (SSE2, ARM): x87's wider registers would round twice */
  if (!exact_decimal(s, end, &v))
#endif
  {
    memcpy(buf, s, n);
    buf[n] = 0;
    v = strtod(buf, NULL);
  }
  if (!isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* The fields of one line as samples.split_line splits it: at ';' if it has one, else at ',', else at
 * runs of blanks. Fills starts/ends (at most max); returns the field count, or -1 past max. */
static int split(const char *line, const char *end, const char **starts, const char **ends, int max) {
  char sep = memchr(line, ';', (size_t)(end - line)) ? ';' : memchr(line, ',', (size_t)(end - line)) ? ',' : 0;
  int n = 0;
  const char *p = line;
  if (sep) {
    for (;;) {
      const char *q = memchr(p, sep, (size_t)(end - p));
      if (n == max) return -1;
      starts[n] = p;
      ends[n++] = q ? q : end;
      if (!q) return n;
      p = q + 1;
    }
  }
  while (p < end) {
    while (p < end && is_blank(*p)) p++;
    if (p == end) break;
    const char *q = p;
    while (q < end && !is_blank(*q)) q++;
    if (n == max) return -1;
    starts[n] = p;
    ends[n++] = q;
    p = q;
  }
  return n;
}

static int plain(const char *line, const char *end) {
  if (line < end && *line == '{') return 0;
  for (const unsigned char *p = (const unsigned char *)line; p < (const unsigned char *)end; p++)
    if ((*p < 0x20 && *p != '\t') || *p > 0x7e) return 0;
  return 1;
}

/* n lines of text (each ended by '\n'), laid out as `columns` says: width, stream index, time index
 * (-1: none), n_features and their indices, n_settings and theirs. Per line: ok, and when ok its
 * values, settings, time and the stream's [start, end) within the line. Returns the lines read. */
int edge_parse_lines(const char *text, int64_t size, int n, const int32_t *columns, int8_t *ok, double *values,
                     double *settings, double *times, int32_t *stream) {
  int width = columns[0], stream_i = columns[1], time_i = columns[2], n_features = columns[3];
  const int32_t *feature_i = columns + 4, *setting_i = columns + 5 + n_features;
  int n_settings = columns[4 + n_features];
  const char **starts = malloc(sizeof(char *) * (size_t)(width + 1) * 2);
  if (!starts) return -1;
  const char **ends = starts + width + 1;
  const char *p = text, *stop = text + size;
  int done = 0;
  for (int i = 0; i < n && p < stop; i++, done++) {
    const char *end = memchr(p, '\n', (size_t)(stop - p));
    if (!end) end = stop;
    int good = plain(p, end) && split(p, end, starts, ends, width + 1) == width;
    for (int j = 0; good && j < n_features; j++)
      good = number(starts[feature_i[j]], ends[feature_i[j]], values + (size_t)i * n_features + j);
    for (int j = 0; good && j < n_settings; j++)
      good = number(starts[setting_i[j]], ends[setting_i[j]], settings + (size_t)i * n_settings + j);
    if (good && time_i >= 0) good = number(starts[time_i], ends[time_i], times + i);
    if (good && stream_i >= 0) {
      const char *a = starts[stream_i], *b = ends[stream_i];
      while (a < b && is_blank(*a)) a++;
      while (b > a && is_blank(b[-1])) b--;
      good = a < b;
      stream[2 * i] = (int32_t)(a - p);
      stream[2 * i + 1] = (int32_t)(b - p);
    }
    ok[i] = (int8_t)good;
    p = end + 1;
  }
  free(starts);
  return done;
}
