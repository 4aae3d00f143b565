#!/usr/bin/python3
"""e2e_run.py: the Python side of tests/e2e_run.sh (an outside Kafka client, confluent_kafka).
Not a test by itself. Subcommands:

  model PATH L H SEED              write a random contract model (safetensors, by hand)
  publish-b BROKERS TOPIC CSV EXP  publish synthetic ticks (qty, quotes, an RFC 3339 ts, an
                                   out-of-order tick) interleaved with malformed messages; write
                                   the valid-JSON ticks as CSV (for replay) and the expected dead
                                   letters as JSON to EXP
  publish-csv BROKERS TOPIC CSV    publish a CSV's ticks as JSON, keyed by sym
  collect BROKERS TOPIC N SECS OUT read TOPIC from the start until N messages (or SECS), then 1 s
                                   more to catch extras; one JSON line per message to OUT:
                                   partition, offset, key (text), key_b64 (the key's bytes), value
  check-preds PREDS [--exclude OLD] REPLAY...
                                   one prediction per replayed row, equal values (pred_std,
                                   lo_px, hi_px identical when the replay has them), n increasing
                                   (messages also in OLD, an earlier collect, are left out)
  check-dlq DLQ EXP                the dead letters expected, with reasons and fields
  committed BROKERS GROUP TOPIC     print the sum of the group's committed offsets on TOPIC
  check-stats STATS TICKS_IN PREDS the last stats object has every documented field and totals
  check-process URL PID            /metrics' process_* figures against what /proc says of PID
"""
import base64, csv, json, os, socket, struct, sys, time


def model(path, L, H, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    t = {}
    for k in range(L):
        D = 4 if k == 0 else H
        t[f"lstm.weight_ih_l{k}"] = rng.normal(0, 0.4, (4 * H, D))
        t[f"lstm.weight_hh_l{k}"] = rng.normal(0, 0.4, (4 * H, H))
        t[f"lstm.bias_ih_l{k}"] = rng.normal(0, 0.1, (4 * H,))
        t[f"lstm.bias_hh_l{k}"] = rng.normal(0, 0.1, (4 * H,))
    t["head.weight"] = rng.normal(0, 0.4, (1, H))
    t["head.bias"] = rng.normal(0, 0.1, (1,))
    t["features.mean"] = np.array([0, 0.5, 0.1, 0.001])
    t["features.std"] = np.array([0.002, 1, 0.5, 0.001])
    t["target.mean"] = np.array([0.0])
    t["target.std"] = np.array([0.002])
    hdr = {"__metadata__": {"tickcast.format": "1",
                            "tickcast.features": "ret,log_qty,log_dt,spread"}}
    data = b""
    for k, v in t.items():
        b = np.asarray(v, dtype="<f4").tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(np.shape(v)),
                  "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


def producer(brokers):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                     "enable.idempotence": True})


