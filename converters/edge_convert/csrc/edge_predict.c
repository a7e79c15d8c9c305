/* edgectl's entry point over TL2cgen's generated predict(): one dense float row
 * in (NaN = missing), the model's outputs out (binary: the positive-class score;
 * multiclass: one probability per class; regression: the value), so the agent
 * makes one ctypes call per window. The types and sizes come from -D flags that
 * edge_convert derives from the generated header.h.
 * ABI 2: edge_num_output() doubles out (exactly the model's float or double
 * result); ABI 1 libraries wrote one float. */
#include <math.h>
#include <stddef.h>
#include "header.h"

#define EDGE_ABI_VERSION 2

int edge_abi_version(void) { return EDGE_ABI_VERSION; }

int edge_num_feature(void) { return EDGE_NUM_FEATURE; }

int edge_num_output(void) { return EDGE_NUM_OUTPUT; }

int edge_predict(const float *row, double *out) {
  union Entry data[EDGE_NUM_FEATURE];
  EDGE_RESULT_T result[N_TARGET * MAX_N_CLASS];
  for (int i = 0; i < N_TARGET * MAX_N_CLASS; ++i) {
    result[i] = 0; /* predict() adds into result */
  }
  for (int i = 0; i < EDGE_NUM_FEATURE; ++i) {
    if (isnan(row[i])) {
      data[i].missing = -1;
    } else {
      data[i].fvalue = (EDGE_VALUE_T)row[i];
    }
  }
  predict(data, 0, result);
  for (int k = 0; k < EDGE_NUM_OUTPUT; ++k) {
    out[k] = (double)result[EDGE_OUTPUT_OFFSET + k];
  }
  return 0;
}

void edge_predict_batch(const float *rows, int n_rows, double *out) {
  for (int r = 0; r < n_rows; ++r) {
    edge_predict(rows + (size_t)r * EDGE_NUM_FEATURE, out + (size_t)r * EDGE_NUM_OUTPUT);
  }
}
