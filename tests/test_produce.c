/* test_produce.c: daemon/kafka/produce's lent headers on the embedded broker: one header list on
 * many messages in flight, taken back in every delivery report (delivered or purged), the same
 * header on every consumed message, a second list after a swap, and a producer closed with
 * messages still queued (kprod_close_lent) without freeing a lent list. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "daemon/kafka/mockbroker.h"
#include "daemon/kafka/produce.h"

#define N 2000

/* What the delivery reports saw: reports, and lists taken back per list. */
typedef struct seen {
  int reports, failed, other;
  rd_kafka_headers_t *a, *b;
  int got_a, got_b;
} seen;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  seen *s = opaque;
  s->reports++;
  if (m->err)
    s->failed++;
  rd_kafka_headers_t *hs = kprod_hdrs_reclaim(m);
  if (hs == s->a)
    s->got_a++;
  else if (hs == s->b)
    s->got_b++;
  else
    s->other++;
}

static rd_kafka_t *producer(const char *bs, seen *s, const char *extra_k, const char *extra_v) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bs, err, sizeof err);
  rd_kafka_conf_set(c, "linger.ms", "5", err, sizeof err);
  if (extra_k)
    rd_kafka_conf_set(c, extra_k, extra_v, err, sizeof err);
  rd_kafka_conf_set_dr_msg_cb(c, on_dr);
  rd_kafka_conf_set_opaque(c, s);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!rk)
    fprintf(stderr, "producer: %s\n", err);
  return rk;
}

/* The value of header name on m, as a string (empty when absent). */
static void header_of(const rd_kafka_message_t *m, const char *name, char *out, size_t cap) {
  rd_kafka_headers_t *hs = NULL;
  const void *v = NULL;
  size_t n = 0;
  out[0] = 0;
  if (rd_kafka_message_headers(m, &hs) == 0 && rd_kafka_header_get_last(hs, name, &v, &n) == 0 &&
      n < cap) {
    memcpy(out, v, n);
    out[n] = 0;
  }
}

/* Reads topic from the start; counts messages whose tickcast.model is a or b. */
static void consume(const char *bs, const char *topic, int want, int *na, int *nb, int *nother) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", bs, err, sizeof err);
  rd_kafka_conf_set(c, "group.id", "test-produce", err, sizeof err);
  rd_kafka_conf_set(c, "auto.offset.reset", "earliest", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  *na = *nb = *nother = 0;
  for (int idle = 0; *na + *nb + *nother < want && idle < 300;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) {
      idle++; /* 30 s without a message: give up */
      continue;
    }
    if (m->err)
      fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
    if (!m->err) {
      char v[64];
      header_of(m, "tickcast.model", v, sizeof v);
      if (!strcmp(v, "model-a"))
        (*na)++;
      else if (!strcmp(v, "model-b"))
        (*nb)++;
      else
        (*nother)++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

int main(void) {
  char err[512];
  mockbroker *mb = NULL;
  if (mockbroker_start(&mb, 0, "out:4", err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  const char *bs = mockbroker_bootstraps(mb);

  /* Delivered: N messages with list a, then N with list b (a model swap), every list taken back
   * once per message, and both lists still intact afterwards (read below, freed at the end). */
  seen s = {0};
  s.a = kprod_hdrs_new("tickcast.model", "model-a", 7);
  s.b = kprod_hdrs_new("tickcast.model", "model-b", 7);
  CHECK(s.a && s.b);
  rd_kafka_t *rk = producer(bs, &s, NULL, NULL);
  CHECK(rk != NULL);
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, "out", NULL);
  int queued = 0;
  for (int i = 0; i < 2 * N; i++) {
    char v[32], k[16];
    int vl = snprintf(v, sizeof v, "{\"i\":%d}", i), kl = snprintf(k, sizeof k, "k%d", i % 50);
    queued += kprod_send_lent(rk, t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, v, (size_t)vl, k,
                              (size_t)kl, i < N ? s.a : s.b, NULL, 1000, NULL) == 0;
  }
  CHECK_INT(queued, 2 * N);
  CHECK_INT(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  CHECK_INT(s.reports, 2 * N);
  CHECK_INT(s.failed, 0);
  CHECK_INT(s.got_a, N);
  CHECK_INT(s.got_b, N);
  CHECK_INT(s.other, 0);
  CHECK_INT(kprod_close_lent(rk, 1000), 0);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  /* The lists outlived every message: still readable, one header each. */
  const void *v = NULL;
  size_t vn = 0;
  CHECK_INT(rd_kafka_header_get_last(s.a, "tickcast.model", &v, &vn), 0);
  CHECK_INT(vn, 7);
  CHECK(vn == 7 && !memcmp(v, "model-a", 7));
  CHECK_INT(rd_kafka_header_cnt(s.b), 1);

  int na, nb, nother;
  consume(bs, "out", 2 * N, &na, &nb, &nother);
  CHECK_INT(na, N);
  CHECK_INT(nb, N);
  CHECK_INT(nother, 0);

  /* Closed with messages still queued (a long linger keeps them there): purged, their reports
   * take the list back, and rd_kafka_destroy then frees no lent list (a double free aborts). */
  seen q = {0};
  q.a = s.a;
  rk = producer(bs, &q, "linger.ms", "60000");
  t = rd_kafka_topic_new(rk, "out", NULL);
  for (int i = 0; i < 100; i++)
    CHECK_INT(kprod_send_lent(rk, t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, "x", 1, "k", 1,
                              q.a, NULL, 0, NULL),
              0);
  CHECK_INT(rd_kafka_outq_len(rk), 100);
  CHECK_INT(kprod_close_lent(rk, 1000), 0);
  CHECK_INT(q.reports, 100);
  CHECK_INT(q.failed, 100);
  CHECK_INT(q.got_a, 100);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  CHECK_INT(rd_kafka_header_cnt(s.a), 1);

  /* A refused message (too large) holds nothing: the list stays the caller's. */
  seen z = {0};
  z.a = s.a;
  rk = producer(bs, &z, "message.max.bytes", "1000");
  t = rd_kafka_topic_new(rk, "out", NULL);
  static char big[4000];
  CHECK_INT(kprod_send_lent(rk, t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, big, sizeof big,
                            NULL, 0, z.a, NULL, 0, NULL),
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  CHECK_INT(kprod_close_lent(rk, 1000), 0);
  CHECK_INT(z.reports, 0);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  CHECK_INT(rd_kafka_header_cnt(s.a), 1);

  rd_kafka_headers_destroy(s.a);
  rd_kafka_headers_destroy(s.b);
  mockbroker_stop(mb);
  return check_done();
}
