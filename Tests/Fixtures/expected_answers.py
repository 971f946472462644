#!/usr/bin/env python3
"""The sample's expected answers, derived from data/*.csv independently of the Swift program.

Implements the input contract (data/README.md) on its own — Python's csv module, decimal.Decimal
with ROUND_HALF_UP (half away from zero), version resolution by event time — and writes
Tests/Fixtures/sample-expected.json. Run it after changing data/:

    python3 Tests/Fixtures/expected_answers.py
"""
import csv
import datetime
import json
import os
import re
from collections import defaultdict
from decimal import Decimal, ROUND_HALF_UP, InvalidOperation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data")

FILES = {
    "customers": "customers.csv", "suppliers": "suppliers.csv", "products": "products.csv",
    "orders": "orders.csv", "payments": "payments.csv", "inventory": "inventory_movements.csv",
}
REQUIRED = {
    "customers": ["customer_id", "country", "segment", "updated_at"],
    "suppliers": ["supplier_id", "name", "updated_at"],
    "products": ["product_id", "name", "category", "unit_price", "updated_at"],
    "orders": ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "status",
               "order_ts", "updated_at"],
    "payments": ["payment_id", "order_id", "method", "amount", "currency", "status", "paid_at"],
    "inventory": ["movement_id", "product_id", "movement_type", "quantity", "moved_at"],
}
VERSION = {"customers": "updated_at", "suppliers": "updated_at", "products": "updated_at", "orders": "updated_at",
           "payments": "paid_at", "inventory": "moved_at"}
KEY = {"customers": ["customer_id"], "suppliers": ["supplier_id"], "products": ["product_id"],
       "orders": ["order_id", "line_number"], "payments": ["payment_id"], "inventory": ["movement_id"]}
TS = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)$")
DEC = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_ts(text):
    if not TS.match(text):
        raise ValueError("timestamp")
    text = text.replace(" ", "T").replace("Z", "+00:00")
    match = re.search(r"([+-]\d{2})(\d{2})$", text)
    if match and ":" not in text[-6:]:
        text = text[: match.start()] + match.group(1) + ":" + match.group(2)
    elif re.search(r"[+-]\d{2}$", text):
        text += ":00"
    if "." in text:  # Python takes at most 6 fraction digits
        head, rest = text.split(".", 1)
        digits = re.match(r"\d+", rest).group(0)
        text = head + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
    return datetime.datetime.fromisoformat(text).astimezone(datetime.timezone.utc)


def dec(text):
    if not DEC.match(text):
        raise ValueError("decimal")
    return Decimal(text)


def check(entity, row):
    """Raises ValueError when the row breaks the contract; returns the canonical tuple otherwise."""
    for column in REQUIRED[entity]:
        if not row.get(column, "").strip():
            raise ValueError(f"{column} required")
    canon = {}
    for column, value in row.items():
        value = value or ""
        canon[column] = value
    if entity == "customers":
        parse_ts(row["updated_at"].strip())
        if row.get("signup_date", "").strip():
            datetime.date.fromisoformat(row["signup_date"].strip())
    elif entity == "suppliers":
        parse_ts(row["updated_at"].strip())
        if row.get("lead_time_days", "").strip() and int(row["lead_time_days"]) < 0:
            raise ValueError("lead_time_days")
        if row.get("rating", "").strip() and dec(row["rating"].strip()) < 0:
            raise ValueError("rating")
    elif entity == "products":
        parse_ts(row["updated_at"].strip())
        if dec(row["unit_price"].strip()) < 0:
            raise ValueError("unit_price")
        if row.get("unit_cost", "").strip() and dec(row["unit_cost"].strip()) < 0:
            raise ValueError("unit_cost")
    elif entity == "orders":
        if int(row["line_number"]) < 1 or int(row["quantity"]) < 1:
            raise ValueError("line_number/quantity")
        if dec(row["unit_price"].strip()) < 0:
            raise ValueError("unit_price")
        discount = dec(row["discount"].strip()) if row.get("discount", "").strip() else Decimal(0)
        if not (Decimal(0) <= discount < Decimal(1)):
            raise ValueError("discount")
        if row["status"].strip().lower() not in ("placed", "shipped", "delivered", "cancelled", "returned"):
            raise ValueError("status")
        parse_ts(row["order_ts"].strip())
        parse_ts(row["updated_at"].strip())
    elif entity == "payments":
        if dec(row["amount"].strip()) < 0:
            raise ValueError("amount")
        if not re.match(r"^[A-Za-z]{3}$", row["currency"].strip()):
            raise ValueError("currency")
        if row["status"].strip().lower() not in ("authorized", "captured", "failed", "refunded"):
            raise ValueError("status")
        parse_ts(row["paid_at"].strip())
    elif entity == "inventory":
        if row["movement_type"].strip().lower() not in ("receipt", "sale", "return", "adjustment"):
            raise ValueError("movement_type")
        if int(row["quantity"]) == 0:
            raise ValueError("quantity")
        if row.get("unit_cost", "").strip() and dec(row["unit_cost"].strip()) < 0:
            raise ValueError("unit_cost")
        parse_ts(row["moved_at"].strip())
    return row


