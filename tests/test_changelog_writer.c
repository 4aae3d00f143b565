/* test_changelog_writer.c: the changelog writer against the embedded broker when its idempotent
 * producer fails for good. A fatal error (here librdkafka's rd_kafka_test_fatal_error, as a
 * broker that lost the producer's sequence state would raise) makes every later put fail; the
 * writer must say so (cl_writer_fatal, and the put's error names it with librdkafka's reason)
 * so that the daemon stops and its supervisor starts a process with a new producer, instead of
 * retrying checkpoints that cannot succeed while predictions go on uncovered. A put before the
 * error succeeds and writes its records and marker (read back with cl_read). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "daemon/kafka/changelog.h"
#include "daemon/kafka/mockbroker.h"
#include "nn/base/tc_err.h"

enum { N = 8, P = 2, H = 4 };

static rd_kafka_conf_t *conf_of(const char *bootstrap, const char *group) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char e[256];
  rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e);
  rd_kafka_conf_set(c, "log_level", "0", e, sizeof e);
  if (group)
    rd_kafka_conf_set(c, "group.id", group, e, sizeof e);
  return c;
}

/* One full checkpoint of the N instruments at offset next; returns cl_writer_put's status. */
static int put(cl_writer *w, const unsigned char sha[32], int64_t next, char *err, size_t errlen) {
  size_t sf = store_blob_floats(NN_CELL_GRU, 1, H);
  float *st = calloc((size_t)N * sf, sizeof *st);
  store_inst in[N];
  char sym[N][8];
  memset(in, 0, sizeof in);
  for (int i = 0; i < N; i++) {
    in[i].sym_len = (size_t)snprintf(sym[i], sizeof sym[i], "S%d", i);
    in[i].sym = sym[i];
    in[i].partition = i % P;
    in[i].state = st + (size_t)i * sf;
    in[i].n = (uint64_t)next;
    in[i].next_offset = next;
    st[(size_t)i * sf] = (float)i;
  }
  cl_part parts[P];
  for (int q = 0; q < P; q++)
    parts[q] = (cl_part){.part = q, .next = next, .instruments = N / P, .base = -1};
  err[0] = 0;
  int rc = cl_writer_put(w, sha, NN_CELL_GRU, 1, H, in, NULL, N, parts, P, 0, 10000, err, errlen);
  free(st);
  return rc;
}

int main(void) {
  char err[512];
  mockbroker *mb = NULL;
  if (mockbroker_start(&mb, 0, "state:2", err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const char *bs = mockbroker_bootstraps(mb);
  unsigned char sha[32];
  for (int i = 0; i < 32; i++)
    sha[i] = (unsigned char)(i * 5 + 3);

  cl_writer *w = NULL;
  CHECK_INT(cl_writer_new(&w, conf_of(bs, NULL), "state", err, sizeof err), 0);
  CHECK_INT(cl_writer_fatal(w, NULL, 0), 0);
  CHECK_INT(put(w, sha, 5, err, sizeof err), 0);
  CHECK_INT(cl_writer_fatal(w, NULL, 0), 0);

  /* What the first put wrote: every instrument at offset 5, a marker per partition. */
  rd_kafka_conf_t *rc = conf_of(bs, "test-reader");
  char e[256];
  rd_kafka_conf_set(rc, "enable.auto.commit", "false", e, sizeof e);
  rd_kafka_conf_set(rc, "enable.partition.eof", "true", e, sizeof e);
  rd_kafka_conf_set(rc, "auto.offset.reset", "earliest", e, sizeof e);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, e, sizeof e);
  CHECK(rk != NULL);
  int32_t ps[P] = {0, 1};
  cl_restore *r = NULL;
  CHECK_INT(cl_restore_new(&r, NN_CELL_GRU, 1, H, sha, ps, P), 0);
  int64_t lows[P];
  int ncl = 0;
  CHECK_INT(cl_read(rk, "state", r, ps, P, lows, P, &ncl, 10000, NULL, err, sizeof err), 0);
  CHECK_INT(ncl, P);
  for (int q = 0; q < P; q++) {
    int from_cl = 0;
    cl_marker m;
    CHECK_INT(cl_restore_resume(r, q, lows[q], &from_cl, &m), 5);
    CHECK_INT(from_cl, 1);
  }
  CHECK_INT(cl_restore_table(r)->live, N);
  cl_restore_free(r);
  rd_kafka_destroy(rk);

  /* The producer fails for good: the next puts fail and say why. */
  CHECK_INT(rd_kafka_test_fatal_error(cl_writer_handle(w),
                                      RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "sequence state lost (test)"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  char why[256] = "";
  CHECK_INT(cl_writer_fatal(w, why, sizeof why), 1);
  CHECK(strstr(why, "sequence state lost (test)") != NULL);
  for (int k = 0; k < 2; k++) {
    CHECK_INT(put(w, sha, 9 + k, err, sizeof err), TC_EKAFKA);
    CHECK(strstr(err, "changelog state: the writer's producer failed for good") == err);
    CHECK(strstr(err, "sequence state lost (test)") != NULL);
    if (!strstr(err, "failed for good"))
      fprintf(stderr, "put after the fatal error: %s\n", err);
  }
  cl_writer_destroy(w);
  mockbroker_stop(mb);
  return check_done();
}
