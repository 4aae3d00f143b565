#!/usr/bin/python3
"""soak.py: `make soak` (tests/soak.sh): the daemon for several minutes at a steady rate, with
symbol churn (a window of 3,000 active instruments sliding around a universe of SOAK_UNIVERSE, more
than --max-instruments), a second group member joining and leaving (rebalances and hand-offs),
hostile messages (oversized and control-byte keys, far-future ticks, out-of-order ticks, bad JSON,
tombstones) and SIGHUPs (an unchanged model, a model of another shape, a FIFO at the model path).
Not part of `make test`: it takes minutes.

It asserts, for member A (up the whole time):
  - flat memory: after the warm-up (30 % of the run: the instrument table full, the first
    rebalances), the highest RSS of the second half of the rest exceeds that of the first half by
    at most SOAK_RSS_PCT (default 10 %);
  - no loop stall over SOAK_MAX_STALL_MS (default 50) after the warm-up, from A's own stall timer
    (loop_stall_max_ms in its stats messages);
  - exact counts: every input message has an output (a prediction or a dead letter) under its
    src, repeats only with equal content, per instrument n = 1..k without a gap; A's counters add
    up: ticks_in = predictions_out + rejected_total, rejected_total = dead_letters_out +
    dead_letters_failed, dead_letters_failed = 0.
Prints the figures, and one JSON line "soak: {...}" for docs/BENCHMARKS.md.

Usage: soak.py TICKCAST WORKDIR   (environment: SOAK_SECONDS 300, SOAK_RATE 5000 ticks/s,
SOAK_PARTITIONS 8, SOAK_INSTRUMENTS 10000 (--max-instruments), SOAK_UNIVERSE 12000, SOAK_WARMUP
0.3 of the run, SOAK_RSS_PCT 10, SOAK_MAX_STALL_MS 50)
"""
import json, os, random, signal, subprocess, sys, threading, time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_run import model  # noqa: E402  (the tests' contract-model writer)

TC, W = sys.argv[1], sys.argv[2]
SECS = float(os.environ.get("SOAK_SECONDS", 300))
RATE = float(os.environ.get("SOAK_RATE", 5000))
P = int(os.environ.get("SOAK_PARTITIONS", 8))
LIMIT = int(os.environ.get("SOAK_INSTRUMENTS", 10000))
UNIVERSE = int(os.environ.get("SOAK_UNIVERSE", 12000))
DLQ_P = 4
WARM = float(os.environ.get("SOAK_WARMUP", 0.3))
RSS_PCT = float(os.environ.get("SOAK_RSS_PCT", 10))
MAX_STALL = float(os.environ.get("SOAK_MAX_STALL_MS", 50))
H = 64
GROUP = "soak"
procs = []


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def start(args, logname):
    f = open(os.path.join(W, logname), "ab")
    p = subprocess.Popen(args, stdout=subprocess.PIPE if logname == "broker.log" else subprocess.DEVNULL,
                         stderr=f)
    procs.append(p)
    return p


