#!/usr/bin/env python3
"""Writes the seed-sized sample in data/ (the six contract files) with every trap data/README.md lists.

The sample is committed; this script documents how it was made and can make it again
(`python3 data/make_sample.py`). It is deterministic. The expected answers are computed from the
CSV files by a separate script (Tests/Fixtures/expected_answers.py), not from this one.
"""
import csv
import io
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20240301)

STATES = ["CA", "TX", "NY", "FL", "WA", "IL", "MA", "CO", "GA", "OR"]
CITIES = {"CA": "San Diego", "TX": "Austin", "NY": "Buffalo", "FL": "Tampa", "WA": "Seattle",
          "IL": "Chicago", "MA": "Boston", "CO": "Denver", "GA": "Atlanta", "OR": "Portland"}
FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Ethan", "Olivia", "Lucas", "Sophia", "Mason",
         "Isabella", "Mary", "Logan", "José", "Zoë", "李", "Amelia", "James", "Harper", "Elijah",
         "Evelyn", "Henry", "Abigail", "Jack", "Ella"]
LAST = ["Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Clark",
        "Lewis", "O'Neil", "Walker", "Ñúñez", "Åström", "雷", "Young", "King", "Wright", "Scott",
        "Green", "Baker", "Adams", "Nelson", "Hill"]


def write(name, header, rows, crlf=False):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    for row in rows:
        if isinstance(row, str):  # a raw, deliberately malformed line
            buffer.write(row + ("\r\n" if crlf else "\n"))
        else:
            writer.writerow([row.get(column, "") for column in header])
    with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def ts(day, hour=10, minute=0, offset="Z"):
    return f"{day}T{hour:02d}:{minute:02d}:00{offset}"


# ---------------------------------------------------------------- customers (25 + traps)
customers = []
for i in range(1, 26):
    state = STATES[(i - 1) % len(STATES)]
    month = 1 + (i - 1) % 3
    day = f"2023-{month:02d}-{(i % 27) + 1:02d}"
    customers.append({
        "customer_id": f"C{i:03d}", "first_name": FIRST[i - 1], "last_name": LAST[i - 1],
        "email": f"customer{i}@example.com", "city": CITIES[state], "state": state, "country": "US",
        "segment": "Premium" if i % 3 == 0 else "Standard", "signup_date": day, "updated_at": ts(day, 9),
    })
by_id = {c["customer_id"]: c for c in customers}
# A name with a comma, a quote and a newline.
by_id["C012"]["first_name"] = 'Mary, "Mae"\nAnn'
# Offset timestamps: the same instants written in other zones.
by_id["C004"]["updated_at"] = "2023-01-05T04:00:00-05:00"      # 09:00Z
by_id["C005"]["updated_at"] = "2023-02-06T11:00:00+02:00"      # 09:00Z
# C025 first appears after their first order (2024-06-01): a late-arriving dimension.
by_id["C025"]["updated_at"] = ts("2024-06-10", 12)
by_id["C025"]["signup_date"] = "2024-06-10"
customer_rows = list(customers)
# SCD2: C003 moves Premium -> Standard on 2024-01-15, C009 Premium -> Standard 2024-05-01,
# C002 Standard -> Premium 2024-02-01 (written BEFORE its base row: out of event-time order).
c003 = dict(by_id["C003"], segment="Standard", updated_at=ts("2024-01-15", 8))
c009 = dict(by_id["C009"], segment="Standard", updated_at=ts("2024-05-01", 8))
c002 = dict(by_id["C002"], segment="Premium", updated_at="2024-02-01T03:00:00-05:00")  # 08:00Z
# C007 moves from CO to TX (a tracked attribute), and changes email (not tracked).
c007 = dict(by_id["C007"], state="TX", city="Austin", updated_at=ts("2023-09-01", 15))
c011 = dict(by_id["C011"], email="new11@example.com", updated_at=ts("2023-06-01", 15))
customer_rows.insert(0, c002)
customer_rows += [c003, c009, c007, c011]
# An exact duplicate row.
customer_rows.insert(12, dict(by_id["C010"]))
# Malformed rows.
customer_rows.append({"customer_id": "C026", "first_name": "Nora", "last_name": "Ghost", "email": "x@example.com",
                      "city": "Reno", "state": "NV", "country": "", "segment": "Standard",
                      "signup_date": "2023-04-01", "updated_at": ts("2023-04-01")})          # missing country
