/* store.c: the state database on SQLite: open with checks and forward migrations, the state blob
 * codec, checkpoint writes in one transaction with prepared statements, and loads.
 * Not for policy (when to checkpoint, what a model change means): see daemon/ckpt.c. */
#include "store/store.h"

#include "nn/base/le.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "nn/base/tc_err.h"

#define BLOB_MAGIC "TCST"
#define BLOB_VERSION 2       /* written without a tracker; 1 is read too (store.h) */
#define BLOB_VERSION_TRACK 3 /* written with one */

/* Forward migrations: migrations[v] takes schema version v to v + 1. Each runs inside the one
 * transaction that also sets user_version, so a crash mid-migration leaves the old version. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE meta ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  model_sha256 TEXT NOT NULL DEFAULT '',"
    "  features TEXT NOT NULL DEFAULT '',"
    "  layers INTEGER NOT NULL DEFAULT 0,"
    "  hidden INTEGER NOT NULL DEFAULT 0,"
    "  ckpt_time_ns INTEGER NOT NULL DEFAULT 0,"
    "  ckpts INTEGER NOT NULL DEFAULT 0,"
    "  app TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE offsets ("
    "  topic TEXT NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  next_offset INTEGER NOT NULL,"
    "  PRIMARY KEY (topic, partition)) WITHOUT ROWID;"
    "CREATE TABLE instruments ("
    "  sym TEXT PRIMARY KEY NOT NULL,"
    "  partition INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  last_ts INTEGER NOT NULL,"
    "  last_px REAL NOT NULL,"
    "  state BLOB NOT NULL);",
    /* 1 -> 2: per-instrument offsets (a restored state may be ahead of its partition's offset),
     * the file's binding to a Kafka cluster and input topic, restores by partition, the cell of
     * the bound model (nn/base/cell.h; the schema 1 files are an LSTM's, 0). */
    "ALTER TABLE instruments ADD COLUMN next_offset INTEGER;"
    "ALTER TABLE meta ADD COLUMN cluster_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE meta ADD COLUMN input_topic TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE meta ADD COLUMN cell INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX instruments_partition ON instruments (partition);",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* The prepared statements, made once at open. */
enum {
  Q_BEGIN,
  Q_COMMIT,
  Q_ROLLBACK,
  Q_INST_UPSERT,
  Q_INST_DELETE,
  Q_INST_CLEAR,
  Q_OFF_UPSERT,
  Q_OFF_CLEAR,
  Q_META_CKPT,
  Q_META_SET,
  Q_META_GET,
  Q_INST_ALL,
  Q_INST_TOP,
  Q_INST_COUNT,
  Q_OFF_ALL,
  Q_INST_PART,
  Q_BIND_SET,
  Q_INST_DEL_PART,
  Q_OFF_DEL,
  Q_N
};

static const char *const q_sql[Q_N] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_INST_UPSERT] = "INSERT INTO instruments (sym, partition, n, last_ts, last_px, state, "
                      "next_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (sym) DO "
                      "UPDATE SET partition = ?2, n = ?3, last_ts = ?4, last_px = ?5, state = ?6, "
                      "next_offset = ?7",
    [Q_INST_DELETE] = "DELETE FROM instruments WHERE sym = ?1",
    [Q_INST_CLEAR] = "DELETE FROM instruments",
    [Q_OFF_UPSERT] = "INSERT INTO offsets (topic, partition, next_offset) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = ?3",
    [Q_OFF_CLEAR] = "DELETE FROM offsets",
    [Q_META_CKPT] = "INSERT INTO meta (id, model_sha256, ckpt_time_ns, ckpts) "
                    "VALUES (1, coalesce(?1, ''), ?2, 1) ON CONFLICT (id) DO UPDATE SET "
                    "model_sha256 = coalesce(?1, model_sha256), ckpt_time_ns = ?2, "
                    "ckpts = ckpts + 1",
    [Q_META_SET] = "INSERT INTO meta (id, model_sha256, features, layers, hidden, ckpt_time_ns, "
                   "ckpts, app, cell) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) "
                   "DO UPDATE SET model_sha256 = ?1, features = ?2, layers = ?3, hidden = ?4, "
                   "ckpt_time_ns = ?5, ckpts = ?6, app = ?7, cell = ?8",
    [Q_META_GET] = "SELECT model_sha256, features, layers, hidden, ckpt_time_ns, ckpts, app, "
                   "cluster_id, input_topic, cell FROM meta WHERE id = 1",
    [Q_INST_ALL] = "SELECT sym, partition, n, last_ts, last_px, state, next_offset FROM "
                   "instruments",
    [Q_INST_TOP] = "SELECT sym, partition, n, last_ts, last_px FROM instruments "
                   "ORDER BY n DESC, sym LIMIT ?1",
    [Q_INST_COUNT] = "SELECT count(*) FROM instruments",
    [Q_OFF_ALL] = "SELECT topic, partition, next_offset FROM offsets ORDER BY topic, partition",
    [Q_INST_PART] = "SELECT sym, partition, n, last_ts, last_px, state, next_offset FROM "
                    "instruments WHERE partition = ?1",
    [Q_BIND_SET] = "UPDATE meta SET cluster_id = ?1, input_topic = ?2 WHERE id = 1",
    [Q_INST_DEL_PART] = "DELETE FROM instruments WHERE partition = ?1",
    [Q_OFF_DEL] = "DELETE FROM offsets WHERE topic = ?1 AND partition = ?2",
};

struct store {
  sqlite3 *db;   /* the connection, NULL after a heal that could not reopen it */
  char *path;    /* as opened, for messages */
  int readonly;  /* opened with STORE_OPEN_READONLY */
  int sync_mode; /* STORE_SYNC_*, for reopening */
  int lockfd;    /* the file, flock()ed by a writer so a second writer is refused */
  dev_t dev;     /* device and inode of the file a writer opened (store_path_check) */
  ino_t ino;
  _Atomic uint64_t heals;  /* times store_path_check healed the file */
  pthread_mutex_t heal_mu; /* guards heal_msg */
  char heal_msg[512];      /* what the last heal did */
  sqlite3_stmt *q[Q_N];    /* prepared statements (NULL for writes when read-only) */
  unsigned char *blob;     /* (blob_cap) scratch for encoding one state blob */
  size_t blob_cap;
  float *fbuf; /* (fcap) scratch for decoding one state */
  size_t fcap;
};

/* ---- errors ---- */

