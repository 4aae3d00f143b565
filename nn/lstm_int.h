/* lstm_int.h: kernels shared between lstm.c and gates.c (which is built with -O3 and CPU
 * clones); not part of the public nn API. */
#ifndef NN_LSTM_INT_H
#define NN_LSTM_INT_H

/* z (B, G) = bias (G) + x (B, 4) . wt (4, G), wt being W_ih[0] transposed. Per element in a
 * fixed order (bias + x0 w0 + x1 w1 + x2 w2 + x3 w3), so a row's result does not depend on B. */
void nn_proj4(int B, int G, const float *x, const float *wt, const float *bias, float *z);

#endif
