#!/usr/bin/python3
"""statedb.py: an independent writer of tickcast state databases (store/store.h, schema 2), with its
own XXH64, for the end-to-end tests of `tickcast inspect` and for crafting damaged files. It follows
the documented format, not the C code, so a disagreement shows up as a test failure.

  statedb.py write DB --instruments N --layers L --hidden H [--wal-tail] [--cell C]
      writes a state file with N instruments "S000".. (n = 7 * k + 1, partition k % 3), offsets
      ticks/0..2, and meta; --wal-tail leaves the last transaction only in the -wal file, as a
      process killed with -9 would; --cell writes version 2 blobs of cell C (meta bound to it),
      else version 1 blobs (an LSTM's).
  statedb.py corrupt-blob DB SYM    flips one bit of SYM's state floats (checksum left stale)
  statedb.py foreign DB             a valid SQLite file of another application
  statedb.py future DB              a tickcast file whose schema is newer than this build's
"""
import argparse
import os
import sqlite3
import struct
import sys

APP_ID = 0x54434B43
SCHEMA = """
CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), model_sha256 TEXT NOT NULL DEFAULT '',
  features TEXT NOT NULL DEFAULT '', layers INTEGER NOT NULL DEFAULT 0,
  hidden INTEGER NOT NULL DEFAULT 0, ckpt_time_ns INTEGER NOT NULL DEFAULT 0,
  ckpts INTEGER NOT NULL DEFAULT 0, app TEXT NOT NULL DEFAULT '',
  cluster_id TEXT NOT NULL DEFAULT '', input_topic TEXT NOT NULL DEFAULT '',
  cell INTEGER NOT NULL DEFAULT 0);
CREATE TABLE offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL,
  next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE instruments (sym TEXT PRIMARY KEY NOT NULL, partition INTEGER NOT NULL,
  n INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_px REAL NOT NULL, state BLOB NOT NULL,
  next_offset INTEGER);
CREATE INDEX instruments_partition ON instruments (partition);
"""
M64 = (1 << 64) - 1
P1, P2, P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
P4, P5 = 9650029242287828579, 2870177450012600261


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    acc = (acc + lane * P2) & M64
    return (_rotl(acc, 31) * P1) & M64


def _merge(h, v):
    h ^= _round(0, v)
    return (h * P1 + P4) & M64


def xxh64(data, seed=0):
    """XXH64 as specified in xxHash's doc/xxhash_spec.md."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], struct.unpack_from("<Q", data, i + 8 * j)[0])
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for x in v:
            h = _merge(h, x)
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    h ^= h >> 32
    return h


assert xxh64(b"") == 0xEF46DB3751D8E999


CELLS = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}  # nn/base/cell.h


def blob(L, H, floats, cell=None):
    """The state blob: "TCST", u16 version 1, u16 L, u32 H, u32 count, floats LE, XXH64 LE; with
    a cell, version 2: u16 version 2, u8 cell, u8 L in place of the u16 L."""
    assert len(floats) == (2 if cell in (None, "lstm") else 1) * L * H
    if cell is None:
        head = struct.pack("<HHII", 1, L, H, len(floats))
    else:
        head = struct.pack("<HBBII", 2, CELLS[cell], L, H, len(floats))
    body = b"TCST" + head + struct.pack("<%df" % len(floats), *floats)
    return body + struct.pack("<Q", xxh64(body))


def write(path, n_inst, L, H, wal_tail, cell=None):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # keep what follows the checkpoint in the -wal
    db.execute("BEGIN")
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    db.execute("PRAGMA application_id = %d" % APP_ID)
    db.execute("PRAGMA user_version = 2")
    db.execute("INSERT INTO meta VALUES (1, ?, 'ret,log_qty,log_dt,spread', ?, ?, ?, 3, "
               "'statedb.py', 'statedb-cluster', 'ticks', ?)",
               ("ab" * 32, L, H, 1764370000123456789, CELLS[cell or "lstm"]))
    for p in range(3):
        db.execute("INSERT INTO offsets VALUES ('ticks', ?, ?)", (p, 1000 * p + 17))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("BEGIN")
    for k in range(n_inst):
        nv = 2 if cell in (None, "lstm") else 1
        fl = [((k * 31 + j * 7) % 97 - 48) / 17.0 for j in range(nv * L * H)]
        db.execute("INSERT INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?)",
                   ("S%03d" % k, k % 3, 7 * k + 1, 1700000000123456789 + k, 1.5 + k / 4,
                    blob(L, H, fl, cell), 1000 * (k % 3) + 22))
    db.execute("UPDATE offsets SET next_offset = next_offset + 5")
    db.execute("COMMIT")
    if wal_tail:
        os._exit(0)  # no close: the last commit lives only in the -wal, as after kill -9
    db.close()


def corrupt_blob(path, sym):
    db = sqlite3.connect(path, isolation_level=None)
    (b,) = db.execute("SELECT state FROM instruments WHERE sym = ?", (sym,)).fetchone()
    b = bytearray(b)
    b[16 + 5] ^= 0x04
    db.execute("UPDATE instruments SET state = ? WHERE sym = ?", (bytes(b), sym))
    db.close()


def main(argv):
    cmd, path = argv[1], argv[2]
    if cmd == "write":
        ap = argparse.ArgumentParser(prog="statedb.py write")
        ap.add_argument("--instruments", type=int, default=25)
        ap.add_argument("--layers", type=int, default=1)
        ap.add_argument("--hidden", type=int, default=8)
        ap.add_argument("--wal-tail", action="store_true")
        ap.add_argument("--cell", choices=sorted(CELLS), help="version 2 blobs of this cell, "
                        "bound to it in meta (default: version 1 blobs, an LSTM's)")
        a = ap.parse_args(argv[3:])
        write(path, a.instruments, a.layers, a.hidden, a.wal_tail, a.cell)
    elif cmd == "corrupt-blob":
        corrupt_blob(path, argv[3])
    elif cmd == "foreign":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.commit()
        db.close()
    elif cmd == "future":
        db = sqlite3.connect(path)
        db.execute("PRAGMA application_id = %d" % APP_ID)
        db.execute("PRAGMA user_version = 9")
        db.execute("CREATE TABLE instruments (sym TEXT)")
        db.commit()
        db.close()
    else:
        sys.exit("statedb.py: unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
