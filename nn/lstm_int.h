/* lstm_int.h: kernels shared between lstm.c, gates.c (built with -O3 and CPU clones) and
 * train.c; not part of the public nn API. */
#ifndef NN_LSTM_INT_H
#define NN_LSTM_INT_H

/* tanh(x) to within 3.7e-7 abs (see gates.c for the derivation and the measured bounds): the one
 * definition inference and training share, so the trainer sees the nonlinearities inference
 * uses. Plain IEEE mul, add, div and compare only, so it vectorizes and gives the same bits in
 * every clone. always_inline so that each target clone of a caller gets its own vector copy. */
static inline __attribute__((always_inline)) float nn_tanh_approx(float x) {
  const float lim = 7.90531110763549805f;
  x = x > lim ? lim : x;
  x = x < -lim ? -lim : x;
  float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

/* sigmoid(x) = 0.5 + 0.5 tanh(x / 2), within 2.0e-7 abs. */
static inline __attribute__((always_inline)) float nn_sigmoid_approx(float x) {
  return 0.5f + 0.5f * nn_tanh_approx(0.5f * x);
}

/* z (B, G) = bias (G) + x (B, 4) . wt (4, G), wt being W_ih[0] transposed. Per element in a
 * fixed order (bias + x0 w0 + x1 w1 + x2 w2 + x3 w3), so a row's result does not depend on B. */
void nn_proj4(int B, int G, const float *x, const float *wt, const float *bias, float *z);

#endif