def wait_log(name, text, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if text in open(os.path.join(W, name), errors="replace").read():
            return True
        time.sleep(0.1)
    return False


def member(name, extra):
    open(os.path.join(W, name + ".log"), "a").write(f"--- start {time.time():.1f}\n")
    return start([TC, "run", "--brokers", brokers, "--group", GROUP, "--model", live,
                  "--state", os.path.join(W, name + ".db"), "--http", "127.0.0.1:0",
                  "--max-instruments", str(LIMIT), "--stats-interval", "1000",
                  "--on-model-change", "keep", "-X", "consumer.session.timeout.ms=6000"] + extra,
                 name + ".log")


def stop(p, secs=15):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(secs)
    except subprocess.TimeoutExpired:
        p.kill()
        return -9


# ---- the traffic ----

class Traffic:
    """Ticks at RATE per second: an active window of symbols that slides (churn), wall-clock ts
    (each symbol's ticks in order), and about 0.5 % hostile messages."""

    def __init__(self):
        # Large batches: the embedded broker's retention counts batches as well as bytes, and
        # 5 ms batches left a partition with seconds of retention, which a rebalance outlasts.
        self.p = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                           "linger.ms": 100, "batch.num.messages": 10000,
                           "message.max.bytes": 2000000, "queue.buffering.max.messages": 500000})
        self.rnd = random.Random(7)
        self.sent = 0
        self.hostile = 0
        self.failed = 0
        self.stop = False
        self.px = {}
        self.window = 3000          # symbols active at once, sliding around the universe
        self.slide = 100.0          # symbols per second: one pass in UNIVERSE / 100 s
        self.last_ts = {}

    def dr(self, err, msg):
        if err:
            self.failed += 1

    def sym(self, i):
        return f"S{i:06d}.X"

    def hostile_msg(self, s, ts):
        r = self.rnd.randrange(7)
        good = {"sym": s, "ts": ts, "px": 1.0}
        if r == 0:
            return s.encode(), b"{not json"
        # Oversized keys (a mismatch: dead letters with the key cut), spread over the partitions:
        # the embedded broker keeps ~5 MiB per partition, and one key on one partition would
        # leave it only seconds of retention, which a rebalance outlasts.
        tail = str(self.rnd.randrange(10**9)).encode()
        if r == 1:
            return b"K" * 20000 + tail, json.dumps(good).encode()
        if r == 2:
            return b"\x01" * 5000 + tail, json.dumps(good).encode()  # six bytes each, escaped
        if r == 3:
            return s.encode(), json.dumps(dict(good, ts=9200000000000000000)).encode()  # 2262
        if r == 4:
            return s.encode(), json.dumps(dict(good, ts=ts - 10**9 * 3600)).encode()   # an hour old
        if r == 5:
            return s.encode(), None                                   # a tombstone
        return s.encode(), json.dumps(dict(good, px=-1)).encode()

    def run(self):
        t0 = time.time()
        n = 0
        while not self.stop:
            el = time.time() - t0
            want = int(el * RATE)
            if n >= want:
                time.sleep(0.002)
                continue
            base = int(el * self.slide)
            for _ in range(min(want - n, 2000)):
                i = (base + self.rnd.randrange(self.window)) % UNIVERSE
                s = self.sym(i)
                ts = max(time.time_ns(), self.last_ts.get(s, 0))
                if self.rnd.random() < 0.005:
                    key, val = self.hostile_msg(s, ts)
                    self.hostile += 1
                else:
                    self.last_ts[s] = ts
                    px = self.px.get(s, 100.0) * (1 + 0.001 * self.rnd.gauss(0, 1))
                    self.px[s] = px
                    key, val = s.encode(), json.dumps({"sym": s, "ts": ts, "px": px,
                                                       "qty": self.rnd.randrange(10)}).encode()
                while True:
                    try:
                        self.p.produce("ticks", val, key=key, on_delivery=self.dr)
                        break
                    except BufferError:
                        self.p.poll(0.05)
                n += 1
                self.sent += 1
            self.p.poll(0)
        self.p.flush(60)


# ---- what comes out ----

