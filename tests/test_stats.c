/* test_stats.c: the daemon's figures (daemon/stats.c) and dead letters (daemon/dlq.c): histogram
 * buckets and quantiles against closed forms, rates over a synthetic clock, the stats JSON and the
 * Prometheus text, librdkafka statistics parsing, and dead-letter encoding edge cases. */
#include <jansson.h>
#include <stdlib.h>

#include "check.h"
#include "daemon/pipeline/dlq.h"
#include "daemon/pipeline/stats.h"

static hist h; /* big: keep it off the stack */

static void test_buckets(void) {
  uint64_t lo, hi;
  /* Exact below 2^P, continuous above, and every value inside its own bucket. */
  for (uint64_t v = 0; v < 200000; v += (v < 1000 ? 1 : 37)) {
    uint32_t i = hist_index(v);
    hist_bucket_range(i, &lo, &hi);
    if (!(lo <= v && v <= hi)) {
      CHECK(lo <= v && v <= hi);
      fprintf(stderr, "  v=%llu bucket %u [%llu, %llu]\n", (unsigned long long)v, i,
              (unsigned long long)lo, (unsigned long long)hi);
      break;
    }
  }
  for (uint32_t i = 0; i < HIST_SUB; i++)
    CHECK_INT(hist_index(i), i);
  CHECK_INT(hist_index(HIST_SUB), HIST_SUB);
  /* Adjacent buckets tile the line: hi(i) + 1 == lo(i + 1). */
  int tiled = 1;
  for (uint32_t i = 0; i + 1 < HIST_NB - 1; i++) {
    uint64_t lo2, hi2;
    hist_bucket_range(i, &lo, &hi);
    hist_bucket_range(i + 1, &lo2, &hi2);
    if (hi + 1 != lo2)
      tiled = 0;
  }
  CHECK(tiled);
  /* Relative width at most 2^-P. */
  hist_bucket_range(hist_index(1000000), &lo, &hi);
  CHECK((double)(hi - lo + 1) / (double)lo <= 1.0 / HIST_SUB);
  CHECK_INT(hist_index(UINT64_MAX), HIST_NB - 1);
  CHECK_INT(hist_index((uint64_t)1 << 50), HIST_NB - 1);
}

static void test_quantiles(void) {
  hist_reset(&h);
  CHECK_INT(hist_quantile(&h, 0.5), 0);
  /* Values 1..N: the q-quantile (nearest rank) is ceil(q N). */
  const uint64_t N = 100000;
  for (uint64_t v = 1; v <= N; v++)
    hist_record(&h, v);
  CHECK_INT(h.count, N);
  CHECK_INT(h.min, 1);
  CHECK_INT(h.max, N);
  CHECK_INT(h.sum, N * (N + 1) / 2);
  const double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
  for (int k = 0; k < 5; k++) {
    double exact = ceil(qs[k] * (double)N);
    double got = (double)hist_quantile(&h, qs[k]);
    /* Never below the true value, at most one bucket width (2^-P relative) above. */
    CHECK(got >= exact);
    CHECK_NEAR(got, exact, exact / HIST_SUB + 1);
  }
  CHECK_INT(hist_quantile(&h, 1.0), N);
  /* Small values are exact: 1..50, median rank 25. */
  hist_reset(&h);
  for (uint64_t v = 1; v <= 50; v++)
    hist_record(&h, v);
  CHECK_INT(hist_quantile(&h, 0.5), 25);
  CHECK_INT(hist_quantile(&h, 0.99), 50);
  /* Two-point distribution: 99 % at 100 us, 1 % at 10 ms (in ns). */
  hist_reset(&h);
  for (int i = 0; i < 9900; i++)
    hist_record(&h, 100000);
  for (int i = 0; i < 100; i++)
    hist_record(&h, 10000000);
  CHECK_NEAR((double)hist_quantile(&h, 0.5), 100000, 100000.0 / HIST_SUB);
  CHECK_NEAR((double)hist_quantile(&h, 0.99), 100000, 100000.0 / HIST_SUB);
  CHECK_INT(hist_quantile(&h, 0.999), 10000000); /* clamped to max */
  /* Exponential distribution with mean 1e5 ns: the q-quantile is -1e5 ln(1 - q). */
  hist_reset(&h);
  const int M = 200000;
  for (int i = 0; i < M; i++) {
    double u = (i + 0.5) / M; /* stratified, deterministic */
    hist_record(&h, (uint64_t)(-1e5 * log(1 - u)));
  }
  const double eq[] = {0.5, 0.99, 0.999};
  for (int k = 0; k < 3; k++) {
    double exact = -1e5 * log(1 - eq[k]);
    CHECK_NEAR((double)hist_quantile(&h, eq[k]), exact, exact * 1.5 / HIST_SUB + 2);
  }
}

