/* The floor for a compiled tree stage: a plain C loop calling the bundle's
 * edge_predict() (TL2cgen's predict() behind it) once per distinct row.
 * usage: predict_loop LIB ROWS.f32 N_ROWS N_FEATURES OUT.f64
 * Writes one latency in nanoseconds per row (float64). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s LIB ROWS.f32 N_ROWS N_FEATURES OUT.f64\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  /* ABI 2 (edge_num_output present): double outputs; a binary bundle has one. */
  int (*predict)(const float *, double *) = (int (*)(const float *, double *))dlsym(lib, "edge_predict");
  long n = atol(argv[3]), nf = atol(argv[4]);
  float *rows = malloc(sizeof(float) * n * nf);
  double *lat = malloc(sizeof(double) * n);
  FILE *f = fopen(argv[2], "rb");
  if (!predict || !rows || !lat || !f || fread(rows, sizeof(float), n * nf, f) != (size_t)(n * nf)) {
    fprintf(stderr, "cannot load edge_predict or the rows\n");
    return 1;
  }
  fclose(f);
  volatile double sink = 0;
  double score[256];
  for (long r = 0; r < n; ++r) { /* warm-up: page in the code and the rows */
    predict(rows + r * nf, score);
    sink += score[0];
  }
  for (long r = 0; r < n; ++r) {
    double t0 = now_ns();
    predict(rows + r * nf, score);
    lat[r] = now_ns() - t0;
    sink += score;
  }
  FILE *out = fopen(argv[5], "wb");
  fwrite(lat, sizeof(double), n, out);
  fclose(out);
  return sink == -1.0f; /* keep the calls */
}
