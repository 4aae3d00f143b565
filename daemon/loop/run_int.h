/* run_int.h: what the files of the daemon's loop share (run.c and the files named below): the
 * run struct, which the one loop thread owns, the per-partition rings of offsets in flight, and
 * the functions one of these files calls in another. Not for use outside daemon/loop/: the
 * daemon's interface is run.h. */
#ifndef DAEMON_RUN_INT_H
#define DAEMON_RUN_INT_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

#include "daemon/kafka/changelog.h"
#include "daemon/kafka/mockbroker.h"
#include "daemon/loop/ckpt.h"
#include "daemon/loop/http.h"
#include "daemon/loop/run.h"
#include "daemon/pipeline/engine.h"
#include "daemon/pipeline/stats.h"
#include "nn/model.h"
#include "store/store.h"

/* Offsets of one input partition whose outputs (prediction or dead letter) are in flight, in
 * produce order. Delivery reports come back in any order across output partitions, so an input
 * offset is stored for commit only when it and everything before it were acknowledged. */
typedef struct part {
  int64_t *off;      /* (cap) input offset of ring sequence seq at off[seq & (cap - 1)] */
  uint8_t *done;     /* (cap) 1 when acknowledged */
  uint32_t cap;      /* power of two */
  uint64_t head;     /* next sequence number */
  uint64_t tail;     /* oldest unacknowledged sequence number */
  int64_t next;      /* next offset to commit (last acknowledged + 1), -1 none yet */
  int64_t pnext;     /* last processed offset + 1 (outputs possibly in flight), -1 none yet */
  uint64_t snap_seq; /* with in_snap: outputs produced when the pending snapshot was taken */
  uint8_t in_snap;   /* the pending snapshot covers this partition */
  uint8_t gen;       /* assignment generation: reports from an older assignment are ignored */
  uint8_t assigned;  /* 1 while assigned to this consumer */
  uint8_t stuck;     /* a delivery failed: offsets are no longer stored (at-least-once) */
  uint8_t dirty;     /* next advanced since the last offset store */
  uint8_t restoring; /* assigned by the group, its restore under way (librdkafka not told yet) */
  uint8_t revoking;  /* revoked by the group, waiting for its final checkpoint */
  uint8_t awaiting;  /* assigned and paused: its state is in a changelog no read could reach the
                      * end of; restore.c tries again (restore_on_await) */
  int64_t wait_hi;   /* awaiting, never committed, auto.offset.reset=latest: the input's high
                      * watermark when it began to wait (where it starts if the changelog has no
                      * state of it); -1 unknown */
  int64_t cl_base;   /* changelog base of its last marker; -1 none (the next checkpoint is full) */
  uint64_t cl_since; /* changelog messages written since that base */
  uint32_t ninst;    /* its live instruments at the last committed snapshot */
} part;

/* msg_opaque of produced messages: generation (8 bits), partition (16), sequence (40). */
#define OPQ_SEQ_BITS 40
#define OPQ_PART_MAX 65534 /* 65535 with generation 255 would collide with OPQ_NONE */
#define OPQ_NONE ((void *)(uintptr_t)UINT64_MAX) /* stats messages: not tracked */

/* How long the changelog may take to acknowledge a checkpoint's records, and then its markers
 * (the shutdown's final checkpoint gets what is left of its bound, lifecycle.c). */
#define CHANGELOG_ACK_MS 5000

