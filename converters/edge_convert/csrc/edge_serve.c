/* The window kernel fused with the tree model, in a bundle's tree library (edge_window.c and
 * edge_predict.c beside it): a window's features go straight into edge_predict, one call per window. */
#include <stddef.h>

int edge_predict(const float *row, double *out);
int edge_window_step(const void *plan, void *stream, const double *values, const double *settings, double time,
                     double *x_out);
int edge_window_n_features(const void *plan);
void edge_window_features(const void *plan, const void *stream, double *out);

int edge_window_predict(const void *plan, const void *stream, double *out) {
  int n = edge_window_n_features(plan);
  double features[n];
  float row[n];
  edge_window_features(plan, stream, features);
  for (int i = 0; i < n; i++) row[i] = (float)features[i];
  return edge_predict(row, out);
}

/* edge_window_step, and the model's output in `out` when the sample completes a window: one call a sample. */
int edge_window_step_predict(const void *plan, void *stream, const double *values, const double *settings,
                             double time, double *x_out, double *out) {
  int status = edge_window_step(plan, stream, values, settings, time, x_out);
  if (status == 1) edge_window_predict(plan, stream, out);
  return status;
}