class Outputs:
    """Reads predictions and dead letters as they come (the embedded broker keeps only ~5 MiB per
    partition): per input src, the outputs seen; per instrument, the n of its predictions."""

    def __init__(self):
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": "soak-check",
                           "enable.auto.commit": False, "fetch.max.bytes": 10000000})
        tps = [TopicPartition("predictions", p, OFFSET_BEGINNING) for p in range(P)]
        tps += [TopicPartition("tickcast.dlq", p, OFFSET_BEGINNING) for p in range(DLQ_P)]
        self.c.assign(tps)
        self.seen = {}       # src -> (kind, sym, n)
        self.dups = 0
        self.bad_dups = []
        self.nset = {}       # sym -> set of n
        self.preds = self.dlq = 0
        self.max_dlq = 0
        self.next = {}       # (topic, partition) -> next offset expected
        self.skipped = 0     # output messages the broker dropped before they were read
        self.stop = False

    def run(self):
        while not self.stop:
            for m in self.c.consume(5000, 0.2):
                if m.error():
                    continue
                tp = (m.topic(), m.partition())
                if m.offset() > self.next.get(tp, 0):
                    self.skipped += m.offset() - self.next.get(tp, 0)
                self.next[tp] = m.offset() + 1
                v = json.loads(m.value())
                if m.topic() == "predictions":
                    self.preds += 1
                    out = ("p", v["sym"], v["n"], v["ts"])
                else:
                    self.dlq += 1
                    self.max_dlq = max(self.max_dlq, len(m.value()) + len(m.key() or b""))
                    out = ("d", v["reason"], v["len"], 0)
                src = v["src"]
                prev = self.seen.get(src)
                if prev is not None:
                    self.dups += 1
                    if prev != out:
                        self.bad_dups.append((src, prev, out))
                    continue
                self.seen[src] = out
                if out[0] == "p":
                    self.nset.setdefault(out[1], set()).add(out[2])
        self.c.close()


def watermarks(topic, n):
    c = Consumer({"bootstrap.servers": brokers, "group.id": "soak-wm"})
    w = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(n)]
    c.close()
    return w


class StatsA:
    """Member A's stats topic: stall per interval, the last object."""

    def __init__(self):
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": "soak-stats",
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition("soak.stats.a", 0, OFFSET_BEGINNING)])
        self.series = []
        self.stop = False

    def run(self):
        while not self.stop:
            m = self.c.poll(0.3)
            if m is None or m.error():
                continue
            s = json.loads(m.value())
            self.series.append((time.time(), s))
        self.c.close()


def metrics(port):
    import urllib.request
    out = {}
    for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode().splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, v = line.split(" ", 1)
            out[k] = float(v)
    return out