static stats s;

static void test_rates_and_json(void) {
  stats_init(&s, 1000000);
  snprintf(s.version, sizeof s.version, "9.9.9");
  snprintf(s.model_id, sizeof s.model_id, "0123456789abcdef");
  CHECK_NEAR(stats_rate(&s, 1), 0, 0);
  /* 100 ticks per second for 90 s, then 1000 per second for 10 s. */
  for (int t = 0; t <= 100; t++) {
    stats_second(&s);
    s.ticks_in += t < 90 ? 100 : 1000;
  }
  /* The last sample saw 89*100 + 10*1000 + ... : over the last second 1000/s, over the last 60 s
   * (50 s at 100 + 10 s at 1000) / 60. */
  CHECK_NEAR(stats_rate(&s, 1), 1000, 1e-9);
  CHECK_NEAR(stats_rate(&s, 60), (50 * 100 + 10 * 1000) / 60.0, 1e-9);
  /* Short history: the rate over what there is. */
  stats_init(&s, 0);
  stats_second(&s);
  s.ticks_in = 30;
  stats_second(&s);
  s.ticks_in = 90;
  stats_second(&s);
  CHECK_NEAR(stats_rate(&s, 60), 45, 1e-9);
  CHECK_NEAR(stats_rate(&s, 1), 60, 1e-9);

  stats_init(&s, 1000);
  snprintf(s.version, sizeof s.version, "0.1.0");
  snprintf(s.model_id, sizeof s.model_id, "abcdef0123456789");
  s.ticks_in = 12;
  s.predictions_out = 10;
  s.rejected[TICK_BAD_PX] = 2;
  stats_part_assigned(&s, 0);
  stats_part_assigned(&s, 2);
  /* Partition 2: watermark 107, 100 processed, the checkpoint covers 90. Partition 0: nothing
   * known yet. */
  s.hi[2] = 107;
  s.next[2] = s.processed[2] = 100;
  stats_part_checkpointed(&s, 2, 90, 5);
  for (int i = 1; i <= 10; i++)
    stats_latency(&s, (uint64_t)i * 1000); /* 1..10 us */
  char *js = stats_json(&s, 3500, 1);
  CHECK(js != NULL);
  json_error_t jerr;
  json_t *o = json_loads(js, 0, &jerr);
  CHECK(o != NULL);
  CHECK_INT(json_integer_value(json_object_get(o, "time")), 3500);
  CHECK_NEAR(json_real_value(json_object_get(o, "uptime_s")), 2.5, 1e-12);
  CHECK_STR(json_string_value(json_object_get(o, "model")), "abcdef0123456789");
  CHECK_INT(json_integer_value(json_object_get(o, "ticks_in")), 12);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "rejected"), "bad_px")), 2);
  CHECK_INT(json_integer_value(json_object_get(json_object_get(o, "rejected"), "bad_json")), 0);
  json_t *lat = json_object_get(o, "latency_us");
  CHECK_NEAR(json_real_value(json_object_get(lat, "p50")), 5, 5.0 / HIST_SUB);
  CHECK_NEAR(json_real_value(json_object_get(lat, "max")), 10, 1e-9);
  json_t *lag = json_object_get(o, "lag"), *unck = json_object_get(o, "uncheckpointed");
  CHECK_INT(json_object_size(lag), 2);
  CHECK(json_is_null(json_object_get(lag, "0")));
  CHECK_INT(json_integer_value(json_object_get(lag, "2")), 7);
  CHECK_INT(json_object_size(unck), 2);
  CHECK_INT(json_integer_value(json_object_get(unck, "0")), 0);
  CHECK_INT(json_integer_value(json_object_get(unck, "2")), 10);
  CHECK(json_is_null(json_object_get(o, "checkpoint_age_ms")));
  CHECK(json_is_null(json_object_get(o, "cpu_s"))); /* the process figures: unknown until filled */
  CHECK(json_is_null(json_object_get(o, "rss_bytes")));
  json_decref(o);
  free(js);
  /* The interval histogram was reset: the next object has null quantiles. */
  js = stats_json(&s, 4000, 0);
  o = json_loads(js, 0, &jerr);
  CHECK(json_is_null(json_object_get(json_object_get(o, "latency_us"), "p99")));
  json_decref(o);
  free(js);

  size_t len = 0;
  char *pm = stats_prometheus(&s, 4000, &len);
  CHECK(pm != NULL && strlen(pm) == len);
  CHECK_CONTAINS(pm, "# TYPE tickcast_ticks_in_total counter\ntickcast_ticks_in_total 12\n");
  CHECK_CONTAINS(pm, "tickcast_rejected_total{reason=\"bad_px\"} 2\n");
  CHECK_CONTAINS(pm, "tickcast_partition_lag_messages{partition=\"2\"} 7\n");
  CHECK(strstr(pm, "tickcast_partition_lag_messages{partition=\"0\"}") == NULL); /* unknown */
  CHECK_CONTAINS(pm, "tickcast_partition_uncheckpointed_messages{partition=\"2\"} 10\n");
  CHECK_CONTAINS(pm, "tickcast_partition_uncheckpointed_messages{partition=\"0\"} 0\n");
  /* Cumulative buckets: 1..5 us in le=5e-06, all 10 in le=1e-05 and +Inf; sum 55 us. */
  CHECK_CONTAINS(pm, "tickcast_latency_seconds_bucket{le=\"5e-06\"} 5\n");
  CHECK_CONTAINS(pm, "tickcast_latency_seconds_bucket{le=\"1e-05\"} 10\n");
  CHECK_CONTAINS(pm, "tickcast_latency_seconds_bucket{le=\"+Inf\"} 10\n");
  CHECK_CONTAINS(pm, "tickcast_latency_seconds_sum 0.000055000\n");
  CHECK_CONTAINS(pm, "tickcast_latency_seconds_count 10\n");
  CHECK(strstr(pm, "process_") == NULL); /* unknown process figures are left out */
  free(pm);
  /* Known ones: Prometheus' standard names, types and values, unknown ones still left out. */
  s.cpu_s = 1.5;
  s.rss_bytes = 3 << 20;
  s.vm_bytes = 1 << 30;
  s.proc_start_s = 1700000000.25;
  s.open_fds = 17;
  js = stats_json(&s, 4000, 0);
  o = json_loads(js, 0, &jerr);
  CHECK_NEAR(json_real_value(json_object_get(o, "cpu_s")), 1.5, 0);
  CHECK_INT(json_integer_value(json_object_get(o, "rss_bytes")), 3 << 20);
  json_decref(o);
  free(js);
  pm = stats_prometheus(&s, 4000, &len);
  CHECK_CONTAINS(pm, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n");
  CHECK_CONTAINS(pm, "# TYPE process_resident_memory_bytes gauge\n"
                     "process_resident_memory_bytes 3145728\n");
  CHECK_CONTAINS(pm, "process_virtual_memory_bytes 1073741824\n");
  CHECK_CONTAINS(pm, "process_start_time_seconds 1700000000.25\n");
  CHECK_CONTAINS(pm, "process_open_fds 17\n");
  CHECK(strstr(pm, "process_max_fds") == NULL);
  free(pm);
}