typedef struct run {
  const run_opts *o;               /* the options (not owned) */
  uv_loop_t *loop;                 /* the loop (run_main's), NULL until initialised */
  rd_kafka_t *consumer, *producer; /* the input's group member; every output */
  rd_kafka_queue_t *cq, *pq;       /* consumer queue, producer main queue (io events enabled) */
  rd_kafka_topic_t *t_in;          /* consumer-side handle of the input topic, for offset_store */
  rd_kafka_topic_t *t_out, *t_stats, *t_dlq; /* producer-side handles of the outputs */
  rd_kafka_t *cl_rk;      /* reads the changelog at assignments (never joins); NULL when off */
  cl_writer *clw;         /* writes checkpoints to the changelog (own producer); NULL when off */
  int cpipe[2], ppipe[2]; /* io-event pipes: consumer, producer */
  uv_poll_t cpoll, ppoll; /* watch cpipe[0], ppipe[0] */
  uv_idle_t idle;         /* continues draining after a full chunk */
  uv_timer_t t_stats_timer, t_second, t_ckpt, t_stop; /* stats, rates, checkpoints, shutdown */
  uv_signal_t sig_term, sig_int, sig_hup;             /* stop, stop, model reload */
  http_srv *http;                                     /* --http, NULL when off */
  mockbroker *mb;              /* the embedded broker without --brokers, else NULL */
  nn_model *model;             /* the running model (owned) */
  uint64_t model_swaps;        /* models swapped in by SIGHUP so far */
  engine e;                    /* the instruments and the network */
  int chunk;                   /* messages per chunk (--chunk) */
  int chunk_backlog;           /* the same while a backlog waits (--backlog-chunk, >= chunk) */
  int backlog;                 /* a backlog waited after the last full chunk */
  rd_kafka_message_t **msgs;   /* (chunk_backlog) messages of the chunk being gathered */
  eng_tick *ticks;             /* (chunk_backlog) */
  uint64_t t_chunk;            /* monotonic ns before the first poll of the chunk being gathered */
  int n;                       /* messages gathered so far */
  part *parts;                 /* (nparts) by partition number */
  int32_t nparts;              /* entries of parts (grown by doubling) */
  int assigned;                /* partitions assigned */
  int paused;                  /* backpressure holds consumption */
  int hard_paused;             /* ... for long: the partitions are paused in librdkafka too */
  uv_timer_t t_pause;          /* turns a long pause into a partition pause */
  int64_t outq_high, outq_low; /* backpressure: pause above, resume below (queued messages) */
  int stopping;                /* shutdown begun: no more draining */
  int final_ckpt;              /* the shutdown's final checkpoint was written */
  int flush_failed;            /* a flush timed out: later ones do not wait */
  uint64_t stop_by_ms;         /* shutdown: monotonic ms (tc_mono_ns) its steps must end by */
  int cl_ack_ms;               /* changelog acks wait this long (pool thread reads it atomically) */
  int consumer_open;           /* the consumer's close did not finish: destroy must not wait */
  int closing;                 /* the producer is being closed: reports only reclaim headers */
  /* The header tickcast.model = the running model's id, one list lent to every prediction and
   * dead letter (daemon/kafka/produce.h, "Lent headers"); NULL until the first produce after a
   * model change. The lists of earlier models wait in hdrs_old until no message holds them. */
  rd_kafka_headers_t *hdrs;
  rd_kafka_headers_t **hdrs_old;   /* (cap_hdrs_old) */
  int nhdrs_old, cap_hdrs_old;     /* hdrs is made only with room here to retire it later */
  int exit_code;                   /* run_main's result once the loop ends */
  size_t in_prefix_len;            /* strlen(input topic) + 1: src = "topic/" + partition/offset */
  char src[320];                   /* src buffer, "topic/" prefix kept */
  stats st;                        /* counters for the stats topic and /metrics */
  int64_t warned_unknown_topic_ms; /* last "input topic missing" warning, wall ms */
  store *db;                       /* --state, NULL until opened */
  ckpt *ck;                        /* checkpoints into db, NULL until set up */
  int ckpt_pending;           /* a snapshot is taken and waits for its outputs' acknowledgements */
  uint64_t ckpt_taken_ms;     /* uv_now() when it was taken */
  uint64_t ckpt_acked_ms;     /* how long the last committed one waited for acknowledgements */
  uint64_t ckpt_stuck_warned; /* last failed-delivery warning, uv_now() */
  store_offset *offbuf;       /* (offcap) offsets of the next snapshot */
  cl_part *clparts;           /* (offcap) its changelog side per partition */
  int32_t offcap;             /* entries of offbuf and clparts */
  uv_idle_t ckpt_idle;        /* copies the snapshot under way a slice per loop turn */
  uint64_t ckpt_seq;          /* snapshots begun so far: the pending one's number */
  uint64_t ckpt_write_seq;    /* the number of the snapshot submitted last */
  uint64_t ckpt_done_seq;     /* the number of the last one committed */
  unsigned char ckpt_sha[32]; /* the model of the snapshot submitted last (for its records) */
  int m_cell, m_L, m_H;       /* the model's shape, which a reload keeps (for the pool thread) */
  int coop;         /* the consumer rebalances by the cooperative protocol (kconf_cooperative) */
  int offset_reset; /* the consumer's auto.offset.reset (kconf_offset_reset): 1 latest, 0
                     * earliest, -1 error */
  /* A revoke waiting for its final checkpoint (rebalance.c). */
  rd_kafka_topic_partition_list_t *rv_parts; /* the revoked partitions; NULL when none */
  int rv_coop;                               /* cooperative protocol */
  uint64_t rv_want_seq;                      /* a snapshot numbered this or later covers them */
  uint64_t rv_deadline;                      /* uv_now() after which they leave without it */
  uint64_t rv_start;                         /* uv_now() of the revoke */
  uv_timer_t t_revoke;                       /* checks the deadline */
  struct restore_job *rj;                    /* the restore under way (restore.c), NULL none */
  uv_idle_t restore_idle;                    /* puts its instruments in, a slice per turn */
  uv_timer_t t_await;                        /* restores awaiting partitions again (restore.c) */
  uint64_t await_ms;                         /* its delay: doubles while they keep waiting */
  /* An assignment that came while such a retry was on the pool: it begins after it (NULL none). */
  rd_kafka_topic_partition_list_t *assign_later;
  int assign_later_coop;
  /* Models --on-model-change keep swapped out, the latest last: their states are the running
   * model's to carry on, so restores take their changelog facts too. */
  unsigned char earlier[CL_EARLIER_MAX][32];
  int n_earlier;
  int bound;      /* the state file's binding was checked */
  int cl_checked; /* the changelog topic was checked (created when missing) */
  /* lifecycle.c and health.c: a SIGHUP reload on the thread pool, the loop's own health. */
  int reloading;            /* a model reload is on the pool */
  int reload_again;         /* a SIGHUP came meanwhile: reload once more after it */
  uv_timer_t t_stall;       /* measures how late the loop serves a short timer (stalls) */
  uint64_t stall_due_ns;    /* when t_stall should fire next (monotonic) */
  uint64_t paused_since;    /* uv_now() when draining last paused, 0 while not paused */
  uint64_t ckpt_fail_since; /* uv_now() of the first of the current run of failed checkpoints */
  int released;             /* run_release has freed what it holds */
  /* Stream threads (run --threads N > 1; crew.c). With one, crew is NULL and idx 0. */
  struct crew *crew;      /* the process's stream threads */
  int idx;                /* this one's index: 0 is the leader (see crew.c) */
  const char *state_path; /* --state, or for thread K > 0 --state.K */
  char *state_buf;        /* the storage of the latter (owned) */
  uv_async_t a_cmd;       /* another thread asks this one to stop or take a new model */
  /* Guarded by the crew's mutex: */
  stats *snap;            /* threads K > 0: their figures, published for the leader */
  char snap_why[512];     /* why it is unhealthy, "" when healthy */
  int snap_joined;        /* its consumer has joined the group */
  int alive;              /* its loop runs: a_cmd may be sent */
  int stop_asked;         /* a stop was asked of it (or it stops on its own) */
  int cmd_stop, cmd_code; /* a_cmd asks it to stop with this status */
  nn_model *cmd_model;    /* a_cmd hands it the leader's new model (a reference), or NULL */
} run;