static int map_rc(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK: return 0;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return TC_EBUSY;
  case SQLITE_FULL:
  case SQLITE_READONLY:
  case SQLITE_IOERR:
  case SQLITE_CANTOPEN:
  case SQLITE_PERM: return TC_EIO;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return TC_EFORMAT;
  case SQLITE_NOMEM: return TC_ENOMEM;
  default: return TC_ESTORE;
  }
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Writes "state db PATH: WHAT: sqlite's message (code)" and returns the TC_E* code for rc. */
static int db_fail(const store *st, int rc, const char *what, char *err, size_t errlen) {
  const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
  int code = map_rc(rc);
  const char *hint =
      code == TC_EBUSY ? "; another process holds the database lock, retry later" : "";
  set_err(err, errlen, "state db %s: %s: %s (sqlite code %d)%s", st->path, what, msg, rc, hint);
  return code ? code : TC_ESTORE;
}

/* ---- blob codec ---- */

/* Floats as little-endian bytes: a plain copy on little-endian hosts. */
static void floats_to_le(unsigned char *dst, const float *src, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * sizeof(float));
#else
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    le_put_u32(dst + 4 * i, u);
  }
#endif
}
static void floats_from_le(float *dst, const unsigned char *src, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * sizeof(float));
#else
  for (size_t i = 0; i < n; i++) {
    uint32_t u = le_get_u32(src + 4 * i);
    memcpy(&dst[i], &u, 4);
  }
#endif
}

size_t store_blob_floats(int cell, int L, int H) {
  return (size_t)nn_cell_state_vectors(cell) * L * H;
}

size_t store_blob_len(int cell, int L, int H) {
  return STORE_BLOB_HEADER + 4 * store_blob_floats(cell, L, H) + STORE_BLOB_TRAILER;
}

size_t store_blob_encode(unsigned char *buf, int cell, int L, int H, const float *state,
                         const double *track) {
  size_t nf = store_blob_floats(cell, L, H);
  memcpy(buf, BLOB_MAGIC, 4);
  le_put_u16(buf + 4, track ? BLOB_VERSION_TRACK : BLOB_VERSION);
  buf[6] = (unsigned char)cell;
  buf[7] = (unsigned char)L;
  le_put_u32(buf + 8, (uint32_t)H);
  le_put_u32(buf + 12, (uint32_t)nf);
  floats_to_le(buf + STORE_BLOB_HEADER, state, nf);
  size_t body = STORE_BLOB_HEADER + 4 * nf;
  for (int i = 0; track && i < STORE_BLOB_TRACK; i++, body += 8) {
    uint64_t u;
    memcpy(&u, &track[i], 8);
    le_put_u64(buf + body, u);
  }
  le_put_u64(buf + body, XXH64(buf, body, 0));
  return body + STORE_BLOB_TRAILER;
}

/* The version, cell and L of a blob's header (len >= STORE_BLOB_HEADER, magic checked): version
 * 1 has a u16 L and is an LSTM's. Returns the version. */
static unsigned blob_head(const unsigned char *buf, int *cell, unsigned *L) {
  unsigned v = le_get_u16(buf + 4);
  *cell = v == 1 ? NN_CELL_LSTM : buf[6];
  *L = v == 1 ? le_get_u16(buf + 6) : buf[7];
  return v;
}

int store_blob_cell(const unsigned char *buf, size_t len) {
  if (len < STORE_BLOB_HEADER + STORE_BLOB_TRAILER || memcmp(buf, BLOB_MAGIC, 4) != 0)
    return -1;
  int cell;
  unsigned L, v = blob_head(buf, &cell, &L);
  return (v == 1 || v == BLOB_VERSION || v == BLOB_VERSION_TRACK) && nn_cell_valid(cell) ? cell
                                                                                         : -1;
}

int store_blob_decode(const unsigned char *buf, size_t len, int cell, int L, int H, float *state,
                      double *track, int *has_track, char *err, size_t errlen) {
  *has_track = 0;
  if (len < STORE_BLOB_HEADER + STORE_BLOB_TRAILER) {
    set_err(err, errlen, "state blob is %zu bytes, expected at least %d", len,
            STORE_BLOB_HEADER + STORE_BLOB_TRAILER);
    return TC_EFORMAT;
  }
  if (memcmp(buf, BLOB_MAGIC, 4) != 0) {
    set_err(err, errlen, "state blob magic is %02x%02x%02x%02x, expected \"%s\"", buf[0], buf[1],
            buf[2], buf[3], BLOB_MAGIC);
    return TC_EFORMAT;
  }
  int bc;
  unsigned bl, v = blob_head(buf, &bc, &bl), bh = le_get_u32(buf + 8), bn = le_get_u32(buf + 12);
  if (v != 1 && v != BLOB_VERSION && v != BLOB_VERSION_TRACK) {
    set_err(err, errlen, "state blob version is %u, expected 1, %d or %d", v, BLOB_VERSION,
            BLOB_VERSION_TRACK);
    return TC_EFORMAT;
  }
  size_t want_len =
      store_blob_len(cell, L, H) + (v == BLOB_VERSION_TRACK ? STORE_BLOB_TRACK_LEN : 0);
  if (!nn_cell_valid(bc)) {
    set_err(err, errlen, "state blob cell is %d, expected 0..%d (nn/base/cell.h)", bc,
            NN_CELL_COUNT - 1);
    return TC_EFORMAT;
  }
  if (bc != cell) {
    set_err(err, errlen,
            "state blob holds the state of a%s %s (L=%u H=%u), but the model is a%s %s (L=%d "
            "H=%d): a state is never restored into another cell",
            bc == NN_CELL_LSTM ? "n" : "", nn_cell_name(bc), bl, bh,
            cell == NN_CELL_LSTM ? "n" : "", nn_cell_name(cell), L, H);
    return TC_EMODEL;
  }
  if ((int)bl != L || (int64_t)bh != H) {
    set_err(err, errlen, "state blob has L=%u H=%u, expected L=%d H=%d (the model's shape)", bl, bh,
            L, H);
    return TC_EFORMAT;
  }
  if ((size_t)bn != store_blob_floats(cell, L, H)) {
    set_err(err, errlen, "state blob holds %u floats, expected %zu (L x %d x H)", bn,
            store_blob_floats(cell, L, H), nn_cell_state_vectors(cell));
    return TC_EFORMAT;
  }
  if (len != want_len) {
    set_err(err, errlen, "state blob is %zu bytes, expected %zu (version %u)", len, want_len, v);
    return TC_EFORMAT;
  }
  size_t body = len - STORE_BLOB_TRAILER;
  uint64_t want = le_get_u64(buf + body), got = XXH64(buf, body, 0);
  if (want != got) {
    set_err(err, errlen,
            "state blob checksum is %016" PRIx64 ", computed %016" PRIx64 " (corrupted)", want,
            got);
    return TC_EFORMAT;
  }
  if (v == BLOB_VERSION_TRACK) {
    double t[STORE_BLOB_TRACK];
    for (int i = 0; i < STORE_BLOB_TRACK; i++) {
      uint64_t u = le_get_u64(buf + STORE_BLOB_HEADER + 4 * (size_t)bn + 8 * (size_t)i);
      memcpy(&t[i], &u, 8);
    }
    if (!(t[0] >= 0 && isfinite(t[0]) && isfinite(t[1]) && isfinite(t[2]))) {
      set_err(err, errlen,
              "state blob's interval tracker is z %g, lo %g, hi %g, expected finite "
              "values and z >= 0",
              t[0], t[1], t[2]);
      return TC_EFORMAT;
    }
    memcpy(track, t, sizeof t);
    *has_track = 1;
  }
  floats_from_le(state, buf + STORE_BLOB_HEADER, bn);
  return 0;
}