/* Lag is the distance from the next offset to process to the high watermark, never to the last
 * checkpoint: a caught-up daemon lags by 0 however far its checkpoint is behind; before anything
 * was processed, librdkafka's statistics give the watermark and the fetch position. */
static void test_rdkafka_stats(void) {
  stats_init(&s, 0);
  stats_part_assigned(&s, 1);
  stats_part_assigned(&s, 3);
  const char *js = "{\"topics\":{\"ticks\":{\"partitions\":{"
                   "\"1\":{\"hi_offset\":500,\"next_offset\":480,\"consumer_lag\":42},"
                   "\"3\":{\"hi_offset\":-1001,\"next_offset\":-1001},"
                   "\"2\":{\"hi_offset\":9,\"next_offset\":9},\"-1\":{\"hi_offset\":-1}}},"
                   "\"other\":{\"partitions\":{\"1\":{\"hi_offset\":5}}}}}";
  CHECK_INT(stats_parse_rdkafka(&s, js, strlen(js), "ticks"), 2);
  CHECK_INT(s.rk_hi[1], 500);
  CHECK_INT(s.rk_next[1], 480);
  CHECK_INT(s.rk_hi[3], -1); /* librdkafka's "invalid" offsets are unknown */
  CHECK_INT(s.rk_hi[2], -1); /* not assigned to us */
  CHECK_INT(s.nparts, 4);
  /* Caught up: 3000 processed, the watermark 3000, the last checkpoint at 0. */
  s.hi[1] = 3000;
  s.next[1] = s.processed[1] = 3000;
  stats_part_checkpointed(&s, 1, 0, 1);
  CHECK_INT(stats_lag(&s, 1), 0);
  CHECK_INT(stats_uncheckpointed(&s, 1), 3000);
  s.hi[1] = 2990; /* a watermark older than what was processed: still 0, never negative */
  CHECK_INT(stats_lag(&s, 1), 0);
  CHECK_INT(stats_lag(&s, 3), -1);
  CHECK_INT(stats_uncheckpointed(&s, 3), 0);
  /* A new assignment forgets the partition's offsets. */
  stats_part_assigned(&s, 1);
  CHECK_INT(stats_lag(&s, 1), -1);
  CHECK_INT(stats_uncheckpointed(&s, 1), 0);
  CHECK_INT(stats_parse_rdkafka(&s, "{oops", 5, "ticks"), -1);
  CHECK_INT(stats_parse_rdkafka(&s, "{}", 2, "ticks"), 0);
}