customer_rows.append({"customer_id": "C027", "first_name": "Ivan", "last_name": "Late", "email": "y@example.com",
                      "city": "Reno", "state": "NV", "country": "US", "segment": "Standard",
                      "signup_date": "2023-04-01", "updated_at": "2023-13-45T10:00:00Z"})   # impossible date
write("customers.csv", ["customer_id", "first_name", "last_name", "email", "city", "state", "country", "segment",
                        "signup_date", "updated_at"], customer_rows)

# ---------------------------------------------------------------- suppliers (18 + traps)
suppliers = []
for i in range(1, 19):
    suppliers.append({
        "supplier_id": f"S{i:02d}", "name": f"Supplier {i:02d} Ltd" if i != 4 else "Müller & Söhne GmbH",
        "country": ["US", "DE", "CN", "MX", "VN"][i % 5], "contact_email": f"sales{i}@supplier.example",
        "contract_start": "2022-01-01", "contract_end": "2025-12-31", "lead_time_days": str(5 + i % 20),
        "rating": f"{3 + (i % 3) * 0.5:.1f}", "updated_at": ts("2022-12-01"),
    })
supplier_rows = list(suppliers)
supplier_rows.append(dict(suppliers[2], rating="2.5", updated_at=ts("2024-03-01")))          # type-1 update
supplier_rows.append(dict(suppliers[5], supplier_id="S19", lead_time_days="-3"))           # malformed
write("suppliers.csv", ["supplier_id", "name", "country", "contact_email", "contract_start", "contract_end",
                        "lead_time_days", "rating", "updated_at"], supplier_rows)

# ---------------------------------------------------------------- products (25 + traps)
CATEGORIES = ["Electronics", "Clothing", "Accessories"]
PRICES = ["19.99", "49.99", "9.95", "129.00", "24.50", "5.05", "74.25", "15.00", "39.99", "0.99",
          "249.99", "12.49", "8.75", "59.90", "31.31", "99.99", "4.45", "18.18", "45.00", "64.99",
          "2.50", "149.95", "27.27", "11.11", "89.00"]
products = []
for i in range(1, 26):
    price = PRICES[i - 1]
    products.append({
        "product_id": f"P{i:03d}", "name": f"Product {i:03d}" if i != 11 else "Écouteurs \"Pro\", sans fil",
        "category": CATEGORIES[(i - 1) % 3], "supplier_id": f"S{(i - 1) % 18 + 1:02d}", "unit_price": price,
        "unit_cost": f"{float(price) * 0.6:.2f}", "updated_at": ts("2022-12-15"),
    })
pby = {p["product_id"]: p for p in products}
product_rows = list(products)
# P005 price change; P008 price and category change (tracked: category, unit_price).
product_rows.append(dict(pby["P005"], unit_price="22.00", unit_cost="13.20", updated_at=ts("2024-03-01")))
product_rows.insert(3, dict(pby["P008"], category="Electronics", unit_price="17.50", updated_at=ts("2024-02-01")))
product_rows.append(dict(pby["P013"]))                                                          # exact duplicate
product_rows.append({"product_id": "P026", "name": "Broken price", "category": "Clothing", "supplier_id": "S01",
                     "unit_price": "-5.00", "unit_cost": "1.00", "updated_at": ts("2023-01-01")})  # negative price
product_rows.append({"product_id": "P027", "name": "", "category": "Clothing", "supplier_id": "S01",
                     "unit_price": "5.00", "unit_cost": "1.00", "updated_at": ts("2023-01-01")})   # missing name
write("products.csv", ["product_id", "name", "category", "supplier_id", "unit_price", "unit_cost", "updated_at"],
      product_rows, crlf=True)

# ---------------------------------------------------------------- orders (80 lines) + payments + movements
lines = []        # the latest intended state of each line, for building payments and movements
order_rows = []
payments = []
movements = []
order_count = 0
line_total = 0
day0 = 19358  # 2023-01-01 as days since epoch


def day_string(day_number):
    import datetime
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day_number)).isoformat()


METHODS = ["credit_card", "paypal", "debit_card"]
PROCESSORS = {"credit_card": "stripe", "paypal": "paypal", "debit_card": "adyen"}
pay_id = 0
move_id = 0