def missing_ranges(seen, wm):
    """(partition, first, last) of the input offsets without an output."""
    by = [bytearray(h) for _, h in wm]
    for src in seen:
        _, p, o = src.rsplit("/", 2)
        p, o = int(p), int(o)
        if p < len(by) and o < len(by[p]):
            by[p][o] = 1
    out = []
    for p, b in enumerate(by):
        o = 0
        while o < len(b):
            if not b[o]:
                e = o
                while e + 1 < len(b) and not b[e + 1]:
                    e += 1
                out.append((p, o, e))
                o = e
            o += 1
    return out


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    global brokers, live
    os.makedirs(W, exist_ok=True)
    m1, m3, live = (os.path.join(W, f) for f in ("m1.safetensors", "m3.safetensors", "live.safetensors"))
    model(m1, 1, H, 1)
    model(m3, 2, 8, 3)  # another shape: refused on SIGHUP
    with open(m1, "rb") as a, open(live, "wb") as b:
        b.write(a.read())
    topics = (f"ticks:{P},predictions:{P},tickcast.dlq:{DLQ_P},soak.stats.a:1,soak.stats.b:1,"
              f"{GROUP}.state:{P}")
    bp = start([TC, "broker", "--topics", topics], "broker.log")
    brokers = bp.stdout.readline().decode().strip()
    log(f"broker {brokers}; {SECS:.0f} s at {RATE:.0f} ticks/s over {P} partitions, "
        f"--max-instruments {LIMIT}, H={H}")
    a = member("a", ["--stats-topic", "soak.stats.a"])
    if not wait_log("a.log", "http on", 10) or not wait_log("a.log", "assigned ticks partitions", 30):
        sys.exit("member a did not start")
    port = int(open(os.path.join(W, "a.log")).read().split("(port ")[1].split(")")[0])
    out, stats, traffic = Outputs(), StatsA(), Traffic()
    threads = [threading.Thread(target=x.run, daemon=True) for x in (out, stats, traffic)]
    for t in threads:
        t.start()
    t0 = time.time()
    rss = []          # (t, kB)
    b = None
    b_next = t0 + 30  # member b joins at 30 s, stays 25 s, leaves for 20 s, ...
    hup_next = t0 + 12
    hups = rebal = 0
    kinds = ["unchanged", "other shape", "fifo"]
    while time.time() - t0 < SECS:
        now = time.time()
        rss.append((now - t0, rss_kb(a.pid)))
        if now >= b_next:
            if b is None:
                b = member("b", ["--stats-topic", "soak.stats.b"])
                b_next = now + 25
            else:
                stop(b)
                b = None
                b_next = now + 20
            rebal += 1
        if now >= hup_next:
            k = kinds[hups % 3]
            tmp = live + ".new"
            if k == "fifo":
                os.unlink(live)
                os.mkfifo(live)
            else:
                with open(m1 if k == "unchanged" else m3, "rb") as f, open(tmp, "wb") as g:
                    g.write(f.read())
                os.replace(tmp, live)
            a.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            if k != "unchanged":  # back to the running model for member b's starts
                with open(m1, "rb") as f, open(tmp, "wb") as g:
                    g.write(f.read())
                os.replace(tmp, live)
            hups += 1
            hup_next = now + 12
        time.sleep(1)
    traffic.stop = True
    threads[2].join()
    sent = traffic.sent
    log(f"traffic done: {sent} messages ({traffic.hostile} hostile), {traffic.failed} failed to send")
    if b is not None:
        stop(b)
    hi = sum(h for _, h in watermarks("ticks", P))
    deadline = time.time() + 120
    while time.time() < deadline and len(out.seen) < hi:
        time.sleep(1)
    time.sleep(3)
    ma = metrics(port)
    rc_a = stop(a, 20)
    out.stop = stats.stop = True
    threads[0].join()
    threads[1].join()

    # ---- checks ----
    fails = []
    lows = [l for l, _ in watermarks("ticks", P)]
    missing = hi - len(out.seen)
    if any(lows):
        log(f"note: input low watermarks {lows} (retention); every offset was still consumed")
    if out.skipped:
        fails.append(f"the checker fell behind: the broker dropped {out.skipped} output messages "
                     "before they were read (retention): lower SOAK_RATE")
    elif missing:
        gaps_in = missing_ranges(out.seen, watermarks("ticks", P))
        with open(os.path.join(W, "missing.txt"), "w") as f:
            f.writelines(f"ticks/{p}/{a}..{b}\n" for p, a, b in gaps_in)
        fails.append(f"{missing} input messages without an output ({len(out.seen)} of {hi}), "
                     f"in {len(gaps_in)} ranges, e.g. {gaps_in[:4]}")
    if out.bad_dups:
        fails.append(f"{len(out.bad_dups)} repeated srcs with other content, e.g. {out.bad_dups[:2]}")
    gaps = [(s, len(ns), max(ns)) for s, ns in out.nset.items() if len(ns) != max(ns)]
    if gaps:
        fails.append(f"{len(gaps)} instruments with gaps or repeats in n, e.g. {gaps[:3]}")
    rej = ma.get("tickcast_dead_letters_out_total", 0) + ma.get("tickcast_dead_letters_failed_total", 0)
    rtot = ma["tickcast_ticks_in_total"] - ma["tickcast_predictions_out_total"]
    if ma.get("tickcast_dead_letters_failed_total", 0):
        fails.append(f"A: {ma['tickcast_dead_letters_failed_total']:.0f} dead letters failed")
    if rej != rtot:
        fails.append(f"A: ticks_in - predictions_out = {rtot:.0f} but dead letters out + failed = {rej:.0f}")
    # Memory: after the warm-up, the high-water RSS of the second half of the rest of the run may
    # exceed that of its first half by at most RSS_PCT. Rebalances allocate transiently (the
    # changelog read, refetched input), and the allocator keeps what was freed, so the RSS steps
    # up to a level and stays there; a leak (the table once grew at every rebalance) keeps rising.
    warm_t = SECS * WARM
    mid_t = (warm_t + SECS) / 2
    first = [k for t, k in rss if warm_t <= t < mid_t]
    second = [k for t, k in rss if t >= mid_t]
    base = max(first, default=0)
    rss_max = max(second, default=0)
    rss_min = min(first + second, default=0)
    growth = 100.0 * (rss_max - base) / base if base else 0
    if growth > RSS_PCT:
        fails.append(f"RSS high-water {base} kB from {warm_t:.0f} to {mid_t:.0f} s, then "
                     f"{rss_max} kB ({growth:+.1f} %)")
    st = [(t - t0, s) for t, s in stats.series]
    stalls = [(t, s["loop_stall_max_ms"]) for t, s in st if t >= warm_t]
    worst = max(stalls, key=lambda x: x[1]) if stalls else (0, 0)
    # Intervals in which A rebalanced (or the one after): the revoke and assignment paths.
    at_rebal = {i for i in range(1, len(st)) if st[i][1]["rebalances"] != st[i - 1][1]["rebalances"]}
    at_rebal |= {i + 1 for i in at_rebal}
    quiet = [st[i][1]["loop_stall_max_ms"] for i in range(len(st))
             if st[i][0] >= warm_t and i not in at_rebal]
    rebal_stalls = [st[i][1]["loop_stall_max_ms"] for i in range(len(st))
                    if st[i][0] >= warm_t and i in at_rebal]
    over = [x for x in stalls if x[1] > MAX_STALL]
    if over:
        fails.append(f"{len(over)} stats intervals with a loop stall over {MAX_STALL:.0f} ms after "
                     f"warm-up, worst {worst[1]:.1f} ms at {worst[0]:.0f} s: "
                     f"{[(round(t), round(v, 1)) for t, v in over[:8]]}")
    last = st[-1][1] if st else {}
    res = {"seconds": SECS, "rate": RATE, "sent": sent, "hostile": traffic.hostile,
           "inputs": hi, "outputs": len(out.seen), "predictions": out.preds,
           "dead_letters": out.dlq, "repeats": out.dups, "instruments": len(out.nset),
           "max_dead_letter_bytes": out.max_dlq, "rebalances_b": rebal, "sighups": hups,
           "rss_kb_at_warmup": next((k for t, k in rss if t >= warm_t), 0), "rss_kb_min": rss_min,
           "rss_kb_max_first_half": base, "rss_kb_max_second_half": rss_max,
           "rss_growth_pct": round(growth, 1), "stall_max_ms_after_warmup": round(worst[1], 1),
           "stall_at_s": round(worst[0]), "stalls_over_50ms": last.get("loop_stalls"),
           "stall_max_ms_outside_rebalances": round(max(quiet, default=0), 1),
           "stall_max_ms_at_rebalances": round(max(rebal_stalls, default=0), 1),
           "intervals_at_rebalances_over_50ms": sum(x > 50 for x in rebal_stalls),
           "intervals_outside_over_50ms": sum(x > 50 for x in quiet),
           "a_ticks_in": ma["tickcast_ticks_in_total"],
           "a_instruments": ma["tickcast_instruments"],
           "a_rejected": {r: v for r, v in last.get("rejected", {}).items() if v},
           "a_exit": rc_a}
    print("soak: " + json.dumps(res), flush=True)
    with open(os.path.join(W, "rss.txt"), "w") as f:
        f.writelines(f"{t:.0f} {k}\n" for t, k in rss)
    with open(os.path.join(W, "stalls.txt"), "w") as f:
        f.writelines(f"{t:.0f} {s['loop_stall_max_ms']:.2f} {s['rebalances']}\n" for t, s in st)
    if rc_a != 0:
        fails.append(f"member a exited {rc_a}")
    for f in fails:
        print("FAIL:", f, flush=True)
    print("PASS soak" if not fails else f"soak: {len(fails)} failed", flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    sys.exit(code)
