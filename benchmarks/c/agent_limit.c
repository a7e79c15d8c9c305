/* The limit for the agent's end-to-end throughput: what the agent does per sample, in plain C, on
 * the same file with the same bundle library. Parse (whitespace or comma separated numbers),
 * preprocess + window features (the bundle's window kernel), predict (the bundle's edge_predict),
 * one record line per window, written in 64 KiB batches.
 *
 *   agent_limit LIB PLAN.i64 PLAN.f64 INPUT OUTPUT STREAM_COL TIME_COL NCOLS FEATURE_COLS... -- SETTING_COLS...
 *
 * Streams are the integer ids in STREAM_COL (the C-MAPSS unit), below 1<<20. Prints one JSON object:
 * samples, windows, seconds, and the per-window nanoseconds (line start -> record formatted) to
 * OUTPUT.lat as float64. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void *(*plan_fn)(const int64_t *, const double *);
typedef void *(*stream_fn)(const void *);
typedef int (*enter_fn)(const void *, void *, double);
typedef int (*push_fn)(const void *, void *, const double *, const double *, double, double *);
typedef void (*features_fn)(const void *, const void *, double *);
typedef int (*predict_fn)(const float *, double *);
typedef int (*count_fn)(void);

static void *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(*n + 1);
  if (fread(buf, 1, *n, f) != *n) { perror(path); exit(1); }
  buf[*n] = 0;
  fclose(f);
  return buf;
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) { fprintf(stderr, "%s: %s\n", name, dlerror()); exit(1); }
  return p;
}

int main(int argc, char **argv) {
  if (argc < 10) { fprintf(stderr, "usage: see the source\n"); return 2; }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  plan_fn make_plan = (plan_fn)sym(lib, "edge_window_plan");
  stream_fn make_stream = (stream_fn)sym(lib, "edge_window_stream");
  enter_fn enter = (enter_fn)sym(lib, "edge_window_enter");
  push_fn push = (push_fn)sym(lib, "edge_window_push");
  features_fn features = (features_fn)sym(lib, "edge_window_features");
  predict_fn predict = (predict_fn)sym(lib, "edge_predict");
  int n_feat = ((count_fn)sym(lib, "edge_num_feature"))(), n_out = ((count_fn)sym(lib, "edge_num_output"))();
  size_t n_ints, n_reals, n_in;
  int64_t *ints = slurp(argv[2], &n_ints);
  double *reals = slurp(argv[3], &n_reals);
  char *text = slurp(argv[4], &n_in);
  FILE *out = fopen(argv[5], "wb");
  int stream_col = atoi(argv[6]), time_col = atoi(argv[7]), n_cols = atoi(argv[8]);
  int feat_cols[256], set_cols[64], n_fc = 0, n_sc = 0, i = 9;
  for (; i < argc && strcmp(argv[i], "--"); i++) feat_cols[n_fc++] = atoi(argv[i]);
  for (i++; i < argc; i++) set_cols[n_sc++] = atoi(argv[i]);
  void *plan = make_plan(ints, reals);
  if (!plan) { fprintf(stderr, "the kernel refused the plan\n"); return 1; }
  void **streams = calloc(1 << 20, sizeof(void *));
  double fields[512], values[256], settings[64], row_d[4096], x[256], score[256];
  float row[4096];
  size_t cap = 1 << 16, used = 0, max_windows = n_in / 16 + 1;
  char *batch = malloc(cap + 1024);
  double *lat = malloc(sizeof(double) * max_windows);
  long samples = 0, windows = 0;
  int64_t t_start = now_ns();
  for (char *line = text; *line;) {
    char *end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    int64_t t0 = now_ns();
    int nf = 0;
    for (char *p = line; p < end && nf < 512;) {
      while (p < end && (*p == ' ' || *p == ',' || *p == '\t' || *p == '\r')) p++;
      if (p >= end) break;
      fields[nf++] = strtod(p, &p);
    }
    char *next = *end ? end + 1 : end;
    if (nf != n_cols) { line = next; continue; }
    samples++;
    for (int c = 0; c < n_fc; c++) values[c] = fields[feat_cols[c]];
    for (int c = 0; c < n_sc; c++) settings[c] = fields[set_cols[c]];
    long id = (long)fields[stream_col];
    if (id < 0 || id >= (1 << 20)) { line = next; continue; }
    if (!streams[id]) streams[id] = make_stream(plan);
    double t = fields[time_col];
    if (enter(plan, streams[id], t) && push(plan, streams[id], values, settings, t, x)) {
      features(plan, streams[id], row_d);
      for (int f = 0; f < n_feat; f++) row[f] = (float)row_d[f];
      predict(row, score);
      used += (size_t)snprintf(batch + used, 1024, "{\"stream\":\"%ld\",\"t\":%.17g,\"score\":%.17g}\n", id, t,
                               score[n_out > 1 ? 0 : 0]);
      if (used >= cap) { fwrite(batch, 1, used, out); used = 0; }
      lat[windows++] = (double)(now_ns() - t0);
    }
    line = next;
  }
  fwrite(batch, 1, used, out);
  fclose(out);
  double seconds = (double)(now_ns() - t_start) / 1e9;
  char lat_path[4096];
  snprintf(lat_path, sizeof lat_path, "%s.lat", argv[5]);
  FILE *lf = fopen(lat_path, "wb");
  fwrite(lat, sizeof(double), (size_t)windows, lf);
  fclose(lf);
  printf("{\"samples\": %ld, \"windows\": %ld, \"seconds\": %.6f}\n", samples, windows, seconds);
  return 0;
}