def add_payment(order_id, method, amount, status, when):
    global pay_id
    pay_id += 1
    payments.append({"payment_id": f"PAY{pay_id:04d}", "order_id": order_id, "method": method,
                     "processor": PROCESSORS[method], "amount": amount, "currency": "USD", "status": status,
                     "paid_at": when})
    return f"PAY{pay_id:04d}"


def add_movement(product_id, kind, quantity, when, reference, cost=""):
    global move_id
    move_id += 1
    movements.append({"movement_id": f"M{move_id:04d}", "product_id": product_id, "movement_type": kind,
                      "quantity": str(quantity), "unit_cost": cost, "moved_at": when, "reference": reference})


# Receipts first: every product is stocked at the start.
for p in products:
    add_movement(p["product_id"], "receipt", 40 + int(p["product_id"][1:]) % 15, ts("2022-12-20", 8), "PO-INIT",
                 p["unit_cost"])

orders_spec = []
while line_total < 80:
    order_count += 1
    n_lines = [1, 1, 2, 2, 3][order_count % 5]
    n_lines = min(n_lines, 80 - line_total)
    day = day0 + (order_count * 16) % 720 + (order_count % 7)
    customer = f"C{(order_count * 7) % 24 + 1:03d}"
    orders_spec.append((f"O{order_count:04d}", day, customer, n_lines))
    line_total += n_lines
# C025's first order is before C025 exists (2024-06-01).
orders_spec[-3] = (orders_spec[-3][0], 19875, "C025", orders_spec[-3][3])

for index, (order_id, day, customer, n_lines) in enumerate(orders_spec):
    hour = 8 + index % 12
    order_ts = ts(day_string(day), hour, (index * 13) % 60)
    total = 0.0
    for line_number in range(1, n_lines + 1):
        product = f"P{(index * 3 + line_number * 5) % 25 + 1:03d}"
        price_row = pby[product]
        price = price_row["unit_price"]
        if product == "P005" and day >= 19783:   # after 2024-03-01
            price = "22.00"
        if product == "P008" and day >= 19754:   # after 2024-02-01
            price = "17.50"
        quantity = 1 + (index + line_number) % 4
        discount = ["0", "0.1", "0", "0.15", "0.05", "0"][(index + line_number) % 6]
        row = {"order_id": order_id, "line_number": str(line_number), "customer_id": customer, "product_id": product,
               "quantity": str(quantity), "unit_price": price, "discount": discount, "status": "placed",
               "order_ts": order_ts, "updated_at": order_ts}
        order_rows.append(row)
        lines.append(row)
        # Status progressions: most lines ship and get delivered.
        cancelled_later = order_id == "O0006"   # cancelled the next day, before it could ship
        if index % 4 != 3 and not cancelled_later:
            order_rows.append(dict(row, status="shipped", updated_at=ts(day_string(day + 2), 9)))
        if index % 4 in (0, 1) and not cancelled_later:
            order_rows.append(dict(row, status="delivered", updated_at=ts(day_string(day + 5), 14)))
        add_movement(product, "sale", -quantity, ts(day_string(day), hour, 30), order_id)
        total += quantity * float(price) * (1 - float(discount))
    method = METHODS[index % 3]
    amount = f"{total:.2f}"
    if index % 9 == 4:  # a failed attempt before the captured payment
        add_payment(order_id, method, amount, "failed", ts(day_string(day), hour, 40))
    add_payment(order_id, method, amount, "captured", ts(day_string(day), hour, 45))

# A cancel: O0006's lines are cancelled the day after they were placed.
for row in [r for r in lines if r["order_id"] == "O0006"]:
    order_rows.append(dict(row, status="cancelled", updated_at=ts(day_string(day0 + 6 * 16 % 720 + 6 + 1), 10)))
