/* Plain sample lines read in C, for the agent's block path (edge_agent/blocks.py). The reference is
 * edge_agent/samples.py, which reads every line this leaves to it (ok = 0): a line with a byte outside
 * printable ASCII and tab, a JSON line, a wrong field count, an empty stream, or a field the model
 * reads that is not a plain finite number (empty, NaN, an ISO time, a header's name). So a line read
 * here gives the values Python's float() gives: both round correctly, and the grammar is float()'s. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c) { return c == ' ' || c == '\t'; }

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
  memcpy(buf, s, n);
  buf[n] = 0;
  double v = strtod(buf, NULL);
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
