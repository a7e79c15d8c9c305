/* The limit for the agent's end-to-end throughput: what the agent does per sample, in plain C, on
 * the same file with the same bundle library. Parse (whitespace or comma separated numbers),
 * preprocess + window features (the bundle's window kernel), predict (the bundle's edge_predict),
 * one record line per window, written in 64 KiB batches.
 *
 *   agent_limit LIB PLAN.i64 PLAN.f64 INPUT OUTPUT STREAM_COL TIME_COL NCOLS FEATURE_COLS... -- SETTING_COLS...
 *
 * Streams are the integer ids in STREAM_COL (the C-MAPSS unit), below 1<<20. Prints one JSON object:
 * samples, windows, seconds, and the per-window nanoseconds to OUTPUT.lat as float64: from a file, line
 * start -> record formatted. INPUT tcp:PORT serves one sender on 127.0.0.1:PORT (printing "listening" once
 * it is) as the agent serves a paced sensor: each read's lines answered, their records written (one write)
 * before the next wait, and per window the agent's own figure, read returned -> its record written. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* What a run keeps: the bundle's functions, the columns, the windows, and the records on their way out. */
typedef struct {
  stream_fn make_stream;
  enter_fn enter;
  push_fn push;
  features_fn features;
  predict_fn predict;
  void *plan, **streams;
  int n_feat, n_out, stream_col, time_col, n_cols, n_fc, n_sc, feat_cols[256], set_cols[64];
  char *batch;
  size_t used;
  long samples, windows;
} run_t;

/* One line [line, end): parse, preprocess + window features, predict; its record into the batch when it
 * completes a window. Returns whether it did. */
static int serve_line(run_t *r, const char *line, const char *end) {
  double fields[512], values[256], settings[64], row_d[4096], x[256], score[256];
  float row[4096];
  int nf = 0;
  for (char *p = (char *)line; p < end && nf < 512;) {
    while (p < end && (*p == ' ' || *p == ',' || *p == '\t' || *p == '\r')) p++;
    if (p >= end) break;
    fields[nf++] = strtod(p, &p);
  }
  if (nf != r->n_cols) return 0;
  r->samples++;
  for (int c = 0; c < r->n_fc; c++) values[c] = fields[r->feat_cols[c]];
  for (int c = 0; c < r->n_sc; c++) settings[c] = fields[r->set_cols[c]];
  long id = (long)fields[r->stream_col];
  if (id < 0 || id >= (1 << 20)) return 0;
  if (!r->streams[id]) r->streams[id] = r->make_stream(r->plan);
  double t = fields[r->time_col];
  if (!(r->enter(r->plan, r->streams[id], t) && r->push(r->plan, r->streams[id], values, settings, t, x))) return 0;
  r->features(r->plan, r->streams[id], row_d);
  for (int f = 0; f < r->n_feat; f++) row[f] = (float)row_d[f];
  r->predict(row, score);
  r->used += (size_t)snprintf(r->batch + r->used, 1024, "{\"stream\":\"%ld\",\"t\":%.17g,\"score\":%.17g}\n", id,
                              t, score[0]);
  r->windows++;
  return 1;
}

static void write_batch(run_t *r, int out) {
  if (r->used && write(out, r->batch, r->used) != (ssize_t)r->used) { perror("write"); exit(1); }
  r->used = 0;
}

/* The file: its lines in turn, the records written in 64 KiB batches. */
static void serve_file(run_t *r, const char *text, int out, double *lat) {
  for (const char *line = text; *line;) {
    const char *end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    int64_t t0 = now_ns();
    if (serve_line(r, line, end)) lat[r->windows - 1] = (double)(now_ns() - t0);
    if (r->used >= (1 << 16)) write_batch(r, out);
    line = *end ? end + 1 : end;
  }
  write_batch(r, out);
}

