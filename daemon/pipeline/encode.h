/* encode.h: predictions as text (CONTRACT §5): the Kafka JSON object and the replay CSV row.
 * Hot path: no snprintf, no allocation; callers give a buffer of at least ENC_PRED_MAX bytes. */
#ifndef DAEMON_ENCODE_H
#define DAEMON_ENCODE_H

#include "daemon/pipeline/engine.h"
#include <stddef.h>

#define ENC_SRC_MAX 300  /* bytes of src in a JSON prediction, escaped */
#define ENC_PRED_MAX 640 /* sym 32 + src up to ENC_SRC_MAX + numbers (and the scale head's) */

/* {"sym":..,"ts":..,"px":..,"pred_ret":..,"pred_px":..,"n":..,"src":".."} without a newline,
 * with ,"pred_std":..,"lo_px":..,"hi_px":.. before the brace when t->has_std (a model with the
 * scale head). src is TOPIC/PARTITION/OFFSET or FILE:LINE, JSON-escaped here and cut to its
 * first ENC_SRC_MAX bytes as escaped (a file name of quotes or control bytes takes 2 or 6 a
 * byte). */
size_t enc_pred_json(char *out, const eng_tick *t, const char *src, size_t srclen);

/* The longest enc_pred_csv row: the sym, 5 numbers (8 with the scale head's) of at most 32 bytes
 * each (ingest/fmt.h; a px kept as text is shorter) and the commas. */
#define ENC_CSV_MAX(std) (TICK_SYM_MAX + 5 * 33 + ((std) ? 3 * 33 : 0))

/* sym,ts,px,pred_ret,pred_px,n without a newline; then ,pred_std,lo_px,hi_px when t->has_std. */
size_t enc_pred_csv(char *out, const eng_tick *t);

/* The CSV header line, without a newline: of a model without the scale head, and with it. */
#define ENC_CSV_HEADER "sym,ts,px,pred_ret,pred_px,n"
#define ENC_CSV_HEADER_GAUSS ENC_CSV_HEADER ",pred_std,lo_px,hi_px"

/* The header for model m. */
const char *enc_csv_header(const nn_model *m);

#endif