static void test_dlq(void) {
  size_t n = 0;
  char *d = dlq_encode("bad_px", "field px: found -3, expected a finite number > 0", "ticks/3/17",
                       "AAPL", 4, 1700000000123, "{\"px\":-3}", 9, DLQ_PAYLOAD_MAX, &n);
  CHECK(d != NULL);
  CHECK_STR(d,
            "{\"reason\":\"bad_px\",\"error\":\"field px: found -3, expected a finite number "
            "> 0\",\"src\":\"ticks/3/17\",\"key\":\"AAPL\",\"time\":1700000000123,\"len\":9,"
            "\"payload\":\"{\\\"px\\\":-3}\",\"payload_encoding\":\"text\",\"truncated\":false}");
  CHECK_INT(n, strlen(d));
  free(d);
  /* Binary payload and key: base64; no key: null. */
  d = dlq_encode("bad_json", "not JSON", "t/0/1", NULL, 0, 5, "\xff\x00\x01", 3, 4096, &n);
  CHECK_CONTAINS(d, "\"key\":null");
  CHECK_CONTAINS(d, "\"payload\":\"/wAB\",\"payload_encoding\":\"base64\"");
  free(d);
  d = dlq_encode("key_mismatch", "k", "t/0/1", "\xc3\x28", 2, 5, "x", 1, 4096, &n);
  CHECK_CONTAINS(d, "\"key\":\"wyg=\",\"key_encoding\":\"base64\"");
  free(d);
  /* A long payload is cut at the bound, never inside a UTF-8 character. */
  char big[5000];
  memset(big, 'a', sizeof big);
  memcpy(big + 4094, "\xe2\x82\xac", 3); /* a euro sign straddling byte 4096 */
  d = dlq_encode("bad_json", "e", "t/0/1", NULL, 0, 5, big, sizeof big, 4096, &n);
  json_error_t jerr;
  json_t *o = json_loads(d, 0, &jerr);
  CHECK(o != NULL);
  CHECK_INT(json_string_length(json_object_get(o, "payload")), 4094);
  CHECK(json_is_true(json_object_get(o, "truncated")));
  CHECK_INT(json_integer_value(json_object_get(o, "len")), 5000);
  CHECK_STR(json_string_value(json_object_get(o, "payload_encoding")), "text");
  json_decref(o);
  free(d);
  /* Control characters and quotes are escaped, and the result is one line. */
  d = dlq_encode("bad_json", "e", "t/0/1", NULL, 0, 5, "a\n\"b\\", 5, 4096, &n);
  CHECK_CONTAINS(d, "\"payload\":\"a\\n\\\"b\\\\\"");
  CHECK(strchr(d, '\n') == NULL);
  free(d);
  /* Empty payload (a tombstone). */
  d = dlq_encode("bad_json", "empty message", "t/0/1", NULL, 0, 5, NULL, 0, 4096, &n);
  CHECK_CONTAINS(d, "\"len\":0,\"payload\":\"\"");
  free(d);
}