/* ---- open, migrate, close ---- */

int store_sync_parse(const char *s) {
  if (!s)
    return -1;
  if (!strcmp(s, "normal"))
    return STORE_SYNC_NORMAL;
  if (!strcmp(s, "full"))
    return STORE_SYNC_FULL;
  return -1;
}

/* Runs one statement that returns at most one integer (a PRAGMA); *v = 0 when it returns none. */
static int exec_int(store *st, const char *sql, int64_t *v) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_step(s);
  if (v)
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    rc = SQLITE_OK;
  sqlite3_finalize(s);
  return rc;
}

/* PRAGMA quick_check: collects the first problem into msg ("" when ok). */
static int quick_check(store *st, char *msg, size_t msglen) {
  sqlite3_stmt *s = NULL;
  msg[0] = 0;
  int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check(5)", -1, &s, NULL);
  if (rc != SQLITE_OK)
    return rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *r = (const char *)sqlite3_column_text(s, 0);
    if (r && strcmp(r, "ok") != 0 && !msg[0])
      snprintf(msg, msglen, "%s", r);
  }
  sqlite3_finalize(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Lists up to a few user tables of the file into buf, for the "foreign file" message. */
static int list_tables(store *st, char *buf, size_t len, int64_t *count) {
  sqlite3_stmt *s = NULL;
  buf[0] = 0;
  *count = 0;
  int rc = sqlite3_prepare_v2(st->db,
                              "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                              "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                              -1, &s, NULL);
  if (rc != SQLITE_OK)
    return rc;
  size_t used = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(s, 0);
    if (*count < 5 && used < len) {
      int w = snprintf(buf + used, len - used, "%s%s", *count ? ", " : "", name ? name : "?");
      used += w > 0 ? (size_t)w : 0;
    }
    ++*count;
  }
  sqlite3_finalize(s);
  if (*count > 5 && used < len)
    snprintf(buf + used, len - used, ", ...");
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Brings a fresh or older file to STORE_SCHEMA_VERSION in one transaction. */
static int migrate(store *st, int fresh, char *err, size_t errlen) {
  /* A state blob is ~0.5 KB per instrument at H = 64; 16 KB pages cut the per-page work of a big
   * checkpoint (measured ~40% less CPU per instrument than 4 KB). Only a new file can take it. */
  if (fresh)
    sqlite3_exec(st->db, "PRAGMA page_size = 16384", NULL, NULL, NULL);
  int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return db_fail(st, rc, "starting the schema migration", err, errlen);
  int64_t ver = 0;
  /* Re-read under the write lock: another process may have migrated meanwhile. */
  rc = exec_int(st, "PRAGMA user_version", &ver);
  for (int64_t v = ver; rc == SQLITE_OK && v < STORE_SCHEMA_VERSION; v++)
    rc = sqlite3_exec(st->db, migrations[v], NULL, NULL, NULL);
  if (rc == SQLITE_OK) {
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d", STORE_APP_ID,
             STORE_SCHEMA_VERSION);
    rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    int code = db_fail(st, rc, "migrating the schema", err, errlen);
    if (!sqlite3_get_autocommit(st->db))
      sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return code;
  }
  return 0;
}

/* Checks what the file is and brings it to the current schema; refuses anything not ours. */
static int check_and_migrate(store *st, int fresh_ok, char *err, size_t errlen) {
  char msg[256];
  int rc = quick_check(st, msg, sizeof msg);
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) == SQLITE_NOTADB) {
      set_err(err, errlen,
              "state db %s: not a SQLite database (%s); expected a tickcast state file, refusing "
              "to touch it",
              st->path, sqlite3_errmsg(st->db));
      return TC_EFORMAT;
    }
    if ((rc & 0xff) == SQLITE_CORRUPT) {
      set_err(err, errlen,
              "state db %s: corrupt or truncated (%s); expected an intact tickcast state file, "
              "refusing to touch it (restore a backup or start with another --state file)",
              st->path, sqlite3_errmsg(st->db));
      return TC_EFORMAT;
    }
    return db_fail(st, rc, "checking the file (quick_check)", err, errlen);
  }
  if (msg[0]) {
    set_err(err, errlen,
            "state db %s: corrupt or truncated (quick_check: %s); expected an intact tickcast "
            "state file, refusing to touch it (restore a backup or start with another --state "
            "file)",
            st->path, msg);
    return TC_EFORMAT;
  }
  int64_t app = 0, ver = 0, ntab = 0;
  char tables[160];
  if ((rc = exec_int(st, "PRAGMA application_id", &app)) != SQLITE_OK ||
      (rc = exec_int(st, "PRAGMA user_version", &ver)) != SQLITE_OK ||
      (rc = list_tables(st, tables, sizeof tables, &ntab)) != SQLITE_OK)
    return db_fail(st, rc, "reading the schema", err, errlen);
  int fresh = app == 0 && ver == 0 && ntab == 0;
  if (!fresh && app != STORE_APP_ID) {
    set_err(err, errlen,
            "state db %s: not a tickcast state file (SQLite application_id 0x%08" PRIx32
            ", expected 0x%08x; tables: %s); refusing to touch it",
            st->path, (uint32_t)app, STORE_APP_ID, ntab ? tables : "none");
    return TC_EFORMAT;
  }
  if (ver > STORE_SCHEMA_VERSION) {
    set_err(err, errlen,
            "state db %s: schema version %" PRId64
            " is newer than this tickcast supports (%d); use a newer tickcast",
            st->path, ver, STORE_SCHEMA_VERSION);
    return TC_EFORMAT;
  }
  if (ver == STORE_SCHEMA_VERSION)
    return 0;
  if (st->readonly || !fresh_ok) {
    if (fresh)
      set_err(err, errlen, "state db %s: empty file, expected a tickcast state file", st->path);
    else
      set_err(err, errlen,
              "state db %s: schema version %" PRId64 " needs migrating to %d, which a read-only "
              "open cannot do; open it once with `tickcast run`",
              st->path, ver, STORE_SCHEMA_VERSION);
    return TC_EFORMAT;
  }
  return migrate(st, fresh, err, errlen);
}