def canonical(entity, row):
    """A tuple equal for rows that mean the same thing (for exact-duplicate detection)."""
    out = []
    for column in sorted(row):
        value = (row[column] or "")
        if column in ("updated_at", "paid_at", "moved_at", "order_ts"):
            value = parse_ts(value.strip()).isoformat()
        elif column in ("unit_price", "unit_cost", "amount", "discount", "rating") and value.strip():
            value = str(Decimal(value.strip()).normalize())
        elif column in ("status", "movement_type"):
            value = value.strip().lower()
        out.append((column, value))
    return tuple(out)


def load(entity):
    path = os.path.join(DATA, FILES[entity])
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        stats = {"read": 0, "published": 0, "duplicates": 0, "rejected": 0}
        good, seen, rejected = [], set(), []
        line = 2
        for record in reader:
            start = line
            line += 1 + sum(field.count("\n") for field in record)
            stats["read"] += 1
            if len(record) != len(header):
                stats["rejected"] += 1
                rejected.append(f"{FILES[entity]}:{start}")
                continue
            row = dict(zip(header, record))
            try:
                check(entity, row)
            except (ValueError, InvalidOperation, KeyError):
                stats["rejected"] += 1
                rejected.append(f"{FILES[entity]}:{start}")
                continue
            key = canonical(entity, row)
            if key in seen:
                stats["duplicates"] += 1
                continue
            seen.add(key)
            stats["published"] += 1
            row["_time"] = parse_ts(row[VERSION[entity]].strip())
            good.append(row)
    return good, stats, rejected


def latest(rows, entity):
    best = {}
    for row in rows:
        key = tuple(row[k] for k in KEY[entity])
        if key not in best or row["_time"] > best[key]["_time"]:
            best[key] = row
    return best


def version_at(history, instant):
    """The version valid at `instant`; the first version when `instant` precedes them all."""
    ordered = sorted(history, key=lambda r: r["_time"])
    chosen = ordered[0]
    for version in ordered:
        if version["_time"] <= instant:
            chosen = version
    return chosen