def publish_b(brokers, topic, csv_out, exp_out):
    import random
    rnd = random.Random(11)
    syms = ["B.EUR", "B.JPY", "B-BTC", "B_X"]
    px = {s: 50 + 50 * rnd.random() for s in syms}
    ts = {s: 1700000000000000000 for s in syms}
    p = producer(brokers)
    rows = ["sym,ts,px,qty,bid,ask"]
    expect = []  # (reason, payload, key) in publish order

    def bad(reason, payload, key):
        p.produce(topic, payload, key=key)
        expect.append({"reason": reason, "payload_len": len(payload or b""),
                       "key": key.decode() if key is not None else None})

    for i in range(160):
        s = syms[rnd.randrange(len(syms))]
        px[s] *= 1 + 0.002 * rnd.gauss(0, 1)
        ts[s] += rnd.randrange(1, 5 * 10**9)
        o = {"sym": s, "ts": ts[s], "px": px[s]}
        q = b = a = ""
        if rnd.random() < 0.6:
            o["qty"] = q = rnd.choice([0, 1, 2.5, 100])
        if rnd.random() < 0.5:
            o["bid"], o["ask"] = b, a = px[s] * 0.999, px[s] * 1.0011
        if i == 30:  # the same instant in RFC 3339
            o["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts[s] // 10**9)) + \
                ".%09dZ" % (ts[s] % 10**9)
        rows.append(",".join([s, str(o["ts"]), repr(px[s]), str(q), repr(b) if b else "",
                              repr(a) if a else ""]))
        p.produce(topic, json.dumps(o).encode(), key=s.encode())
        if i == 50:  # a tick older than the last accepted one of its instrument
            old = {"sym": s, "ts": ts[s] - 10**9, "px": px[s]}
            rows.append(f"{s},{old['ts']},{px[s]!r},,,")
            p.produce(topic, json.dumps(old).encode(), key=s.encode())
            expect.append({"reason": "out_of_order", "payload_len": len(json.dumps(old)),
                           "key": s})
        if i == 10: bad("bad_json", b"{not json", None)
        if i == 20: bad("bad_px", json.dumps({"sym": s, "ts": ts[s], "px": -3}).encode(), s.encode())
        if i == 40: bad("key_mismatch", json.dumps({"sym": s, "ts": ts[s], "px": 1}).encode(), b"OTHER")
        if i == 60: bad("missing_field", json.dumps({"sym": s, "px": 1}).encode(), s.encode())
        if i == 70: bad("bad_ts", json.dumps({"sym": s, "ts": "yesterday", "px": 1}).encode(), None)
        if i == 80: bad("bad_sym", b'{"sym":"has space","ts":1,"px":1}', None)
        if i == 90: bad("bad_json", b"\xff\xfe binary \x00 junk", None)
        if i == 95: bad("bad_json", None, s.encode())  # a tombstone: no value at all
        if i == 100:  # a huge bad message: cut in the dead letter
            bad("bad_json", b'{"sym":"' + b"A" * 20000 + b'"', None)
        p.poll(0)
    if p.flush(20):
        sys.exit("publish-b: flush timed out")
    open(csv_out, "w").write("\n".join(rows) + "\n")
    json.dump(expect, open(exp_out, "w"))


def publish_csv(brokers, topic, path):
    p = producer(brokers)
    for r in csv.DictReader(open(path)):
        o = {"sym": r["sym"], "ts": int(r["ts"]), "px": float(r["px"])}
        p.produce(topic, json.dumps(o).encode(), key=r["sym"].encode())
        p.poll(0)
    if p.flush(20):
        sys.exit("publish-csv: flush timed out")


def collect(brokers, topic, n, secs, out):
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": brokers, "group.id": "e2e-collect",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    # Assign every partition from the start: no group join, so no rebalance delay.
    md = c.list_topics(topic, timeout=10).topics[topic]
    if md.error is not None:
        sys.exit(f"collect {topic}: {md.error}")
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    got = []
    deadline = time.time() + secs
    extra_until = None
    while time.time() < deadline:
        if extra_until is None and len(got) >= n:
            extra_until = time.time() + 1.0
        if extra_until is not None and time.time() > extra_until:
            break
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                print("collect:", m.error(), file=sys.stderr)
            continue
        k = m.key()
        got.append({"partition": m.partition(), "offset": m.offset(),
                    "key": k.decode(errors="replace") if k else None,
                    "key_b64": base64.b64encode(k).decode() if k is not None else None,
                    "value": m.value().decode()})
    c.close()
    with open(out, "w") as f:
        for g in got:
            f.write(json.dumps(g) + "\n")
    print(f"collect {topic}: {len(got)} messages (wanted {n})")


def committed(brokers, group, topic):
    """Prints the sum of the group's committed offsets on topic (OffsetFetch, no join)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": group})
    md = c.list_topics(topic, timeout=10).topics[topic]
    offs = c.committed([TopicPartition(topic, p) for p in md.partitions], timeout=10)
    c.close()
    print(sum(max(o.offset, 0) for o in offs))


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def check_preds(preds_path, replays):
    exact = replays[0] == "--exact"  # the same printed values as the replay's, not within 1e-7
    if exact:
        replays = replays[1:]
    exclude = set()
    if replays[0] == "--exclude":  # messages already checked in an earlier phase
        exclude = {(m["partition"], m["offset"]) for m in map(json.loads, open(replays[1]))}
        replays = replays[2:]
    preds = [m for m in map(json.loads, open(preds_path))
             if (m["partition"], m["offset"]) not in exclude]
    want = {}
    for rp in replays:
        for r in csv.DictReader(open(rp)):
            key = (r["sym"], int(r["n"]))
            if key in want:
                fail(f"{rp}: duplicate replay row {key}")
            want[key] = r
    seen_src, seen = set(), set()
    last_n = {}
    worst = 0.0
    for m in preds:
        v = json.loads(m["value"])
        if m["key"] != v["sym"]:
            fail(f"prediction key {m['key']!r} != sym {v['sym']!r}")
        if v["src"] in seen_src:
            fail(f"two predictions for src {v['src']}")
        seen_src.add(v["src"])
        k = (v["sym"], v["n"])
        if k in seen:
            fail(f"two predictions for {k}")
        seen.add(k)
        # Per instrument, in the order the output partition holds them, n goes 1, 2, 3, ...
        if v["n"] != last_n.get(v["sym"], 0) + 1:
            fail(f"{v['sym']}: n {v['n']} after {last_n.get(v['sym'], 0)} (order broken)")
        last_n[v["sym"]] = v["n"]
        r = want.get(k)
        if r is None:
            fail(f"prediction {k} has no replay row")
        if int(r["ts"]) != v["ts"] or float(r["px"]) != v["px"]:
            fail(f"{k}: ts/px {v['ts']}/{v['px']} vs replay {r['ts']}/{r['px']}")
        d = abs(float(r["pred_ret"]) - v["pred_ret"])
        tol = 0 if exact else 1e-7 * max(1.0, abs(v["pred_ret"]) * 1e4)
        if d > tol:
            fail(f"{k}: pred_ret {v['pred_ret']!r} vs replay {r['pred_ret']} (diff {d:.3g})")
        if abs(float(r["pred_px"]) - v["pred_px"]) > (0 if exact else 1e-8 * v["pred_px"]):
            fail(f"{k}: pred_px {v['pred_px']!r} vs replay {r['pred_px']}")
        # The scale head's fields: present exactly when the replay has them, and identical.
        for f in ("pred_std", "lo_px", "hi_px"):
            if (f in r) != (f in v):
                fail(f"{k}: {f} in replay {f in r}, in the prediction {f in v}")
            if f in r and float(r[f]) != v[f]:
                fail(f"{k}: {f} {v[f]!r} vs replay {r[f]}")
        worst = max(worst, d)
    missing = set(want) - seen
    if missing:
        fail(f"{len(missing)} replayed ticks have no prediction, e.g. {sorted(missing)[:3]}")
    print(f"ok: {len(preds)} predictions = replay rows, one per src, n in order, "
          f"max |d pred_ret| {worst:.3g}")


def check_dlq(dlq_path, exp_path):
    got = [json.loads(l) for l in open(dlq_path)]
    exp = json.load(open(exp_path))
    if len(got) != len(exp):
        fail(f"{len(got)} dead letters, expected {len(exp)}: "
             f"{[json.loads(g['value'])['reason'] for g in got]}")
    recs = [json.loads(g["value"]) for g in got]
    for d in recs:
        for f in ("reason", "error", "src", "key", "time", "len", "payload", "truncated"):
            if f not in d:
                fail(f"dead letter without {f}: {d}")
        if not d["src"].startswith("ticks/") or len(d["src"].split("/")) != 3:
            fail(f"dead letter src {d['src']!r}")
        if not d["error"] or "\n" in d["error"]:
            fail(f"dead letter error text {d['error']!r}")
        if abs(d["time"] / 1000 - time.time()) > 600:
            fail(f"dead letter time {d['time']} is not now in ms")
    # Match by (reason, len, key): the dead-letter topic's partitions reorder them.
    want = sorted((e["reason"], e["payload_len"], e["key"] or "") for e in exp)
    have = sorted((d["reason"], d["len"], d["key"] or "") for d in recs)
    if want != have:
        fail(f"dead letters {have} != expected {want}")
    big = [d for d in recs if d["len"] > 10000]
    if len(big) != 1 or not big[0]["truncated"] or len(big[0]["payload"]) != 4096:
        fail(f"the 20 KB message was not cut to 4096 bytes: {[(d['len'], len(d['payload'])) for d in big]}")
    binary = [d for d in recs if d.get("payload_encoding") == "base64"]
    if len(binary) != 1:
        fail(f"expected exactly the binary payload in base64, found {len(binary)}")
    px = [d for d in recs if d["reason"] == "bad_px"][0]
    if "px" not in px["error"] or px["truncated"] or json.loads(px["payload"])["px"] != -3:
        fail(f"bad_px dead letter {px}")
    tomb = [d for d in recs if d["len"] == 0]
    if len(tomb) != 1 or tomb[0]["payload"] != "" or "empty message" not in tomb[0]["error"]:
        fail(f"tombstone dead letter {tomb}")
    print(f"ok: {len(recs)} dead letters with the right reasons, lengths, keys, cut and encoding")


def check_stats(path, ticks_in, preds):
    recs = [json.loads(json.loads(l)["value"]) for l in open(path)]
    if not recs:
        fail("no stats messages")
    s = recs[-1]
    for f in ("time", "uptime_s", "version", "model", "ticks_in", "predictions_out", "rejected",
              "instruments", "rate_1s", "rate_60s", "latency_us", "lag", "producer_queue",
              "delivery_errors", "rebalances", "handoffs_out", "handoffs_in",
              "checkpoint_age_ms", "cpu_s", "rss_bytes"):
        if f not in s:
            fail(f"stats without {f}: {s}")
    for f in ("p50", "p99", "p999", "max"):
        if f not in s["latency_us"]:
            fail(f"stats latency_us without {f}")
    if s["ticks_in"] != ticks_in or s["predictions_out"] != preds:
        fail(f"stats ticks_in {s['ticks_in']} predictions_out {s['predictions_out']}, expected "
             f"{ticks_in} {preds}")
    if s["rejected"].get("bad_px") != 1 or s["rejected"].get("out_of_order") != 1:
        fail(f"stats rejected {s['rejected']}")
    host, _, pid = s.get("member", "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or {r.get("member") for r in recs} != {s["member"]}:
        fail(f"stats member {s.get('member')!r}, expected {socket.gethostname()}:PID in every message")
    if len(s["model"]) != 16 or s["delivery_errors"] != 0 or s["rebalances"] < 1:
        fail(f"stats model/delivery_errors/rebalances {s}")
    lat = [r for r in recs if r["latency_us"]["p50"] is not None]
    if not lat:
        fail("no stats message with latency figures")
    l = lat[0]["latency_us"]
    if not (0 < l["p50"] <= l["p99"] <= l["p999"] <= l["max"]):
        fail(f"latency quantiles out of order: {l}")
    if set(s["lag"]) != {"0", "1", "2", "3"}:
        fail(f"stats lag partitions {s['lag']}")
    # The process's CPU time only grows, and no more than the cores allow since the start.
    cpu = [r["cpu_s"] for r in recs]
    ncpu = os.cpu_count()
    if not (0 < cpu[0] and all(a <= b for a, b in zip(cpu, cpu[1:]))
            and cpu[-1] <= s["uptime_s"] * ncpu + 0.5):
        fail(f"stats cpu_s {cpu} (uptime {s['uptime_s']} s, {ncpu} cores)")
    if not (1 << 20 < s["rss_bytes"] < 1 << 34):
        fail(f"stats rss_bytes {s['rss_bytes']}")
    print(f"ok: {len(recs)} stats messages, last: ticks_in {s['ticks_in']}, latency {l}, "
          f"cpu {s['cpu_s']:.3f} s, rss {s['rss_bytes'] >> 20} MiB")


def proc_cpu_s(pid):
    """utime + stime of pid in seconds, from /proc (whole clock ticks)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def check_process(url, pid):
    """Each process_* figure of /metrics against /proc/PID, read just before and after."""
    import urllib.request
    tick = 1 / os.sysconf("SC_CLK_TCK")
    cpu0 = proc_cpu_s(pid)
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    cpu1 = proc_cpu_s(pid)
    m = {}
    for line in text.splitlines():
        if line.startswith("process_"):
            k, v = line.split()
            m[k] = float(v)
    want = {"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
            "process_virtual_memory_bytes", "process_resident_memory_bytes",
            "process_start_time_seconds"}
    if set(m) != want or "# TYPE process_cpu_seconds_total counter" not in text:
        fail(f"/metrics process figures {sorted(m)}, expected {sorted(want)}")
    # /proc counts whole clock ticks (rounded down), the daemon's figure is exact.
    if not (cpu0 - tick <= m["process_cpu_seconds_total"] <= cpu1 + 2 * tick):
        fail(f"process_cpu_seconds_total {m['process_cpu_seconds_total']} outside /proc's "
             f"{cpu0} .. {cpu1}")
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    vm, rss = (int(status[k].split()[0]) * 1024 for k in ("VmSize", "VmRSS"))
    if abs(m["process_virtual_memory_bytes"] - vm) > vm / 10:
        fail(f"process_virtual_memory_bytes {m['process_virtual_memory_bytes']}, /proc VmSize {vm}")
    if abs(m["process_resident_memory_bytes"] - rss) > rss / 4:
        fail(f"process_resident_memory_bytes {m['process_resident_memory_bytes']}, VmRSS {rss}")
    limit = [l.split()[3] for l in open(f"/proc/{pid}/limits") if l.startswith("Max open files")][0]
    if m["process_max_fds"] != float(limit):
        fail(f"process_max_fds {m['process_max_fds']}, /proc limits {limit}")
    fds = len(os.listdir(f"/proc/{pid}/fd"))  # the scrape's own connection may be gone by now
    if not (fds - 3 <= m["process_open_fds"] <= fds + 3):
        fail(f"process_open_fds {m['process_open_fds']}, /proc has {fds}")
    # Start: the process's start after boot plus the boot time, as ps computes it.
    start = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    btime = [int(l.split()[1]) for l in open("/proc/stat") if l.startswith("btime")][0]
    want_start = btime + start / os.sysconf("SC_CLK_TCK")
    # The same formula on both sides; the boot time may move by a second if the clock is stepped.
    if abs(m["process_start_time_seconds"] - want_start) > 1.05:
        fail(f"process_start_time_seconds {m['process_start_time_seconds']}, /proc {want_start}")
    if not (0 < time.time() - m["process_start_time_seconds"] < 3600):
        fail(f"process_start_time_seconds {m['process_start_time_seconds']} is not recent")
    print(f"ok: /metrics process figures agree with /proc: cpu {m['process_cpu_seconds_total']:.3f}"
          f" s, {int(m['process_open_fds'])} of {int(m['process_max_fds'])} fds, "
          f"rss {int(m['process_resident_memory_bytes']) >> 20} MiB")


def main():
    a = sys.argv[1:]
    if a[0] == "model": model(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif a[0] == "publish-b": publish_b(*a[1:5])
    elif a[0] == "publish-csv": publish_csv(*a[1:4])
    elif a[0] == "collect": collect(a[1], a[2], int(a[3]), float(a[4]), a[5])
    elif a[0] == "committed": committed(a[1], a[2], a[3])
    elif a[0] == "check-preds": check_preds(a[1], a[2:])
    elif a[0] == "check-dlq": check_dlq(a[1], a[2])
    elif a[0] == "check-stats": check_stats(a[1], int(a[2]), int(a[3]))
    elif a[0] == "check-process": check_process(a[1], int(a[2]))
    else: sys.exit(f"e2e_run.py: unknown subcommand {a[0]}")


if __name__ == "__main__":
    main()