void store_set_busy_timeout(store *st, int ms) {
  if (st)
    sqlite3_busy_timeout(st->db, ms);
}

const char *store_path(const store *st) {
  return st ? st->path : "";
}

struct sqlite3 *store_handle(store *st) {
  return st ? st->db : NULL;
}

/* Takes the one-writer lock on the file at the path (creating it 0600 when absent) and records
 * its device and inode. One writer per file: two daemons checkpointing into one file would each
 * record offsets and states the other does not know about. flock() locks are separate from the
 * POSIX locks SQLite uses, so this does not interfere with SQLite's own locking; readers
 * (inspect) do not take it. SQLite creates the -wal and -shm with the database file's mode. */
static int lock_path(store *st, char *err, size_t errlen) {
  int fd = open(st->path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_err(err, errlen, "state db %s: %s", st->path, strerror(errno));
    return errno == ENOENT ? TC_ENOENT : TC_EIO;
  }
  struct stat sb;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &sb) != 0) {
    set_err(err, errlen,
            "state db %s: in use by another process (another tickcast run holds it); two "
            "daemons must not share a state file",
            st->path);
    close(fd);
    return TC_EBUSY;
  }
  if (st->lockfd >= 0)
    close(st->lockfd);
  st->lockfd = fd;
  st->dev = sb.st_dev;
  st->ino = sb.st_ino;
  return 0;
}

/* Opens the SQLite connection at st->path: checks and migrates the file, WAL mode for a writer,
 * the prepared statements. */
static int db_connect(store *st, char *err, size_t errlen) {
  int flags = (st->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
              SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(st->path, &st->db, flags, NULL), code;
  if (rc != SQLITE_OK)
    return db_fail(st, rc, "opening", err, errlen);
  sqlite3_extended_result_codes(st->db, 1);
  sqlite3_busy_timeout(st->db, 200);
  if ((code = check_and_migrate(st, 1, err, errlen)) != 0)
    return code;
  if (!st->readonly) {
    /* WAL: readers (inspect) never block the writer, and a commit is one append. With
     * synchronous=NORMAL a commit survives a process crash (kill -9); FULL also survives power
     * loss. The WAL is truncated back to 64 MB after a checkpoint so it cannot grow forever. */
    char sql[160];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
             "PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384",
             st->sync_mode == STORE_SYNC_FULL ? "FULL" : "NORMAL");
    if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
      return db_fail(st, rc, "setting WAL mode", err, errlen);
  }
  for (int i = 0; i < Q_N; i++) {
    rc = sqlite3_prepare_v3(st->db, q_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->q[i], NULL);
    if (rc == SQLITE_ERROR) { /* a table or column of the schema is missing */
      set_err(err, errlen,
              "state db %s: the schema lacks what version %d has: %s (a damaged file, or "
              "another tool's)",
              st->path, STORE_SCHEMA_VERSION, sqlite3_errmsg(st->db));
      return TC_EFORMAT;
    }
    if (rc != SQLITE_OK)
      return db_fail(st, rc, "preparing statements", err, errlen);
  }
  return 0;
}

/* Closes the connection and its statements (not the lock). */
static void db_disconnect(store *st) {
  for (int i = 0; i < Q_N; i++) {
    sqlite3_finalize(st->q[i]);
    st->q[i] = NULL;
  }
  sqlite3_close(st->db);
  st->db = NULL;
}

int store_open(const char *path, int sync_mode, int mode, store **out, char *err, size_t errlen) {
  *out = NULL;
  if (sync_mode != STORE_SYNC_NORMAL && sync_mode != STORE_SYNC_FULL) {
    set_err(err, errlen, "state db %s: sync mode %d, expected normal or full", path, sync_mode);
    return TC_EINVAL;
  }
  store *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    set_err(err, errlen, "state db %s: out of memory", path);
    return TC_ENOMEM;
  }
  pthread_mutex_init(&st->heal_mu, NULL);
  st->readonly = mode == STORE_OPEN_READONLY;
  st->sync_mode = sync_mode;
  st->lockfd = -1;
  int code;
  struct stat sb;
  if (st->readonly && stat(path, &sb) != 0) {
    set_err(err, errlen, "state db %s: %s", path, strerror(errno));
    code = errno == ENOENT ? TC_ENOENT : TC_EIO;
    goto fail;
  }
  if ((!st->readonly && (code = lock_path(st, err, errlen)) != 0) ||
      (code = db_connect(st, err, errlen)) != 0)
    goto fail;
  *out = st;
  return 0;
fail:
  store_close(st);
  return code;
}

void store_close(store *st) {
  if (!st)
    return;
  db_disconnect(st);
  if (st->lockfd >= 0)
    close(st->lockfd); /* after SQLite has closed its own descriptors */
  pthread_mutex_destroy(&st->heal_mu);
  free(st->blob);
  free(st->fbuf);
  free(st->path);
  free(st);
}

/* ---- a state file deleted or replaced under the writer ---- */

/* Copies the open database into a new file tmp (created 0600) with SQLite's backup: the copy is
 * the last committed checkpoint, whole. */
static int backup_to(store *st, const char *tmp, char *err, size_t errlen) {
  int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_err(err, errlen, "state db %s: cannot create %s for the copy: %s", st->path, tmp,
            strerror(errno));
    return TC_EIO;
  }
  close(fd);
  sqlite3 *dst = NULL;
  int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", st->db, "main") : NULL;
  if (b) {
    rc = sqlite3_backup_step(b, -1);
    rc = rc == SQLITE_DONE ? sqlite3_backup_finish(b) : (sqlite3_backup_finish(b), rc);
  } else if (rc == SQLITE_OK) {
    rc = sqlite3_errcode(dst);
  }
  if (rc != SQLITE_OK)
    set_err(err, errlen, "state db %s: copying it to %s: %s (sqlite code %d)", st->path, tmp,
            dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc), rc);
  sqlite3_close(dst);
  if (rc != SQLITE_OK) {
    unlink(tmp);
    return map_rc(rc) ? map_rc(rc) : TC_ESTORE;
  }
  return 0;
}

