/* The window kernel fused with the tree model, in a bundle's tree library (edge_window.c and
 * edge_predict.c beside it): a window's features go straight into edge_predict, one call per window. */
#include <stddef.h>
#include <stdint.h>

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

/* edge_window_step_predict over a block of samples, in order (a stream may come several times): per
 * sample its status (-1: not after the stream's last time, 0: no window, 1: a window) and preprocessed
 * values (x, n_cols each), and for a window the model's outputs (out, n_outputs each, at its row). */
void edge_window_block_predict(const void *plan, void *const *streams, const double *values, const double *settings,
                               const double *times, int n, int n_cols, int n_settings, int n_outputs, int8_t *status,
                               double *x, double *out) {
  for (int i = 0; i < n; i++)
    status[i] = (int8_t)edge_window_step_predict(plan, streams[i], values + (size_t)i * n_cols,
                                                 settings + (size_t)i * n_settings, times[i], x + (size_t)i * n_cols,
                                                 out + (size_t)i * n_outputs);
}
