#!/usr/bin/python3
"""e2e_group.py: the orchestrator of tests/e2e_group_survive*.sh: a consumer group of `tickcast run`
members that loses and gains members while ticks stream in must predict like one uninterrupted
instance. Not a test by itself.

  run BROKERS STRATEGY TICKCAST TMPDIR

Scenario (240 instruments over the 12 partitions of topic `ticks`, model of tests/e2e_run.py):
  1. members a, b, c join; 6000 ticks stream in; c is killed with SIGKILL mid-stream;
  2. once the survivors caught up, junk (100 KB messages that do not decode) fills every input
     partition until the broker's retention (about 5 MiB per partition) has dropped every tick
     older than the members' last checkpoints;
  3. d joins with an empty state file (a new machine): it can restore only from the changelog;
     3000 ticks;
  4. the group shrinks to one: b stops (SIGTERM) and d is killed (SIGKILL) while 3000 more ticks
     stream in;
  5. it grows back to three: b with its old (stale) state file and e with none; 3000 more ticks.
Then every prediction, read back from `predictions`, is checked against `tickcast replay` of the
same ticks (one uninterrupted instance): each tick's src has at least one prediction, every
prediction of a src has that tick's sym, ts, px and n and the replay's pred_ret within 1e-5 in
standardized units (float32 results differ with batch composition by ~1e-7; see e2e_crash.py),
so repeats carry equal values. Also: the low watermarks moved past the first ticks (retention
did drop them), d and e restored partitions from the changelog, and no member reset a state.
"""
import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from e2e_crash import read_all, target_stats  # tests/ is this script's directory

K = 240
PARTS = 12


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    raise SystemExit(1)


class Member:
    def __init__(self, name, tc, brokers, strategy, tmp, model, db):
        self.name = name
        self.log = os.path.join(tmp, f"run-{name}.log")
        self.port = None
        args = [tc, "run", "--brokers", brokers, "--group", "g", "--model", model,
                "--state", db, "--http", "127.0.0.1:0", "--checkpoint-interval", "200",
                "--stats-interval", "1000", "-X", "consumer.session.timeout.ms=6000",
                "-X", "consumer.heartbeat.interval.ms=500",
                "-X", f"consumer.partition.assignment.strategy={strategy}"]
        self.f = open(self.log, "a")
        start = self.f.tell()  # a member started again appends to its log
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.f)
        deadline = time.time() + 15
        while time.time() < deadline and self.port is None:
            with open(self.log) as f:
                f.seek(start)
                m = re.search(r"http on .* \(port (\d+)\)", f.read())
            if m:
                self.port = int(m.group(1))
            time.sleep(0.05)
        if self.port is None:
            fail(f"member {name}: no http line in {self.log}")

    def metric(self, name):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read()
        except Exception:
            return None
        m = re.search(rb"^tickcast_" + name.encode() + rb" (\S+)$", body, re.M)
        return float(m.group(1)) if m else None

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        self.p.kill()
        self.p.wait()
        self.f.close()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail(f"member {self.name} did not stop within 15 s")
        self.f.close()
        if rc != 0:
            fail(f"member {self.name} exited {rc} after SIGTERM")


def wait_for(what, secs, cond):
    deadline = time.time() + secs
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    fail(f"timed out after {secs} s waiting for {what}")


def assigned(members):
    return [int(m.metric("partitions_assigned") or 0) for m in members]


def settled(members):
    a = assigned(members)
    return sum(a) == PARTS and all(x > 0 for x in a)