/* The path is gone: copy the open database next to it, close the old connection (SQLite then
 * checkpoints its WAL into the unlinked file and removes the -wal and -shm at the path, which are
 * the old file's: a new file must never meet them), move the copy into place, reopen, lock. */
static int heal(store *st, char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.heal-%ld", st->path, (long)getpid());
  unlink(tmp);
  int code = backup_to(st, tmp, err, errlen);
  if (code != 0)
    return code;
  db_disconnect(st);
  /* Closing removed them unless another connection (inspect) still had the old file open. */
  char side[4200];
  snprintf(side, sizeof side, "%s-wal", st->path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", st->path);
  unlink(side);
  if (rename(tmp, st->path) != 0) {
    set_err(err, errlen, "state db %s: cannot move the copy %s into place: %s", st->path, tmp,
            strerror(errno));
    unlink(tmp);
    return TC_EIO;
  }
  if ((code = lock_path(st, err, errlen)) != 0 || (code = db_connect(st, err, errlen)) != 0) {
    db_disconnect(st);
    return code;
  }
  return 0;
}

int store_path_check(store *st, int *healed, char *err, size_t errlen) {
  *healed = 0;
  if (st->readonly)
    return 0;
  struct stat sb;
  int gone = stat(st->path, &sb) != 0, serr = errno;
  if (!gone && sb.st_dev == st->dev && sb.st_ino == st->ino) {
    if (st->db)
      return 0;
    /* A heal moved the copy into place but could not open it: try again. */
    int code = db_connect(st, err, errlen);
    if (code)
      db_disconnect(st);
    return code;
  }
  if (!gone) {
    set_err(err, errlen,
            "state db %s: the file was replaced by another one (inode %llu, now %llu); this "
            "daemon's checkpoints do not go into it: stop the daemon, or move the other file "
            "away to have the state written back at the path",
            st->path, (unsigned long long)st->ino, (unsigned long long)sb.st_ino);
    return TC_EIO;
  }
  if (serr != ENOENT) {
    set_err(err, errlen, "state db %s: %s", st->path, strerror(serr));
    return TC_EIO;
  }
  if (!st->db) {
    set_err(err, errlen, "state db %s: deleted after a failed reopen; its state is lost", st->path);
    return TC_ESTORE;
  }
  int code = heal(st, err, errlen);
  if (code != 0)
    return code;
  *healed = 1;
  set_err(err, errlen,
          "state db %s: the file was deleted under the running daemon; wrote a complete copy of "
          "the last checkpoint back to the path, later checkpoints go there",
          st->path);
  pthread_mutex_lock(&st->heal_mu);
  snprintf(st->heal_msg, sizeof st->heal_msg, "%s", err ? err : "");
  pthread_mutex_unlock(&st->heal_mu);
  atomic_fetch_add(&st->heals, 1);
  return 0;
}

uint64_t store_heals(store *st) {
  return st ? atomic_load(&st->heals) : 0;
}

void store_heal_message(store *st, char *msg, size_t len) {
  pthread_mutex_lock(&st->heal_mu);
  snprintf(msg, len, "%s", st->heal_msg);
  pthread_mutex_unlock(&st->heal_mu);
}

/* ---- meta ---- */

static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col) {
  const char *v = (const char *)sqlite3_column_text(s, col);
  snprintf(dst, cap, "%s", v ? v : "");
}

/* A bound model's meta as a tickcast writes it: a sha256 in lowercase hex, a known cell, a
 * positive shape. 0, or TC_EFORMAT naming the field (a damaged file, or another tool's). */
static int meta_check(const store *st, const store_meta *m, char *err, size_t errlen) {
  if (!m->model_sha256[0])
    return 0; /* no model bound yet: the rest is unset */
  int hex = strlen(m->model_sha256) == 64;
  for (int i = 0; hex && i < 64; i++)
    hex = (m->model_sha256[i] >= '0' && m->model_sha256[i] <= '9') ||
          (m->model_sha256[i] >= 'a' && m->model_sha256[i] <= 'f');
  char found[48], cells[96];
  const char *field = NULL, *want = NULL;
  if (!hex) {
    field = "model_sha256", want = "64 lowercase hex digits";
    snprintf(found, sizeof found, "'%.16s%s'", m->model_sha256,
             strlen(m->model_sha256) > 16 ? "..." : "");
  } else if (!nn_cell_valid(m->cell)) {
    /* "0..3 (lstm, gru, rnn_tanh, rnn_relu)", from nn/base/cell.h */
    size_t k = (size_t)snprintf(cells, sizeof cells, "0..%d (", NN_CELL_COUNT - 1);
    for (int c = 0; c < NN_CELL_COUNT && k < sizeof cells; c++)
      k += (size_t)snprintf(cells + k, sizeof cells - k, "%s%s", c ? ", " : "", nn_cell_name(c));
    if (k < sizeof cells)
      snprintf(cells + k, sizeof cells - k, ")");
    field = "cell", want = cells;
    snprintf(found, sizeof found, "%d", m->cell);
  } else if (m->L < 1 || m->H < 1) {
    field = m->L < 1 ? "layers" : "hidden", want = "an integer >= 1";
    snprintf(found, sizeof found, "%d", m->L < 1 ? m->L : m->H);
  }
  if (!field)
    return 0;
  set_err(err, errlen, "state db %s: meta %s: found %s, expected %s (a damaged file)", st->path,
          field, found, want);
  return TC_EFORMAT;
}

int store_meta_get(store *st, store_meta *m, char *err, size_t errlen) {
  sqlite3_stmt *s = st->q[Q_META_GET];
  memset(m, 0, sizeof *m);
  int rc = sqlite3_step(s);
  int code = 0;
  if (rc == SQLITE_ROW) {
    copy_col(m->model_sha256, sizeof m->model_sha256, s, 0);
    copy_col(m->features, sizeof m->features, s, 1);
    m->L = sqlite3_column_int(s, 2);
    m->H = sqlite3_column_int(s, 3);
    m->ckpt_time_ns = sqlite3_column_int64(s, 4);
    m->ckpts = (uint64_t)sqlite3_column_int64(s, 5);
    copy_col(m->app, sizeof m->app, s, 6);
    copy_col(m->cluster_id, sizeof m->cluster_id, s, 7);
    copy_col(m->input_topic, sizeof m->input_topic, s, 8);
    m->cell = sqlite3_column_int(s, 9);
    code = meta_check(st, m, err, errlen);
  } else if (rc == SQLITE_DONE) {
    set_err(err, errlen, "state db %s: no model bound yet (fresh file)", st->path);
    code = TC_ENOENT;
  } else {
    code = db_fail(st, rc, "reading meta", err, errlen);
  }
  sqlite3_reset(s);
  return code;
}