def money(value):
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def main():
    data, files, rejected = {}, {}, []
    for entity in FILES:
        rows, stats, bad = load(entity)
        data[entity] = rows
        files[FILES[entity]] = stats
        rejected += bad

    customers = defaultdict(list)
    for row in data["customers"]:
        customers[row["customer_id"]].append(row)
    products = defaultdict(list)
    for row in data["products"]:
        products[row["product_id"]].append(row)

    lines = latest(data["orders"], "orders")
    revenue = Decimal(0)
    revenue_lines = 0
    by_month, by_seg_was, by_seg_is, by_cat, by_state, by_product = (defaultdict(Decimal) for _ in range(6))
    status_counts = {s: 0 for s in ("placed", "shipped", "delivered", "cancelled", "returned")}
    for line in lines.values():
        status = line["status"].strip().lower()
        status_counts[status] += 1
        if status not in ("placed", "shipped", "delivered"):
            continue
        discount = Decimal(line["discount"].strip()) if line["discount"].strip() else Decimal(0)
        net = (Decimal(int(line["quantity"])) * Decimal(line["unit_price"].strip()) * (1 - discount)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        order_ts = parse_ts(line["order_ts"].strip())
        revenue += net
        revenue_lines += 1
        by_month[order_ts.strftime("%Y-%m")] += net
        customer_history = customers.get(line["customer_id"])
        if customer_history:
            was = version_at(customer_history, order_ts)
            now = max(customer_history, key=lambda r: r["_time"])
            by_seg_was[was["segment"]] += net
            by_seg_is[now["segment"]] += net
            by_state[was["state"]] += net
        else:
            by_seg_was["unknown"] += net
            by_seg_is["unknown"] += net
            by_state["unknown"] += net
        product_history = products.get(line["product_id"])
        by_cat[version_at(product_history, order_ts)["category"] if product_history else "unknown"] += net
        by_product[line["product_id"]] += net

    top = sorted(by_product.items(), key=lambda item: (-item[1], item[0]))[:20]
    payments = latest(data["payments"], "payments")
    by_method, by_status = {}, {}
    for payment in payments.values():
        amount = Decimal(payment["amount"].strip())
        for table, name in ((by_method, payment["method"]), (by_status, payment["status"].strip().lower())):
            entry = table.setdefault(name, {"count": 0, "amount": Decimal(0)})
            entry["count"] += 1
            entry["amount"] += amount
    on_hand = defaultdict(int)
    for movement in latest(data["inventory"], "inventory").values():
        on_hand[movement["product_id"]] += int(movement["quantity"])
    lowest = sorted(on_hand.items(), key=lambda item: (item[1], item[0]))[:20]

    expected = {
        "replay": {
            "files": files,
            "events": sum(stats["published"] for stats in files.values()),
            "rejected": sorted(rejected),
        },
        "summary": {
            "revenue": {
                "total": money(revenue), "lines": revenue_lines,
                "by_month": {k: money(v) for k, v in sorted(by_month.items())},
                "by_segment_as_was": {k: money(v) for k, v in sorted(by_seg_was.items())},
                "by_segment_as_is": {k: money(v) for k, v in sorted(by_seg_is.items())},
                "by_category_as_was": {k: money(v) for k, v in sorted(by_cat.items())},
                "by_state_as_was": {k: money(v) for k, v in sorted(by_state.items())},
            },
            "top_products": [{"product_id": k, "revenue": money(v)} for k, v in top],
            "payments": {
                "by_method": {k: {"count": v["count"], "amount": money(v["amount"])} for k, v in sorted(by_method.items())},
                "by_status": {k: {"count": v["count"], "amount": money(v["amount"])} for k, v in sorted(by_status.items())},
            },
            "lines_by_status": status_counts,
            "inventory": {
                "total_on_hand": sum(on_hand.values()),
                "lowest": [{"product_id": k, "on_hand": v} for k, v in lowest],
            },
            "counts": {
                "orders": len({line["order_id"] for line in lines.values()}),
                "order_lines": len(lines),
                "customers": len(customers),
                "products": len(products),
                "suppliers": len({row["supplier_id"] for row in data["suppliers"]}),
                "payments": len(payments),
                "movements": len(latest(data["inventory"], "inventory")),
            },
        },
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample-expected.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(expected, handle, indent=2, ensure_ascii=False, sort_keys=True)
        handle.write("\n")
    print(json.dumps(expected["replay"], indent=1))


if __name__ == "__main__":
    main()