/* ---- inflight.c: the per-partition rings of offsets in flight. part_get and part_push run once
 * per message, so they are inline here; their growth paths are not. */

/* Grows r->parts to hold partition p (0 <= p <= OPQ_PART_MAX); NULL on ENOMEM. */
part *parts_grow(run *r, int32_t p);

/* Doubles pt's ring (4096 entries the first time); 0 or TC_ENOMEM (the ring is unchanged). */
int part_ring_grow(part *pt);

/* The tracking of input partition p, grown on first use; NULL when p is out of range or on
 * ENOMEM. */
static inline part *part_get(run *r, int32_t p) {
  if (p < 0 || p > OPQ_PART_MAX)
    return NULL;
  if (p >= r->nparts)
    return parts_grow(r, p);
  return &r->parts[p];
}

/* Appends offset to the partition's ring (grows it when full: the only allocation, bounded by the
 * producer queue) and returns the opaque for the produced message, or OPQ_NONE on ENOMEM. */
static inline void *part_push(run *r, int32_t p, int64_t offset) {
  part *pt = part_get(r, p);
  if (!pt)
    return OPQ_NONE;
  if (pt->head - pt->tail >= pt->cap && part_ring_grow(pt) != 0)
    return OPQ_NONE;
  uint64_t seq = pt->head++;
  pt->pnext = offset + 1;
  pt->off[seq & (pt->cap - 1)] = offset;
  pt->done[seq & (pt->cap - 1)] = 0;
  uint64_t v = ((uint64_t)pt->gen << 56) | ((uint64_t)p << OPQ_SEQ_BITS) |
               (seq & (((uint64_t)1 << OPQ_SEQ_BITS) - 1));
  return (void *)(uintptr_t)v;
}

