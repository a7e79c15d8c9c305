/* Runs a compiled tree library on rows, on the board's architecture (under
 * qemu-user at build time): the parity check of a cross-compiled library.
 * usage: parity_main LIB ROWS.f32 N_ROWS N_FEATURES OUT.f64 (N_ROWS x edge_num_output() doubles) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s LIB ROWS.f32 N_ROWS N_FEATURES OUT.f32\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  void (*batch)(const float *, int, double *) = (void (*)(const float *, int, double *))dlsym(lib, "edge_predict_batch");
  int (*num_output)(void) = (int (*)(void))dlsym(lib, "edge_num_output");
  long n = atol(argv[3]), nf = atol(argv[4]), no = num_output ? num_output() : 1;
  float *rows = malloc(sizeof(float) * n * nf);
  double *scores = malloc(sizeof(double) * n * no);
  FILE *in = fopen(argv[2], "rb");
  if (!batch || !rows || !scores || !in || fread(rows, sizeof(float), n * nf, in) != (size_t)(n * nf)) {
    fprintf(stderr, "cannot load edge_predict_batch or the rows\n");
    return 1;
  }
  batch(rows, (int)n, scores);
  FILE *out = fopen(argv[5], "wb");
  if (!out || fwrite(scores, sizeof(double), n * no, out) != (size_t)(n * no)) {
    fprintf(stderr, "cannot write %s\n", argv[5]);
    return 1;
  }
  return fclose(out) != 0;
}