# A return: O0009 line 1 was delivered, then returned; its payment is refunded and stock comes back.
o9 = [r for r in lines if r["order_id"] == "O0009" and r["line_number"] == "1"][0]
o9_day = [s[1] for s in orders_spec if s[0] == "O0009"][0]
order_rows.append(dict(o9, status="returned", updated_at=ts(day_string(o9_day + 20), 11)))
refund = f"{int(o9['quantity']) * float(o9['unit_price']) * (1 - float(o9['discount'])):.2f}"
add_payment("O0009", "credit_card", refund, "refunded", ts(day_string(o9_day + 21), 9))
add_movement(o9["product_id"], "return", int(o9["quantity"]), ts(day_string(o9_day + 20), 12), "O0009")
# A payment with two versions: authorized, then captured under the same payment_id.
last_order = orders_spec[-1]
pid = add_payment(last_order[0], "paypal", "10.00", "authorized", ts(day_string(last_order[1]), 6))
payments.append(dict(payments[-1], status="captured", paid_at=ts(day_string(last_order[1]), 7)))
# Adjustments (stock counts).
for k, product in enumerate(["P002", "P011", "P017", "P021", "P024"]):
    add_movement(product, "adjustment", [-2, 3, -1, 5, -4][k], ts(day_string(day0 + 100 * (k + 1)), 18), f"COUNT-{k + 1}")

# Exact duplicates and out-of-order rows in orders.csv.
order_rows.append(dict(order_rows[10]))
order_rows.append(dict(order_rows[20]))
rng.shuffle(order_rows)   # file order is not event-time order
# Offset timestamps in orders: rewrite a few order_ts/updated_at in other zones (same instants).
import datetime
for row in order_rows[:12]:
    for column in ("order_ts", "updated_at"):
        instant = datetime.datetime.fromisoformat(row[column].replace("Z", "+00:00"))
        row[column] = instant.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat()
# Malformed order lines.
order_rows.append({"order_id": "O9001", "line_number": "1", "customer_id": "C001", "product_id": "P001",
                   "quantity": "0", "unit_price": "19.99", "discount": "0", "status": "placed",
                   "order_ts": ts("2023-05-05"), "updated_at": ts("2023-05-05")})          # quantity 0
order_rows.append({"order_id": "O9002", "line_number": "1", "customer_id": "C001", "product_id": "P001",
                   "quantity": "2", "unit_price": "19.99", "discount": "1.5", "status": "placed",
                   "order_ts": ts("2023-05-05"), "updated_at": ts("2023-05-05")})          # discount out of range
order_rows.append({"order_id": "O9003", "line_number": "1", "customer_id": "C001", "product_id": "P001",
                   "quantity": "2", "unit_price": "19.99", "discount": "0", "status": "lost",
                   "order_ts": ts("2023-05-05"), "updated_at": ts("2023-05-05")})          # unknown status
order_rows.append("O9004,1,C001,P001,2,19.99")                                             # too few fields
write("orders.csv", ["order_id", "line_number", "customer_id", "product_id", "quantity", "unit_price", "discount",
                     "status", "order_ts", "updated_at"], order_rows)

# Payments: pad to 80 rows with small captured payments of extra "tips" orders? No: keep them real.
payments.append(dict(payments[3]))                                                          # exact duplicate
payments.append({"payment_id": "PAY9001", "order_id": "O0001", "method": "paypal", "processor": "paypal",
                 "amount": "12.00", "currency": "US", "status": "captured", "paid_at": ts("2023-01-20")})   # bad currency
payments.append({"payment_id": "PAY9002", "order_id": "O0001", "method": "paypal", "processor": "paypal",
                 "amount": "abc", "currency": "USD", "status": "captured", "paid_at": ts("2023-01-20")})    # bad amount
write("payments.csv", ["payment_id", "order_id", "method", "processor", "amount", "currency", "status", "paid_at"],
      payments)

movements.append(dict(movements[30]))                                                       # exact duplicate
movements.append({"movement_id": "M9001", "product_id": "P001", "movement_type": "theft", "quantity": "-1",
                  "unit_cost": "", "moved_at": ts("2023-03-03"), "reference": "?"})              # unknown type
movements.append({"movement_id": "M9002", "product_id": "P001", "movement_type": "adjustment", "quantity": "0",
                  "unit_cost": "", "moved_at": ts("2023-03-03"), "reference": "zero"})           # zero quantity
write("inventory_movements.csv", ["movement_id", "product_id", "movement_type", "quantity", "unit_cost", "moved_at",
                                  "reference"], movements)

print(f"orders: {len(orders_spec)} orders, {len(lines)} lines, {len(order_rows)} rows; payments: {len(payments)}; "
      f"movements: {len(movements)}; customers: {len(customer_rows)}; products: {len(product_rows)}; "
      f"suppliers: {len(supplier_rows)}")
