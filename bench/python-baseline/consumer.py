#!/usr/bin/env python3
"""The baseline `warehouse bench scale` measures against: a typical batched Python consumer.

What a data team would write first with redis-py and psycopg: XREADGROUP a batch of order-line
events, upsert them into one table with executemany (the newest version wins), HINCRBY a few
KPIs, commit, XACK. No SCD2, no dimensions, no retractions, no dead letters: it does less than
`warehouse consume` per event, on purpose, so the ratio flatters it rather than us.

    consumer.py --redis-url URL --database-url URL --namespace NS [--consumers N] [--batch 1000]

Reads every partition's order-line stream of NAMESPACE from the start (its own group, created
afresh), until the group has nothing left to read or pending; prints one JSON object:
{"consumers": N, "events": E, "seconds": S, "events_per_s": R}.
"""
import argparse
import json
import multiprocessing
import sys
import time

import psycopg
import redis

GROUP = "python-baseline"

UPSERT = """
INSERT INTO py_order_lines AS f (order_id, line_number, customer_id, product_id, quantity, unit_price,
                                 discount, status, order_ts, updated_at, event_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (order_id, line_number) DO UPDATE SET
    customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity,
    unit_price = EXCLUDED.unit_price, discount = EXCLUDED.discount, status = EXCLUDED.status,
    order_ts = EXCLUDED.order_ts, updated_at = EXCLUDED.updated_at, event_id = EXCLUDED.event_id
WHERE (f.updated_at, f.event_id) < (EXCLUDED.updated_at, EXCLUDED.event_id)
"""

TABLE = """
CREATE TABLE py_order_lines (
    order_id text NOT NULL, line_number integer NOT NULL, customer_id text NOT NULL, product_id text NOT NULL,
    quantity integer NOT NULL, unit_price numeric NOT NULL, discount numeric NOT NULL, status text NOT NULL,
    order_ts timestamptz NOT NULL, updated_at timestamptz NOT NULL, event_id text NOT NULL,
    PRIMARY KEY (order_id, line_number))
"""


def streams_of(r, namespace):
    layout = r.hgetall(f"{namespace}:layout")
    partitions = int(layout.get(b"partitions", b"1"))
    return [f"{namespace}:{{p{p}}}:orders" for p in range(partitions)]


def setup(args):
    r = redis.Redis.from_url(args.redis_url)
    for stream in streams_of(r, args.namespace):
        try:
            r.xgroup_destroy(stream, GROUP)
        except redis.ResponseError:
            pass
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    r.delete(f"{args.namespace}:python-baseline:kpis")
    with psycopg.connect(args.database_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS py_order_lines")
        db.execute(TABLE)


def work(args, index, counter):
    r = redis.Redis.from_url(args.redis_url)
    streams = {s: ">" for s in streams_of(r, args.namespace)}
    kpis = f"{args.namespace}:python-baseline:kpis"
    done = 0
    with psycopg.connect(args.database_url) as db:
        while True:
            reply = r.xreadgroup(GROUP, f"py-{index}", streams, count=args.batch, block=200)
            if not reply:
                if idle(r, list(streams)):
                    break
                continue
            for stream, entries in reply:
                rows, revenue, lines = [], 0.0, 0
                for _, f in entries:
                    rows.append((f[b"order_id"].decode(), int(f[b"line_number"]), f[b"customer_id"].decode(),
                                 f[b"product_id"].decode(), int(f[b"quantity"]), f[b"unit_price"].decode(),
                                 f[b"discount"].decode(), f[b"status"].decode(), f[b"order_ts"].decode(),
                                 f[b"updated_at"].decode(), f[b"event_id"].decode()))
                    if f[b"status"] == b"placed":
                        lines += 1
                        revenue += int(f[b"quantity"]) * float(f[b"unit_price"]) * (1 - float(f[b"discount"]))
                # In key order, so that two consumers' transactions never wait for each other in a cycle.
                rows.sort(key=lambda row: (row[0], row[1]))
                with db.cursor() as cur:
                    cur.executemany(UPSERT, rows)
                db.commit()
                pipe = r.pipeline(transaction=False)
                pipe.hincrby(kpis, "order_lines", lines)
                pipe.hincrbyfloat(kpis, "revenue", revenue)
                pipe.hincrby(kpis, "events", len(entries))
                pipe.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
                pipe.execute()
                done += len(entries)
    with counter.get_lock():
        counter.value += done


def idle(r, streams):
    for stream in streams:
        for group in r.xinfo_groups(stream):
            if group["name"] == GROUP.encode() or group["name"] == GROUP:
                if group.get("lag") not in (0, None) or group["pending"] > 0:
                    return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    setup(args)
    counter = multiprocessing.Value("q", 0)
    start = time.monotonic()
    workers = [multiprocessing.Process(target=work, args=(args, i, counter)) for i in range(args.consumers)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        if any(w.exitcode not in (None, 0) for w in workers):
            for w in workers:
                w.kill()
            sys.exit("a consumer failed")
        time.sleep(0.05)
    if any(w.exitcode != 0 for w in workers):
        sys.exit("a consumer failed")
    seconds = time.monotonic() - start
    print(json.dumps({"consumers": args.consumers, "events": counter.value, "seconds": round(seconds, 3),
                      "events_per_s": round(counter.value / seconds, 1)}))


if __name__ == "__main__":
    main()
