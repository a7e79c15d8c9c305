/* edgectl's entry point over TL2cgen's generated predict(): one dense float row
 * in (NaN = missing), the positive-class score out, so the agent makes one
 * ctypes call per window. The types and sizes come from -D flags that
 * edge_convert derives from the generated header.h. */
#include <math.h>
#include <stddef.h>
#include "header.h"

#define EDGE_ABI_VERSION 1

int edge_abi_version(void) { return EDGE_ABI_VERSION; }

int edge_num_feature(void) { return EDGE_NUM_FEATURE; }

int edge_predict(const float *row, float *score) {
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
  *score = (float)result[EDGE_SCORE_INDEX];
  return 0;
}

void edge_predict_batch(const float *rows, int n_rows, float *scores) {
  for (int r = 0; r < n_rows; ++r) {
    edge_predict(rows + (size_t)r * EDGE_NUM_FEATURE, scores + r);
  }
}