/* A delivery report for a tracked message (opaque from part_push; OPQ_NONE is ignored): marks it,
 * a failure makes its partition stuck, and advances the committable offset. */
void part_ack(run *r, void *opaque, int failed);

/* Stores the committable offsets of partitions that advanced (auto-commit sends them). */
void parts_store(run *r);

/* Waits (bounded) for every output in flight to be acknowledged and stores the offsets; 0, or -1
 * when some were not acknowledged in time. */
int parts_settle(run *r, int timeout_ms);

/* The producer's delivery report callback (opaque = r). */
void parts_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/* Frees every ring and the partition table. */
void parts_free(run *r);

/* The lent header list of the running model, made when missing (with room in hdrs_old to retire
 * it, so that retiring never fails); NULL when out of memory. */
rd_kafka_headers_t *parts_hdrs(run *r, const char *id);

/* The model changed: the lent header list of the old one is retired (destroyed once no message
 * holds it, by parts_hdrs_sweep or parts_hdrs_free). */
void parts_hdrs_retire(run *r);

/* Destroys the retired header lists when no message is in flight (rd_kafka_outq_len 0). */
void parts_hdrs_sweep(run *r);

/* Destroys every header list; only once the producer is destroyed (or was never created). */
void parts_hdrs_free(run *r);

/* A message of partition p at offset was skipped (already in its instrument's restored state):
 * processed, with no output. */
static inline void part_skip(run *r, int32_t p, int64_t offset) {
  part *pt = part_get(r, p);
  if (pt)
    pt->pnext = offset + 1;
  r->st.restore_skipped++;
}

/* ---- drain.c: consume, decode, one engine step, produce; backpressure. */

/* Produces one message to topic t (any partition) with a bounded wait on a full queue; a failure
 * is counted as a delivery error and acknowledges opaque as failed. flags: RD_KAFKA_MSG_F_COPY
 * or _FREE (buf is then owned here in every case). */
void drain_produce(run *r, rd_kafka_topic_t *t, int flags, void *buf, size_t len, const void *key,
                   size_t keylen, void *opaque);

/* A dead letter that will never be delivered (why: the producer's error): counted in
 * dead_letters_failed and logged; its input offset is acknowledged as done by the caller. */
void drain_dead_letter_failed(run *r, const char *why);

/* Decodes, steps and produces the chunk gathered so far (r->msgs[0..r->n)), then frees it. */
void drain_process_chunk(run *r);

/* uv callbacks: the idle handle that continues draining, and the io events of the consumer queue
 * (drain) and the producer queue (delivery reports, resume, checkpoint readiness). */
void drain_on_idle(uv_idle_t *h);
void drain_on_consumer_io(uv_poll_t *h, int status, int events);
void drain_on_producer_io(uv_poll_t *h, int status, int events);

/* ---- ckpt_sched.c: when to checkpoint (ckpt.h does the copying and writing). */