int store_meta_set(store *st, const store_meta *m, char *err, size_t errlen) {
  if (!nn_cell_valid(m->cell)) {
    set_err(err, errlen, "state db %s: meta with cell %d, expected one of nn/base/cell.h", st->path,
            m->cell);
    return TC_EINVAL;
  }
  sqlite3_stmt *s = st->q[Q_META_SET];
  sqlite3_bind_text(s, 1, m->model_sha256, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, m->features, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 3, m->L);
  sqlite3_bind_int(s, 4, m->H);
  sqlite3_bind_int64(s, 5, m->ckpt_time_ns);
  sqlite3_bind_int64(s, 6, (int64_t)m->ckpts);
  sqlite3_bind_text(s, 7, m->app, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 8, m->cell);
  int rc = sqlite3_step(s);
  int code = rc == SQLITE_DONE ? 0 : db_fail(st, rc, "writing meta", err, errlen);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return code;
}

int store_binding_set(store *st, const char *cluster_id, const char *input_topic, char *err,
                      size_t errlen) {
  sqlite3_stmt *s = st->q[Q_BIND_SET];
  sqlite3_bind_text(s, 1, cluster_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, input_topic, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  int code = rc == SQLITE_DONE ? 0 : db_fail(st, rc, "writing the binding", err, errlen);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return code;
}

/* ---- checkpoint write ---- */

/* Steps a bound write statement to completion and resets it. */
static int step_done(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Checks a checkpoint before anything is written: a writable database, a valid state shape, and
 * room in the scratch blob for one encoded state. */
static int ckpt_check(store *st, const store_ckpt *c, char *err, size_t errlen) {
  if (st->readonly) {
    set_err(err, errlen, "state db %s: opened read-only, cannot write a checkpoint", st->path);
    return TC_EIO;
  }
  if (c->L < 1 || c->H < 1 || c->L > 0xff || !nn_cell_valid(c->cell)) {
    set_err(err, errlen,
            "state db %s: checkpoint with cell %d, L=%d H=%d, expected a cell of "
            "nn/base/cell.h, 1 <= L <= 255, H >= 1",
            st->path, c->cell, c->L, c->H);
    return TC_EINVAL;
  }
  size_t bl = store_blob_len(c->cell, c->L, c->H) + STORE_BLOB_TRACK_LEN;
  if (st->blob_cap < bl) {
    unsigned char *b = realloc(st->blob, bl);
    if (!b) {
      set_err(err, errlen, "state db %s: out of memory for a %zu-byte state blob", st->path, bl);
      return TC_ENOMEM;
    }
    st->blob = b;
    st->blob_cap = bl;
  }
  return 0;
}

/* The error of a failed write inside the checkpoint's transaction. */
static int ckpt_fail(const store *st, int rc, char *err, size_t errlen) {
  return db_fail(st, rc, "writing the checkpoint", err, errlen);
}

/* Deletes what the checkpoint removes: every instrument on a model reset, then c->del. */
static int ckpt_delete(store *st, const store_ckpt *c, char *err, size_t errlen) {
  int rc;
  if (c->clear_instruments && (rc = step_done(st->q[Q_INST_CLEAR])) != SQLITE_OK)
    return ckpt_fail(st, rc, err, errlen);
  for (size_t i = 0; i < c->ndel; i++) {
    sqlite3_stmt *s = st->q[Q_INST_DELETE];
    sqlite3_bind_text(s, 1, c->del[i], -1, SQLITE_STATIC);
    if ((rc = step_done(s)) != SQLITE_OK)
      return ckpt_fail(st, rc, err, errlen);
  }
  return 0;
}

/* Inserts or replaces the checkpoint's instruments, each state encoded into the scratch blob. A
 * row without a valid symbol or a state is TC_EINVAL. */
static int ckpt_put_instruments(store *st, const store_ckpt *c, char *err, size_t errlen) {
  sqlite3_stmt *s = st->q[Q_INST_UPSERT];
  for (size_t i = 0; i < c->ninst; i++) {
    const store_inst *in = &c->inst[i];
    if (in->sym_len < 1 || in->sym_len > STORE_SYM_MAX || !in->state) {
      set_err(err, errlen,
              "state db %s: checkpoint row %zu has a symbol of %zu bytes%s, expected 1..%d bytes "
              "and a state",
              st->path, i, in->sym_len, in->state ? "" : " and no state", STORE_SYM_MAX);
      return TC_EINVAL;
    }
    size_t len = store_blob_encode(st->blob, c->cell, c->L, c->H, in->state,
                                   in->has_track ? in->track : NULL);
    sqlite3_bind_text(s, 1, in->sym, (int)in->sym_len, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, in->partition);
    sqlite3_bind_int64(s, 3, (int64_t)in->n);
    sqlite3_bind_int64(s, 4, in->last_ts);
    sqlite3_bind_double(s, 5, in->last_px);
    sqlite3_bind_blob(s, 6, st->blob, (int)len, SQLITE_STATIC);
    if (in->next_offset >= 0)
      sqlite3_bind_int64(s, 7, in->next_offset);
    else
      sqlite3_bind_null(s, 7);
    int rc = step_done(s);
    if (rc != SQLITE_OK)
      return ckpt_fail(st, rc, err, errlen);
  }
  return 0;
}

/* Inserts or replaces the checkpoint's offsets. */
static int ckpt_put_offsets(store *st, const store_ckpt *c, char *err, size_t errlen) {
  for (size_t i = 0; i < c->noff; i++) {
    sqlite3_stmt *o = st->q[Q_OFF_UPSERT];
    sqlite3_bind_text(o, 1, c->off[i].topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(o, 2, c->off[i].partition);
    sqlite3_bind_int64(o, 3, c->off[i].next_offset);
    int rc = step_done(o);
    if (rc != SQLITE_OK)
      return ckpt_fail(st, rc, err, errlen);
  }
  return 0;
}

/* Records the checkpoint in meta: its time, one more checkpoint, and a new model hash if any. */
static int ckpt_put_meta(store *st, const store_ckpt *c, char *err, size_t errlen) {
  sqlite3_stmt *m = st->q[Q_META_CKPT];
  if (c->model_sha256)
    sqlite3_bind_text(m, 1, c->model_sha256, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(m, 1);
  sqlite3_bind_int64(m, 2, c->time_ns);
  int rc = step_done(m);
  return rc == SQLITE_OK ? 0 : ckpt_fail(st, rc, err, errlen);
}

/* Writes one checkpoint in one transaction (see store.h): check, begin, the writes, commit; on any
 * failure the transaction is rolled back. */
int store_checkpoint_write(store *st, const store_ckpt *c, char *err, size_t errlen) {
  int code = ckpt_check(st, c, err, errlen);
  if (code != 0)
    return code;
  int rc = step_done(st->q[Q_BEGIN]);
  if (rc != SQLITE_OK)
    return db_fail(st, rc, "starting the checkpoint", err, errlen);
  if ((code = ckpt_delete(st, c, err, errlen)) == 0 &&
      (code = ckpt_put_instruments(st, c, err, errlen)) == 0 &&
      (code = ckpt_put_offsets(st, c, err, errlen)) == 0 &&
      (code = ckpt_put_meta(st, c, err, errlen)) == 0) {
    rc = step_done(st->q[Q_COMMIT]);
    if (rc == SQLITE_OK)
      return 0;
    code = db_fail(st, rc, "committing the checkpoint", err, errlen);
  }
  /* SQLite may already have rolled back (e.g. on SQLITE_FULL); roll back only what is open. */
  if (!sqlite3_get_autocommit(st->db))
    step_done(st->q[Q_ROLLBACK]);
  return code;
}

/* ---- loads ---- */

/* s[0..n) for a message: printable ASCII as it is, any other byte as \xHH, cut after 40 bytes,
 * so that a bad symbol cannot put escape sequences on the reader's terminal. */
static void excerpt(char *out, size_t cap, const unsigned char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && i < 40 && o + 5 < cap; i++)
    o += (size_t)snprintf(out + o, cap - o, s[i] >= 0x20 && s[i] < 0x7f ? "%c" : "\\x%02x", s[i]);
  if (n > 40 && o + 4 < cap)
    o += (size_t)snprintf(out + o, cap - o, "...");
  out[o] = 0;
}

/* CONTRACT §1: a symbol is 1..STORE_SYM_MAX bytes of printable ASCII 0x21..0x7E without '"', '\'
 * or ','. */
static int sym_valid(const unsigned char *s, size_t n) {
  if (n < 1 || n > STORE_SYM_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' || s[i] == ',')
      return 0;
  return 1;
}

/* The fields of an instrument row other than its blob: a valid symbol, integer n >= 0, integer
 * last_ts, integer partition >= -1 (-1: none), a finite last_px >= 0, next_offset NULL or an
 * integer >= 0. */
static int inst_row_check(const store *st, sqlite3_stmt *s, const store_inst *in, char *err,
                          size_t errlen) {
  char sym[200], why[96] = "";
  excerpt(sym, sizeof sym, (const unsigned char *)(in->sym ? in->sym : ""), in->sym_len);
  if (!in->sym || sqlite3_column_type(s, 0) != SQLITE_TEXT ||
      !sym_valid((const unsigned char *)in->sym, in->sym_len)) {
    set_err(err, errlen,
            "state db %s: an instrument's symbol \"%s\" is not 1..%d bytes of printable ASCII "
            "without '\"', '\\' or ','",
            st->path, sym, STORE_SYM_MAX);
    return TC_EFORMAT;
  }
  static const char *const col[] = {"sym", "partition", "n", "last_ts"};
  for (int c = 1; c <= 3 && !why[0]; c++)
    if (sqlite3_column_type(s, c) != SQLITE_INTEGER)
      snprintf(why, sizeof why, "%s is %s, expected an integer", col[c],
               sqlite3_column_type(s, c) == SQLITE_TEXT ? "text" : "not an integer");
  if (!why[0] && sqlite3_column_int64(s, 2) < 0)
    snprintf(why, sizeof why, "n is %lld, expected >= 0", (long long)sqlite3_column_int64(s, 2));
  if (!why[0] && (sqlite3_column_int64(s, 1) < -1 || sqlite3_column_int64(s, 1) > INT32_MAX))
    snprintf(why, sizeof why, "partition is %lld, expected -1..%d",
             (long long)sqlite3_column_int64(s, 1), INT32_MAX);
  int ot = sqlite3_column_type(s, 6);
  if (!why[0] && ot != SQLITE_NULL && (ot != SQLITE_INTEGER || sqlite3_column_int64(s, 6) < 0))
    snprintf(why, sizeof why, "next_offset is %s, expected NULL or an integer >= 0",
             ot == SQLITE_INTEGER ? "negative" : "not an integer");
  int pt = sqlite3_column_type(s, 4);
  if (!why[0] && pt != SQLITE_FLOAT && pt != SQLITE_INTEGER)
    snprintf(why, sizeof why, "last_px is %s, expected a finite number >= 0",
             pt == SQLITE_TEXT   ? "text"
             : pt == SQLITE_NULL ? "NULL"
                                 : "a blob");
  else if (!why[0] && (!isfinite(in->last_px) || in->last_px < 0))
    snprintf(why, sizeof why, "last_px is %.17g, expected a finite number >= 0", in->last_px);
  if (!why[0])
    return 0;
  set_err(err, errlen, "state db %s: instrument %s: %s", st->path, sym, why);
  return TC_EFORMAT;
}

/* The rows of a bound select of instruments (Q_INST_ALL's columns), checked (states of the cell,
 * L layers of H) and passed to fn. */
static int load_rows(store *st, sqlite3_stmt *s, int cell, int L, int H, store_inst_fn fn, void *ud,
                     char *err, size_t errlen) {
  if (L < 1 || H < 1 || !nn_cell_valid(cell)) {
    set_err(err, errlen,
            "state db %s: load with cell %d L=%d H=%d, expected a cell of nn/base/cell.h and "
            "positive L and H",
            st->path, cell, L, H);
    sqlite3_clear_bindings(s);
    return TC_EINVAL;
  }
  size_t nf = store_blob_floats(cell, L, H);
  if (st->fcap < nf) {
    float *f = realloc(st->fbuf, nf * sizeof(float));
    if (!f) {
      set_err(err, errlen, "state db %s: out of memory", st->path);
      return TC_ENOMEM;
    }
    st->fbuf = f;
    st->fcap = nf;
  }
  int rc, code = 0;
  char why[200];
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    store_inst in = {0};
    in.sym = (const char *)sqlite3_column_text(s, 0);
    in.sym_len = (size_t)sqlite3_column_bytes(s, 0);
    in.partition = sqlite3_column_int(s, 1);
    in.n = (uint64_t)sqlite3_column_int64(s, 2);
    in.last_ts = sqlite3_column_int64(s, 3);
    in.last_px = sqlite3_column_double(s, 4);
    in.next_offset = sqlite3_column_type(s, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 6);
    const unsigned char *b = sqlite3_column_blob(s, 5);
    size_t blen = (size_t)sqlite3_column_bytes(s, 5);
    if ((code = inst_row_check(st, s, &in, err, errlen)) != 0)
      break;
    if (!b)
      blen = 0;
    if ((code = store_blob_decode(b ? b : (const unsigned char *)"", blen, cell, L, H, st->fbuf,
                                  in.track, &in.has_track, why, sizeof why)) != 0) {
      set_err(err, errlen, "state db %s: instrument %.*s: %s", st->path, (int)in.sym_len, in.sym,
              why);
      break;
    }
    in.state = st->fbuf;
    if ((code = fn(ud, &in)) != 0)
      break;
  }
  if (!code && rc != SQLITE_DONE)
    code = db_fail(st, rc, "reading instruments", err, errlen);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return code;
}

int store_instruments_load(store *st, int cell, int L, int H, store_inst_fn fn, void *ud, char *err,
                           size_t errlen) {
  return load_rows(st, st->q[Q_INST_ALL], cell, L, H, fn, ud, err, errlen);
}

int store_instruments_load_partition(store *st, int cell, int L, int H, int32_t partition,
                                     store_inst_fn fn, void *ud, char *err, size_t errlen) {
  sqlite3_bind_int(st->q[Q_INST_PART], 1, partition);
  return load_rows(st, st->q[Q_INST_PART], cell, L, H, fn, ud, err, errlen);
}

int store_instruments_top(store *st, int k, store_inst_fn fn, void *ud, char *err, size_t errlen) {
  sqlite3_stmt *s = st->q[Q_INST_TOP];
  sqlite3_bind_int(s, 1, k);
  int rc, code = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    store_inst in;
    in.sym = (const char *)sqlite3_column_text(s, 0);
    in.sym_len = (size_t)sqlite3_column_bytes(s, 0);
    if (!in.sym)
      in.sym = "";
    in.partition = sqlite3_column_int(s, 1);
    in.n = (uint64_t)sqlite3_column_int64(s, 2);
    in.last_ts = sqlite3_column_int64(s, 3);
    in.last_px = sqlite3_column_double(s, 4);
    in.state = NULL;
    in.has_track = 0;
    in.next_offset = -1;
    if ((code = fn(ud, &in)) != 0)
      break;
  }
  if (!code && rc != SQLITE_DONE)
    code = db_fail(st, rc, "reading instruments", err, errlen);
  sqlite3_reset(s);
  return code;
}

int store_instruments_count(store *st, uint64_t *count, char *err, size_t errlen) {
  sqlite3_stmt *s = st->q[Q_INST_COUNT];
  int rc = sqlite3_step(s), code = 0;
  if (rc == SQLITE_ROW)
    *count = (uint64_t)sqlite3_column_int64(s, 0);
  else
    code = db_fail(st, rc, "counting instruments", err, errlen);
  sqlite3_reset(s);
  return code;
}

int store_offsets_load(store *st, store_offset **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = st->q[Q_OFF_ALL];
  store_offset *v = NULL;
  size_t cnt = 0, cap = 0;
  int rc, code = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (cnt == cap) {
      size_t nc = cap ? 2 * cap : 16;
      store_offset *nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        set_err(err, errlen, "state db %s: out of memory reading offsets", st->path);
        code = TC_ENOMEM;
        break;
      }
      v = nv;
      cap = nc;
    }
    store_offset *o = &v[cnt++];
    copy_col(o->topic, sizeof o->topic, s, 0);
    int64_t part = sqlite3_column_int64(s, 1);
    o->partition = (int32_t)part;
    o->next_offset = sqlite3_column_int64(s, 2);
    if (part < 0 || part > INT32_MAX || o->next_offset < 0 ||
        sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
        sqlite3_column_type(s, 2) != SQLITE_INTEGER) {
      char topic[200];
      excerpt(topic, sizeof topic, (const unsigned char *)o->topic, strlen(o->topic));
      set_err(err, errlen,
              "state db %s: offset of %s partition %lld: next offset %lld, expected integers "
              ">= 0",
              st->path, topic, (long long)part, (long long)o->next_offset);
      code = TC_EFORMAT;
      break;
    }
  }
  if (!code && rc != SQLITE_DONE)
    code = db_fail(st, rc, "reading offsets", err, errlen);
  sqlite3_reset(s);
  if (code) {
    free(v);
    return code;
  }
  *out = v;
  *n = cnt;
  return 0;
}