/* Every part of a dead letter is bounded: a 500 KB key, 170 KB of control bytes as key (six bytes
 * each once escaped), a huge error text and payload of control bytes give records of at most
 * DLQ_RECORD_MAX bytes, with the key cut to DLQ_KEY_MAX and its original length kept. */
static void test_dlq_bounds(void) {
  size_t big = 500000, n = 0;
  char *key = malloc(big), *pay = malloc(big), *errtxt = malloc(big + 1);
  memset(key, 'K', big);
  memset(pay, 1, big);
  memset(errtxt, 2, big);
  errtxt[big] = 0;
  char *d =
      dlq_encode("key_mismatch", errtxt, "ticks/0/1", key, big, 5, pay, big, DLQ_PAYLOAD_MAX, &n);
  CHECK(d != NULL && n <= DLQ_RECORD_MAX);
  json_error_t jerr;
  json_t *o = json_loads(d, 0, &jerr);
  CHECK(o != NULL);
  CHECK_INT(json_string_length(json_object_get(o, "key")), DLQ_KEY_MAX);
  CHECK(json_is_true(json_object_get(o, "key_truncated")));
  CHECK_INT(json_integer_value(json_object_get(o, "key_len")), big);
  CHECK_INT(json_string_length(json_object_get(o, "error")), DLQ_TEXT_MAX);
  json_decref(o);
  free(d);
  CHECK_INT(dlq_key_kept(key, big), DLQ_KEY_MAX);
  CHECK_INT(dlq_key_kept(key, 7), 7);
  CHECK_INT(dlq_key_kept(NULL, 0), 0);
  memset(key, 1, 170000); /* control bytes: "\u0001" each */
  d = dlq_encode("key_mismatch", "e", "ticks/0/1", key, 170000, 5, pay, big, DLQ_PAYLOAD_MAX, &n);
  CHECK(d != NULL && n <= DLQ_RECORD_MAX);
  CHECK(n > 6 * DLQ_PAYLOAD_MAX); /* the bound is tight: the escaped payload alone is 24 KB */
  free(d);
  /* A short key is kept whole, without the truncation fields. */
  d = dlq_encode("bad_px", "e", "t/0/1", "AAPL", 4, 5, "x", 1, DLQ_PAYLOAD_MAX, &n);
  CHECK(strstr(d, "key_truncated") == NULL && strstr(d, "key_len") == NULL);
  free(d);
  free(key);
  free(pay);
  free(errtxt);
}

/* Two stream threads' stats merged: the latency figures equal one thread's that saw both threads'
 * samples, counters and gauges add up, rates add by age over the seconds both have, each
 * thread's assigned partitions keep their offsets, and the renderings give the thread count. */