/* Takes a snapshot at this chunk boundary, to be submitted once its outputs are acknowledged. */
void sched_ckpt_try(run *r);

/* Submits the pending snapshot once its outputs are acknowledged, or gives it up. */
void sched_ckpt_ready(run *r);

/* Gives up the pending snapshot, if any (why: for the log). */
void sched_ckpt_abandon(run *r, const char *why);

/* Synchronous checkpoint at a revoke or shutdown, after the caller flushed the producer. */
int sched_ckpt_now(run *r, const char *why); /* 0: written */

/* The --checkpoint-interval timer. */
void sched_ckpt_on_timer(uv_timer_t *h);

/* After a model swap: records the new model with a checkpoint taken right away. */
void sched_ckpt_model_changed(run *r);

/* The changelog side of a checkpoint (ckpt.h's hook, on the pool thread; ud = r). */
int sched_changelog_hook(void *ud, const store_inst *rows, const uint8_t *to_cl, size_t n,
                         cl_part *parts, size_t nparts, int64_t time_ns, char *err, size_t errlen);

/* Before the engine steps the chunk r->ticks[0..N): while a snapshot is being copied a slice at a
 * time, copies first the instruments the chunk is about to change (copy on write). */
void sched_ckpt_guard(run *r, int N);

/* The checkpoint idle handle: one slice of the copy under way. */
void sched_ckpt_on_idle(uv_idle_t *h);

/* ---- rebalance.c and restore.c: partitions coming and going. Assignments and revokes are
 * asynchronous: the rebalance callback starts them and returns; librdkafka waits for the assign or
 * unassign call, which comes once the restore (pool thread) or the final checkpoint is done. */

/* The consumer's rebalance callback (opaque = r). */
void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque);

/* A checkpoint committed or failed, or the revoke timer fired: finishes a waiting revoke when a
 * checkpoint covers it or its time is up. */
void rebalance_progress(run *r);

/* Shutdown, after the final checkpoint and before the consumer closes: an assignment or revoke
 * still waiting is given to librdkafka at once. */
void rebalance_stop(run *r);

/* After the restore: assigns parts (offsets set) to the consumer and starts consuming them. */
void rebalance_assign(run *r, rd_kafka_topic_partition_list_t *parts, int coop);

/* At an assignment: restores parts (instruments from the state file and the changelog, resume
 * offsets, checks) on the thread pool, then calls rebalance_assign on the loop. A partition whose
 * state only the changelog holds, when the changelog cannot be read, is assigned paused and
 * awaiting; t_await restores it again (restore_on_await) until a read succeeds. */
void restore_begin(run *r, rd_kafka_topic_partition_list_t *parts, int coop);
void restore_on_await(uv_timer_t *h);

/* Shutdown: a restore under way gives its partitions to librdkafka unrestored (nothing is consumed
 * any more) and its result is dropped when it ends. */
void restore_stop(run *r);

/* ---- health.c: stats topic, /metrics, /healthz, /readyz. */

/* Starts the stall timer (t_stall). */
void health_start(run *r);

void health_on_stats_timer(uv_timer_t *h);
void health_on_second(uv_timer_t *h);
int health_on_http(void *ud, const char *path, char **body, size_t *len, const char **ctype);
int health_on_rdkafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque);

/* Stream threads K > 0: their figures, health and membership for the leader (crew_publish); the
 * timer does it every min(--stats-interval, 1 s). */
void health_publish(run *r);
void health_on_publish_timer(uv_timer_t *h);

/* ---- lifecycle.c: signals, model reload, shutdown. */

/* Asks the loop to stop with exit status code (from anywhere, librdkafka callbacks included). */
void lifecycle_begin_shutdown(run *r, int code);

/* SIGTERM and SIGINT stop; SIGHUP reloads the model (in every stream thread). */
void lifecycle_on_signal(uv_signal_t *h, int sig);

/* Swaps model nm (a reference the caller gives up; same shape, another id) in for the running
 * one: the engine's instruments reset or kept (--on-model-change), the header list renewed, a
 * checkpoint records it. */
void lifecycle_swap_model(run *r, nn_model *nm);