int store_partition_reset(store *st, const char *topic, int32_t partition, char *err,
                          size_t errlen) {
  if (st->readonly) {
    set_err(err, errlen, "state db %s: opened read-only, cannot reset", st->path);
    return TC_EIO;
  }
  int rc = step_done(st->q[Q_BEGIN]);
  if (rc != SQLITE_OK)
    return db_fail(st, rc, "starting the partition reset", err, errlen);
  sqlite3_bind_int(st->q[Q_INST_DEL_PART], 1, partition);
  sqlite3_bind_text(st->q[Q_OFF_DEL], 1, topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st->q[Q_OFF_DEL], 2, partition);
  if ((rc = step_done(st->q[Q_INST_DEL_PART])) == SQLITE_OK &&
      (rc = step_done(st->q[Q_OFF_DEL])) == SQLITE_OK)
    rc = step_done(st->q[Q_COMMIT]);
  sqlite3_clear_bindings(st->q[Q_INST_DEL_PART]);
  sqlite3_clear_bindings(st->q[Q_OFF_DEL]);
  if (rc == SQLITE_OK)
    return 0;
  int code = db_fail(st, rc, "resetting a partition", err, errlen);
  if (!sqlite3_get_autocommit(st->db))
    step_done(st->q[Q_ROLLBACK]);
  return code;
}

int store_reset(store *st, char *err, size_t errlen) {
  if (st->readonly) {
    set_err(err, errlen, "state db %s: opened read-only, cannot reset", st->path);
    return TC_EIO;
  }
  int rc = step_done(st->q[Q_BEGIN]);
  if (rc != SQLITE_OK)
    return db_fail(st, rc, "starting the reset", err, errlen);
  if ((rc = step_done(st->q[Q_INST_CLEAR])) == SQLITE_OK &&
      (rc = step_done(st->q[Q_OFF_CLEAR])) == SQLITE_OK)
    rc = step_done(st->q[Q_COMMIT]);
  if (rc == SQLITE_OK)
    return 0;
  int code = db_fail(st, rc, "resetting the state", err, errlen);
  if (!sqlite3_get_autocommit(st->db))
    step_done(st->q[Q_ROLLBACK]);
  return code;
}