/* One TCP sender until it closes: after each read, its complete lines answered and their records written. */
static void serve_tcp(run_t *r, int port, int out, double *lat, long max_windows) {
  int server = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(server, (struct sockaddr *)&at, sizeof at) || listen(server, 1)) { perror("listen"); exit(1); }
  printf("listening\n");
  fflush(stdout);
  int conn = accept(server, NULL, NULL);
  static char buf[1 << 17];
  size_t have = 0;
  int skipping = 0; /* inside a line longer than buf: dropped to its end, as the agent drops a too-long line */
  for (;;) {
    struct pollfd wait = {.fd = conn, .events = POLLIN};
    poll(&wait, 1, -1);
    ssize_t got = read(conn, buf + have, sizeof buf - have); /* have < sizeof buf: never a read of 0 bytes */
    int64_t arrived = now_ns();
    if (got <= 0) break;
    have += (size_t)got;
    long first = r->windows;
    char *line = buf, *end;
    while ((end = memchr(line, '\n', (size_t)(buf + have - line)))) {
      if (!skipping) serve_line(r, line, end);
      skipping = 0;
      line = end + 1;
      if (r->used >= (1 << 16)) write_batch(r, out);
    }
    have -= (size_t)(line - buf);
    memmove(buf, line, have);
    if (have == sizeof buf) { /* a full buffer and no line end */
      have = 0;
      skipping = 1;
    }
    write_batch(r, out);
    int64_t done = now_ns();
    for (long w = first; w < r->windows && w < max_windows; w++) lat[w] = (double)(done - arrived);
  }
  close(conn);
  close(server);
}

int main(int argc, char **argv) {
  if (argc < 10) { fprintf(stderr, "usage: see the source\n"); return 2; }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  run_t r = {.make_stream = (stream_fn)sym(lib, "edge_window_stream"),
             .enter = (enter_fn)sym(lib, "edge_window_enter"),
             .push = (push_fn)sym(lib, "edge_window_push"),
             .features = (features_fn)sym(lib, "edge_window_features"),
             .predict = (predict_fn)sym(lib, "edge_predict"),
             .n_feat = ((count_fn)sym(lib, "edge_num_feature"))(),
             .n_out = ((count_fn)sym(lib, "edge_num_output"))()};
  plan_fn make_plan = (plan_fn)sym(lib, "edge_window_plan");
  size_t n_ints, n_reals, n_in = 0;
  int64_t *ints = slurp(argv[2], &n_ints);
  double *reals = slurp(argv[3], &n_reals);
  int tcp = !strncmp(argv[4], "tcp:", 4);
  char *text = tcp ? NULL : slurp(argv[4], &n_in);
  r.stream_col = atoi(argv[6]), r.time_col = atoi(argv[7]), r.n_cols = atoi(argv[8]);
  int i = 9;
  for (; i < argc && strcmp(argv[i], "--"); i++) r.feat_cols[r.n_fc++] = atoi(argv[i]);
  for (i++; i < argc; i++) r.set_cols[r.n_sc++] = atoi(argv[i]);
  r.plan = make_plan(ints, reals);
  if (!r.plan) { fprintf(stderr, "the kernel refused the plan\n"); return 1; }
  r.streams = calloc(1 << 20, sizeof(void *));
  r.batch = malloc((1 << 16) + (1 << 20));
  long max_windows = tcp ? 1 << 22 : (long)(n_in / 16 + 1);
  double *lat = malloc(sizeof(double) * (size_t)max_windows);
  FILE *out = fopen(argv[5], "wb");
  if (!out) { perror(argv[5]); return 1; }
  int64_t t_start = now_ns();
  if (tcp)
    serve_tcp(&r, atoi(argv[4] + 4), fileno(out), lat, max_windows);
  else
    serve_file(&r, text, fileno(out), lat);
  fclose(out);
  double seconds = (double)(now_ns() - t_start) / 1e9;
  long kept = r.windows < max_windows ? r.windows : max_windows;
  char lat_path[4096];
  snprintf(lat_path, sizeof lat_path, "%s.lat", argv[5]);
  FILE *lf = fopen(lat_path, "wb");
  fwrite(lat, sizeof(double), (size_t)kept, lf);
  fclose(lf);
  printf("{\"samples\": %ld, \"windows\": %ld, \"seconds\": %.6f}\n", r.samples, r.windows, seconds);
  return 0;
}