static void test_merge(void) {
  stats *a = malloc(sizeof *a), *b = malloc(sizeof *b), *one = malloc(sizeof *one);
  stats_init(a, 0);
  stats_init(b, 0);
  stats_init(one, 0);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 5000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t ns = x % 20000000;
    stats_latency(i % 3 ? a : b, ns);
    stats_latency(one, ns);
  }
  for (int s = 0; s < 10; s++) { /* a: 10 s at 100 ticks/s; b, started 5 s later: 50 ticks/s */
    a->ticks_in = 100 * (uint64_t)(s + 1);
    stats_second(a);
  }
  for (int s = 0; s < 5; s++) {
    b->ticks_in = 50 * (uint64_t)(s + 1);
    stats_second(b);
  }
  a->rejected[1] = 2, b->rejected[1] = 3;
  a->predictions_out = 990, b->predictions_out = 240;
  stats_part_assigned(a, 0), stats_part_assigned(a, 1), stats_part_assigned(b, 2);
  for (int i = 0; i < 7; i++)
    stats_part_in(a, 1), stats_part_in(b, 3), stats_part_in(b, 2);
  a->hi[0] = 10, a->next[0] = 7, b->hi[2] = 20, b->next[2] = 5;
  /* Partition 1 just moved from b to a: b's published figures still claim it. */
  stats_part_assigned(b, 1);
  a->hi[1] = 5, a->next[1] = 5, b->hi[1] = 99, b->next[1] = 0;
  a->instruments = 3, b->instruments = 4, a->assigned_count = 2, b->assigned_count = 1;
  a->healthy = 1, b->healthy = 0, a->checkpoint_age_ms = 200, b->checkpoint_age_ms = 500;
  a->stall_max_ns = 7, b->stall_max_ns = 9, a->stalls = 1, b->stalls = 2;
  stats_merge(a, b);
  CHECK(!memcmp(&a->lat_interval, &one->lat_interval, sizeof a->lat_interval));
  CHECK(!memcmp(a->lat_le, one->lat_le, sizeof a->lat_le));
  CHECK_INT(a->lat_count, 5000);
  CHECK_INT(a->lat_sum_ns, one->lat_sum_ns);
  CHECK_INT(a->ticks_in, 1250);
  CHECK_INT(a->predictions_out, 1230);
  CHECK_INT(a->rejected[1], 5);
  CHECK_INT(a->rate_secs, 5);
  CHECK_NEAR(stats_rate(a, 1), 150, 1e-9);
  CHECK_NEAR(stats_rate(a, 60), 150, 1e-9); /* the 4 s both spanned */
  CHECK_INT(a->nparts, 4);
  CHECK_INT(a->assigned[0] + a->assigned[1] + a->assigned[2] + a->assigned[3], 3);
  CHECK_INT(stats_lag(a, 0), 3);
  CHECK_INT(stats_lag(a, 2), 15);
  CHECK_INT(stats_lag(a, 1), 0); /* a's own, fresher figures */
  CHECK_INT(a->part_in[1], 7);
  CHECK_INT(a->part_in[3], 7);
  CHECK_INT(a->instruments, 7);
  CHECK_INT(a->assigned_count, 3);
  CHECK_INT(a->healthy, 0);
  CHECK_INT(a->checkpoint_age_ms, 500);
  CHECK_INT(a->stall_max_ns, 9);
  CHECK_INT(a->stalls, 3);
  CHECK_INT(a->threads, 2);
  stats *fresh = malloc(sizeof *fresh); /* a thread that has recorded no second yet adds none */
  stats_init(fresh, 0);
  stats_merge(a, fresh);
  CHECK_INT(a->rate_secs, 5);
  CHECK_NEAR(stats_rate(a, 1), 150, 1e-9);
  CHECK_INT(a->threads, 3);
  stats_merge(fresh, a);
  CHECK_INT(fresh->rate_secs, 5);
  CHECK_NEAR(stats_rate(fresh, 60), 150, 1e-9);
  free(fresh);
  a->threads = 2;
  char *js = stats_json(a, 1000, 0);
  json_t *o = json_loads(js, 0, NULL);
  CHECK_INT(json_integer_value(json_object_get(o, "threads")), 2);
  CHECK_INT(json_integer_value(json_object_get(o, "ticks_in")), 1250);
  json_decref(o);
  free(js);
  size_t len;
  char *prom = stats_prometheus(a, 1000, &len);
  CHECK(strstr(prom, "\ntickcast_stream_threads 2\n") != NULL);
  free(prom);
  free(a), free(b), free(one);
}

int main(void) {
  test_buckets();
  test_quantiles();
  test_rates_and_json();
  test_rdkafka_stats();
  test_dlq();
  test_dlq_bounds();
  test_merge();
  return check_done();
}
