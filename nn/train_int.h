/* train_int.h: the per-cell recurrences of the trainer, between train.c (the layer loop, head,
 * loss and the LSTM) and train_cells.c (the GRU and the RNN); not part of the public nn API. */
#ifndef NN_TRAIN_INT_H
#define NN_TRAIN_INT_H

#include "nn/train.h"

/* Forward of layer k over the T steps of the last forward pass. On entry tr->gates[k] (T*B, G)
 * holds the input side with the biases of nn_train_forward and tr->h[k] its first B rows, the
 * initial h; on return h[k] holds h after every step and gates[k] what backward needs (GRU: r, z,
 * n, with W_hn h + b_hn in tr->hn[k]; RNN: the pre-activations). */
void nn_train_gru_forward(nn_train *tr, const nn_model *m, int k);
void nn_train_rnn_forward(nn_train *tr, const nn_model *m, int k);

/* Backward of layer k: from tr->dhin (T*B, H), d loss / d h from above, fills tr->dz (T*B, G),
 * d loss / d the input side's pre-activations, and for the GRU tr->dzh (T*B, G), the recurrent
 * side's. */
void nn_train_gru_backward(nn_train *tr, const nn_model *m, int k);
void nn_train_rnn_backward(nn_train *tr, const nn_model *m, int k);

/* The recurrence's products on nn_projT (tr->wpk not NULL, see nn_train): W (G, H), a layer's
 * W_hh, packed into tr->wpk as W^T (H, G) for z (B, G) += h (B, H) . W^T (nn_train_pack_wt, then
 * nn_projT(B, G, H, h, tr->wpk, tr->ldwg, z)), or as W with padded rows for dh (B, H) += dz (B, G)
 * . W (nn_train_pack_w, then nn_projT(B, H, G, dz, tr->wpk, tr->ldwh, dh)). */
void nn_train_pack_wt(nn_train *tr, const float *W);
void nn_train_pack_w(nn_train *tr, const float *W);

/* z (B, G) += h (B, H) . W^T, W (G, H) a layer's W_hh: on nn_projT from tr->wpk (packed by
 * nn_train_pack_wt) when there is one, else sgemm from W. */
void nn_train_rec_fwd(const nn_train *tr, int B, int G, int H, const float *h, const float *W,
                      float *z);
/* dh (B, H) = dz (B, G) . W, or += with acc: on nn_projT from tr->wpk (packed by
 * nn_train_pack_w) when there is one, else sgemm from W. */
void nn_train_rec_bwd(const nn_train *tr, int B, int H, int G, const float *dz, const float *W,
                      float *dh, int acc);

#endif
