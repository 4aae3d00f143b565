#!/usr/bin/python3
"""e2e_crash.py: the Python side of tests/e2e_crash.sh and e2e_crash_threads.sh (confluent_kafka).
Not a test by itself. Subcommands:

  gen CSV N K SEED            N ticks over K instruments (random walks, increasing ts), CSV
  count BROKERS TOPIC         print the number of distinct src among TOPIC's messages so far
  check BROKERS TOPIC N REPLAY_CSV INSPECT_JSON MODEL   (INSPECT_JSON "-": no state file check)
      reads every prediction of TOPIC and checks, against `tickcast replay` of the same ticks:
      exactly N distinct src (none missing); predictions repeated after a crash carry the same
      src with the same sym, n, ts and px and the same y (the model's output before
      de-standardisation, y = (pred_ret - target.mean) / target.std, from MODEL) within 1e-5:
      float32 results depend on the batch a tick was stepped in by ~1e-7 (OpenBLAS sgemm is not
      batch-invariant); per instrument n = 1..count, each with the replay's values; and
      the final state (`tickcast inspect --json --top K`) holds every instrument with n = its
      tick count and offsets that add up to N.
  dump BROKERS TOPIC CSV       TOPIC's predictions as a replay CSV (sym,ts,px,pred_ret,pred_px,n),
      for check's REPLAY_CSV when the reference is another daemon's output
"""
import csv
import json
import random
import sys
import time


def gen(path, n, k, seed):
    rnd = random.Random(seed)
    px = [50.0 + 10 * rnd.random() for _ in range(k)]
    ts = 1760000000000000000
    with open(path, "w") as f:
        f.write("sym,ts,px,qty\n")
        for _ in range(n):
            i = rnd.randrange(k)
            px[i] *= 1 + 0.002 * rnd.gauss(0, 1)
            ts += rnd.randrange(1, 10**9)
            f.write(f"CR{i:03d},{ts},{px[i]!r},{rnd.randrange(1, 100)}\n")


def read_all(brokers, topic, idle_s=1.5, max_s=30):
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": brokers, "group.id": "e2e-crash-read",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = list(md.partitions)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out, eof, last = [], set(), time.time()
    deadline = time.time() + max_s
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(eof) == len(parts) and time.time() - last > idle_s:
                break
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        eof.discard(m.partition())
        last = time.time()
        out.append(json.loads(m.value()))
    c.close()
    return out


def target_stats(model):
    """target.mean[0] and target.std[0] of a safetensors model, read by hand."""
    import struct
    with open(model, "rb") as f:
        hl = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(hl))
        data = f.read()
    out = []
    for name in ("target.mean", "target.std"):
        t = hdr[name]
        assert t["dtype"] == "F32", t
        a, _ = t["data_offsets"]
        out.append(struct.unpack("<f", data[a:a + 4])[0])
    return out


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def check(brokers, topic, n, replay_csv, inspect_json, model):
    mean, std = target_stats(model)
    tol_y = 1e-5

    def dy(a, b):
        return abs((a - mean) / std - (b - mean) / std)

    preds = read_all(brokers, topic)
    want = {(r["sym"], int(r["n"])): r for r in csv.DictReader(open(replay_csv))}
    count = {}
    for sym, k in want:
        count[sym] = max(count.get(sym, 0), k)
    by_src = {}
    dups = 0
    worst = worst_dup = 0.0
    for v in preds:
        prev = by_src.get(v["src"])
        if prev is not None:
            dups += 1
            if (prev["sym"], prev["n"], prev["ts"], prev["px"]) != (v["sym"], v["n"], v["ts"], v["px"]):
                fail(f"src {v['src']} repeated as a different tick: {prev} vs {v}")
            d = dy(prev["pred_ret"], v["pred_ret"])
            worst_dup = max(worst_dup, d)
            if d > tol_y:
                fail(f"src {v['src']} repeated with another pred_ret: {prev} vs {v}")
            continue
        by_src[v["src"]] = v
        r = want.get((v["sym"], v["n"]))
        if r is None:
            fail(f"prediction {v} has no replay row: n too large (a tick applied twice?)")
        if int(r["ts"]) != v["ts"] or float(r["px"]) != v["px"]:
            fail(f"{v['sym']} n={v['n']}: ts {v['ts']} px {v['px']!r} vs replay {r['ts']} "
                 f"{r['px']} (state out of step)")
        d = dy(float(r["pred_ret"]), v["pred_ret"])
        worst = max(worst, d)
        if d > tol_y:
            fail(f"{v['sym']} n={v['n']}: pred_ret {v['pred_ret']!r} vs replay {r['pred_ret']}")
    keys = {(v["sym"], v["n"]) for v in by_src.values()}
    if len(by_src) != n or len(keys) != n:
        missing = sorted(set(want) - keys)[:5]
        fail(f"{len(by_src)} distinct src and {len(keys)} distinct (sym, n), expected {n}; "
             f"missing e.g. {missing}")
    if inspect_json == "-":  # several state files (run --threads): the predictions say it all
        print(f"ok: {len(preds)} predictions, {n} distinct src (none missing), {dups} repeated "
              f"after crashes with equal values (max |d y| {worst_dup:.3g}), all equal to replay "
              f"(max |d y| {worst:.3g}, tolerance {tol_y})")
        return
    st = json.load(open(inspect_json))
    if st["instruments"] != len(count):
        fail(f"inspect: {st['instruments']} instruments, expected {len(count)}")
    top = {t["sym"]: (t["n"], t["last_ts"], t["last_px"]) for t in st["top"]}
    last = {s: (c, int(want[(s, c)]["ts"]), float(want[(s, c)]["px"])) for s, c in count.items()}
    bad = {s: (top.get(s), e) for s, e in last.items() if top.get(s) != e}
    if bad:
        fail(f"inspect: (n, last_ts, last_px) per instrument differs (found, expected): "
             f"{list(bad.items())[:5]}")
    total = sum(o["next_offset"] for o in st["offsets"])
    if total != n:
        fail(f"inspect: offsets add up to {total}, expected {n}: {st['offsets']}")
    print(f"ok: {len(preds)} predictions, {n} distinct src (none missing), {dups} repeated after "
          f"crashes with equal values (max |d y| {worst_dup:.3g}), all equal to replay (max |d y| "
          f"{worst:.3g}, tolerance {tol_y}); final "
          f"state: {len(count)} instruments with the right n, last_ts and last_px, offsets sum {total}")


def main():
    a = sys.argv
    if a[1] == "gen":
        gen(a[2], int(a[3]), int(a[4]), int(a[5]))
    elif a[1] == "count":
        print(len({v["src"] for v in read_all(a[2], a[3], idle_s=0.3, max_s=10)}))
    elif a[1] == "dump":  # a topic's predictions as a replay CSV, for check's REPLAY_CSV
        with open(a[4], "w") as f:
            f.write("sym,ts,px,pred_ret,pred_px,n\n")
            for v in read_all(a[2], a[3]):
                f.write(f"{v['sym']},{v['ts']},{v['px']!r},{v['pred_ret']!r},{v['pred_px']!r},{v['n']}\n")
    elif a[1] == "check":
        check(a[2], a[3], int(a[4]), a[5], a[6], a[7])
    else:
        sys.exit("e2e_crash.py: unknown command " + a[1])


if __name__ == "__main__":
    main()