class Ticks:
    """The tick stream: random walks of K instruments, each tick's src recorded on delivery."""

    def __init__(self, brokers):
        from confluent_kafka import Producer
        self.p = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                           "enable.idempotence": True, "linger.ms": 5})
        self.rnd = random.Random(5)
        self.px = [20.0 + 80 * self.rnd.random() for _ in range(K)]
        self.ts = [1760000000000000000 + k for k in range(K)]
        self.rows = []      # (sym, ts, px, qty) in publish order
        self.src = {}       # src -> index into rows
        self.lock = threading.Lock()

    def _cb(self, i):
        def cb(err, msg):
            if err:
                fail(f"feed: delivery failed: {err}")
            with self.lock:
                self.src[f"ticks/{msg.partition()}/{msg.offset()}"] = i
        return cb

    def feed(self, n, rate):
        t0 = time.time()
        for j in range(n):
            k = self.rnd.randrange(K)
            self.px[k] *= 1 + 0.002 * self.rnd.gauss(0, 1)
            self.ts[k] += self.rnd.randrange(1, 10**9)
            sym = f"G{k:03d}"
            row = (sym, self.ts[k], self.px[k], self.rnd.randrange(1, 100))
            i = len(self.rows)
            self.rows.append(row)
            v = json.dumps({"sym": sym, "ts": row[1], "px": row[2], "qty": row[3]})
            self.p.produce("ticks", v.encode(), key=sym.encode(), on_delivery=self._cb(i))
            self.p.poll(0)
            ahead = (j + 1) / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if self.p.flush(30):
            fail("feed: flush timed out")

    def feed_bg(self, n, rate):
        th = threading.Thread(target=self.feed, args=(n, rate))
        th.start()
        return th

    def junk(self, per_part, size):
        for q in range(PARTS):
            for _ in range(per_part):
                self.p.produce("ticks", b"{" + b"x" * size, key=b"JUNK", partition=q)
                self.p.poll(0)
        if self.p.flush(60):
            fail("junk: flush timed out")

    def csv(self, path):
        with open(path, "w") as f:
            f.write("sym,ts,px,qty\n")
            for r in self.rows:
                f.write(f"{r[0]},{r[1]},{r[2]!r},{r[3]}\n")


def consumer(brokers, group):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": brokers, "group.id": group,
                     "enable.auto.commit": False, "enable.partition.eof": True})


def watermarks(brokers, topic):
    from confluent_kafka import TopicPartition
    c = consumer(brokers, "e2e-group-wm")
    out = [c.get_watermark_offsets(TopicPartition(topic, q), timeout=10) for q in range(PARTS)]
    c.close()
    return out


def committed(brokers):
    from confluent_kafka import TopicPartition
    c = consumer(brokers, "g")
    offs = c.committed([TopicPartition("ticks", q) for q in range(PARTS)], timeout=10)
    c.close()
    return [max(o.offset, 0) for o in offs]


def read_preds(brokers):
    return read_all(brokers, "predictions", idle_s=2, max_s=60)


def distinct_src(brokers):
    return {v["src"] for v in read_preds(brokers)}


def check(brokers, ticks, replay_csv, model):
    mean, std = target_stats(model)
    want = {(r["sym"], int(r["n"])): float(r["pred_ret"]) for r in csv.DictReader(open(replay_csv))}
    nth = {}      # row index -> n of its instrument
    count = {}
    for i, r in enumerate(ticks.rows):
        count[r[0]] = count.get(r[0], 0) + 1
        nth[i] = count[r[0]]
    preds = read_preds(brokers)
    seen, repeats, worst = set(), 0, 0.0
    for v in preds:
        i = ticks.src.get(v["src"])
        if i is None:
            fail(f"prediction for an unknown src: {v}")
        sym, ts, px, _ = ticks.rows[i]
        if (v["sym"], v["ts"], v["px"]) != (sym, ts, px):
            fail(f"{v['src']}: prediction {v} is not of tick {ticks.rows[i]}")
        if v["n"] != nth[i]:
            fail(f"{v['src']}: n {v['n']}, expected {nth[i]} (its instrument's tick count: a tick "
                 f"applied twice or lost, or a state restarted)")
        d = abs(v["pred_ret"] - want[(sym, nth[i])]) / std
        worst = max(worst, d)
        if d > 1e-5:
            fail(f"{v['src']} {sym} n={nth[i]}: pred_ret {v['pred_ret']!r} vs replay "
                 f"{want[(sym, nth[i])]!r} (|d y| {d:.3g})")
        repeats += v["src"] in seen
        seen.add(v["src"])
    missing = [s for s in ticks.src if s not in seen]
    if missing:
        fail(f"{len(missing)} ticks have no prediction, e.g. {sorted(missing)[:5]}")
    print(f"ok: {len(preds)} predictions, {len(seen)} distinct src = every tick, {repeats} "
          f"repeats, all equal to one uninterrupted replay (max |d y| {worst:.3g})")


