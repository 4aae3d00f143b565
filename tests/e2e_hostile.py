#!/usr/bin/python3
"""e2e_hostile.py: the Python side of tests/e2e_hostile.sh (confluent_kafka as the attacker's
client). Not a test by itself. Subcommands:

  produce BROKERS TOPIC SPEC...   one message per SPEC, a Python expression giving (key, value)
                                  as bytes or None, e.g. "(b'K' * 500000, b'{...}')"; keys go to
                                  the partition murmur2 picks, as Kafka tools do
  dlq BROKERS TOPIC N SECS OUT    reads TOPIC until N messages (or SECS) and writes one JSON line
                                  per dead letter: the record, its value's size and its key's size
  offsets DB                      prints the sum of the next offsets stored in the state file DB
"""
import json, sys, time


def produce(brokers, topic, specs):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": brokers, "partitioner": "murmur2_random",
                  "message.max.bytes": 2000000})
    for s in specs:
        key, value = eval(s)
        p.produce(topic, value, key=key)
        p.poll(0)
    if p.flush(20):
        sys.exit("produce: flush timed out")


def dlq(brokers, topic, n, secs, out):
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": brokers, "group.id": "e2e-hostile",
                  "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10).topics[topic]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    got, deadline = [], time.time() + secs
    while time.time() < deadline and len(got) < n:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        got.append({"record": json.loads(m.value()), "value_len": len(m.value()),
                    "key_len": len(m.key() or b"")})
    c.close()
    with open(out, "w") as f:
        for g in got:
            f.write(json.dumps(g) + "\n")
    print(f"dlq {topic}: {len(got)} dead letters (wanted {n})")


def offsets(db):
    import sqlite3
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    print(c.execute("SELECT coalesce(sum(next_offset), 0) FROM offsets").fetchone()[0])


def main():
    a = sys.argv[1:]
    if a[0] == "produce": produce(a[1], a[2], a[3:])
    elif a[0] == "dlq": dlq(a[1], a[2], int(a[3]), float(a[4]), a[5])
    elif a[0] == "offsets": offsets(a[1])
    else: sys.exit(f"e2e_hostile.py: unknown subcommand {a[0]}")


if __name__ == "__main__":
    main()
