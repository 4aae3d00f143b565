/* cell.h: the recurrent cells a model can have (the LSTM of CONTRACT §3, PyTorch's GRU and its
 * Elman RNN with tanh or relu): their codes, names and sizes. Shared by the network (nn/), which
 * runs them, and the state blob (store/), which records whose state it holds. Not for the cells'
 * equations (nn/lstm.h, nn/train.h). */
#ifndef NN_BASE_CELL_H
#define NN_BASE_CELL_H

#include <string.h>

/* The codes are stored in state blobs and changelog records: never renumber them. LSTM is 0 so
 * that a zeroed struct and a blob that predates the cell byte both mean the LSTM. */
typedef enum nn_cell {
  NN_CELL_LSTM = 0,     /* CONTRACT §3 (PyTorch nn.LSTM, with optional peepholes) */
  NN_CELL_GRU = 1,      /* PyTorch nn.GRU */
  NN_CELL_RNN_TANH = 2, /* PyTorch nn.RNN, nonlinearity="tanh" */
  NN_CELL_RNN_RELU = 3, /* PyTorch nn.RNN, nonlinearity="relu" */
  NN_CELL_COUNT
} nn_cell;

/* 1 for a known cell code. */
static inline int nn_cell_valid(int cell) {
  return cell >= 0 && cell < NN_CELL_COUNT;
}

/* Gate blocks of H rows in W_ih and W_hh: 4 (i, f, g, o), 3 (r, z, n) or 1. */
static inline int nn_cell_gates(int cell) {
  return cell == NN_CELL_LSTM ? 4 : cell == NN_CELL_GRU ? 3 : 1;
}

/* Vectors of H floats of per-instrument state per layer: 2 (h, c) for the LSTM, 1 (h) else. */
static inline int nn_cell_state_vectors(int cell) {
  return cell == NN_CELL_LSTM ? 2 : 1;
}

/* The name used on the command line (--cell), in messages and in tools: "lstm", "gru",
 * "rnn_tanh", "rnn_relu"; "?" for an unknown code. */
static inline const char *nn_cell_name(int cell) {
  static const char *const names[NN_CELL_COUNT] = {"lstm", "gru", "rnn_tanh", "rnn_relu"};
  return nn_cell_valid(cell) ? names[cell] : "?";
}

/* The prefix of the cell's tensors in the model file, PyTorch's module name: "lstm", "gru" or
 * "rnn" (both RNNs; their nonlinearity is metadata). */
static inline const char *nn_cell_prefix(int cell) {
  static const char *const prefixes[NN_CELL_COUNT] = {"lstm", "gru", "rnn", "rnn"};
  return nn_cell_valid(cell) ? prefixes[cell] : "?";
}

/* Parses a cell name: nn_cell_name's, and "rnn" for rnn_tanh (PyTorch's default). Returns the
 * code or -1. */
static inline int nn_cell_parse(const char *s) {
  if (!s)
    return -1;
  if (!strcmp(s, "rnn"))
    return NN_CELL_RNN_TANH;
  for (int c = 0; c < NN_CELL_COUNT; c++)
    if (!strcmp(s, nn_cell_name(c)))
      return c;
  return -1;
}

#endif