def run(brokers, strategy, tc, tmp):
    model = os.path.join(tmp, "m.safetensors")
    members = {}

    def start(name, db):
        members[name] = Member(name, tc, brokers, strategy, tmp, model, os.path.join(tmp, db))
        return members[name]

    def live():
        return [m for m in members.values() if m.alive()]

    ticks = Ticks(brokers)
    try:
        for w in "abc":
            start(w, f"{w}.db")
        wait_for("a, b, c to share the 12 partitions", 60, lambda: settled(live()))
        print(f"ok: a, b, c hold {assigned(live())} partitions ({strategy})")
        th = ticks.feed_bg(6000, 1500)
        time.sleep(2)
        members["c"].kill()
        print("ok: c killed with SIGKILL mid-stream")
        th.join()
        n1 = len(ticks.rows)
        wait_for("every tick of phase 1 predicted", 90, lambda: len(distinct_src(brokers)) >= n1)
        print(f"ok: the survivors predicted all {n1} ticks")

        ticks.junk(55, 100_000)
        wm = watermarks(brokers, "ticks")
        first = min(int(s.split("/")[2]) for s in ticks.src if s.split("/")[1] == "0")
        if not all(lo > 0 for lo, _ in wm):
            fail(f"retention dropped nothing: watermarks {wm}")
        wait_for("the junk to be consumed and checkpointed", 90,
                 lambda: committed(brokers) == [hi for _, hi in watermarks(brokers, "ticks")])
        print(f"ok: junk pushed the low watermarks to {[lo for lo, _ in wm]} (first tick of "
              f"partition 0 was at {first}); the group checkpointed past it")

        start("d", "d.db")
        wait_for("a, b, d to share the 12 partitions", 60, lambda: settled(live()))
        print(f"ok: d joined with an empty state file: {assigned(live())}")
        ticks.feed(3000, 1500)
        th = ticks.feed_bg(3000, 1500)
        time.sleep(1)
        members["b"].stop()
        time.sleep(1)
        members["d"].kill()
        th.join()
        wait_for("a alone to hold the 12 partitions", 60, lambda: assigned(live()) == [PARTS])
        n3 = len(ticks.rows)
        wait_for("every tick so far predicted", 90,
                 lambda: len(distinct_src(brokers)) >= len(ticks.src))
        print(f"ok: the group shrank to a, which predicted all {n3} ticks")

        start("b", "b.db")
        start("e", "e.db")
        wait_for("a, b, e to share the 12 partitions", 60, lambda: settled(live()))
        print(f"ok: grown back to three: {assigned(live())}")
        ticks.feed(3000, 1500)
        wait_for("every tick predicted", 90,
                 lambda: len(distinct_src(brokers)) >= len(ticks.src))
        resets = sum(int(m.metric("state_resets_total") or 0) for m in live())
        if resets:
            fail(f"{resets} state resets")
        for m in live():
            m.stop()
    finally:
        for m in members.values():
            if m.alive():
                m.kill()
    for w in "de":
        if "from the changelog" not in open(members[w].log).read():
            fail(f"{w} (no state file) restored nothing from the changelog")
    csv_path = os.path.join(tmp, "ticks.csv")
    ticks.csv(csv_path)
    rep = os.path.join(tmp, "replay.csv")
    subprocess.run([tc, "replay", "--model", model, "--input", csv_path, "--output", rep],
                   check=True, stderr=subprocess.DEVNULL)
    check(brokers, ticks, rep, model)


if __name__ == "__main__":
    if sys.argv[1] != "run":
        sys.exit("e2e_group.py: unknown command " + sys.argv[1])
    run(*sys.argv[2:6])