/* uv_walk callback: closes every handle not yet closing. */
void lifecycle_close_all(uv_handle_t *h, void *arg);

/* ---- run.c */

/* Frees what r holds, its struct, stats and embedded broker aside; also after a start-up that
 * stopped half-way: the loop's handles are closed (and their callbacks run) first, since the
 * checkpointer and the clients are in use until then. On the run's own thread once its loop has
 * ended (stream threads release theirs at once, in parallel, within the shutdown watchdog's
 * time), or on the main thread after a failed start. Only once. */
void run_release(run *r);

/* ---- crew.c: the stream threads of run --threads N > 1. */

typedef struct crew crew;

/* The crew of runs[0..n) (n > 1; each run's crew and idx are set): NULL on ENOMEM. */
crew *crew_new(run **runs, int n);
void crew_free(crew *c); /* after crew_join; accepts NULL */

/* Runs the loops of threads 1..n-1, each on a thread of its own (the leader's runs on the
 * caller's). 0, or 1 when a thread could not be created (the caller then stops the leader, which
 * stops the ones started). */
int crew_start(crew *c);

/* Waits for the threads started; returns the highest of their exit statuses. */
int crew_join(crew *c);

/* On r's loop before it runs: the handle other threads wake it with. */
void crew_handles(run *r);

/* r's loop is about to close its handles: no more wake-ups are sent to it. */
void crew_leave(run *r);

/* r stops with status code: every other thread is asked to stop too (once). */
void crew_stop_all(run *r, int code);

/* The shutdown's bound of r's process (monotonic ms): the earliest by_ms any thread of r's crew
 * has asked with, so that every stream thread ends its steps by the first one's bound (each
 * thread's watchdog counts from its own start, and the first to fire ends the process). by_ms
 * itself without a crew. */
uint64_t crew_stop_by(run *r, uint64_t by_ms);

/* The leader swapped model nm in: every other thread swaps it in too (each holds a reference). */
void crew_model_all(run *r, nn_model *nm);

/* The running model, loaded once and shared by the stream threads: a model with a reference
 * count. model_new: zeroed, one reference, NULL on ENOMEM; model_ref: one more; model_unref: one
 * fewer, the last frees it (nn_model_free, also of a half-loaded one); accepts NULL. */
nn_model *model_new(void);
nn_model *model_ref(nn_model *m);
void model_unref(nn_model *m);

/* Threads K > 0, every min(--stats-interval, 1 s) and at the end: their figures (stats_fill'ed),
 * health and group membership, for the leader. The latency histogram of the interval moves over (it
 * restarts). */
void crew_publish(run *r, const char *why, int joined);

/* The leader: the published figures of threads 1..n-1 merged into s (stats_merge); take: the
 * interval's histogram and longest stall move into s (for a stats message). */
void crew_merge(crew *c, stats *s, int take);

/* The first of threads 1..n-1 that is unhealthy (why: "stream thread K: ..."), or 0. */
int crew_unhealthy(crew *c, char *why, size_t len);

/* 1 when every thread 1..n-1 has joined the group. */
int crew_joined(crew *c);

/* ---- clients.c: the Kafka clients. */

/* Builds (and drops) both clients' configurations, so that a property librdkafka refuses stops
 * the start before anything else starts. 0, TC_EUSAGE with err, or TC_ENOMEM. */
int clients_check(const run_opts *o, char *err, size_t errlen);

/* Creates the consumer, producer (and changelog reader), their topic handles
 * and the io-event pipes; bootstrap overrides --brokers (the embedded broker). 0, TC_EUSAGE (bad
 * configuration, err says which) or TC_EKAFKA / TC_EIO / TC_ENOMEM with err. */
int clients_make(run *r, const char *bootstrap, char *err, size_t errlen);
/* Joins the group: after the state db was accepted, so that a start-up refused on its state
 * never becomes a group member (one that leaves no LeaveGroup stalls the group's next
 * rebalance for a session timeout). */
int clients_subscribe(run *r, char *err, size_t errlen);

/* Closes and frees what clients_make made (also half-made; the pipes' fds must be -1 or open):
 * the producer's queued messages are purged. */
void clients_destroy(run *r);

#endif
