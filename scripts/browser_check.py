#!/usr/bin/env python3
"""Loads the dashboard in a real browser (Debian's Chromium, driven by Playwright) and fails on
any console error, page error, failed request or HTTP error, or when a chart holds no data; and on
what a person would trip over: a chart label cut off at the chart's edge, top products without
their names, a monthly chart that skips months, a low-stock card that lists products above its
threshold (or says nothing when none is under it), an event time in raw ISO form.

    scripts/browser_check.py URL SCREENSHOT.png [--timeout-s 30]

Prints one JSON object: what was checked, the chart data counts, and the problems found.
"""
import argparse
import json
import shutil
import sys

from playwright.sync_api import sync_playwright

CHARTS = ["series", "top", "category", "segment", "state", "method", "monthly"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("screenshot")
    parser.add_argument("--timeout-s", type=float, default=30)
    args = parser.parse_args()
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        print(json.dumps({"ok": False, "problems": ["chromium is not installed"]}))
        return 2
    problems = []
    closing = False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: not closing and problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
        page.goto(args.url, wait_until="load", timeout=args.timeout_s * 1000)
        # Every chart has data, the tiles are filled, the health table has its groups, the
        # server-sent events connection is up and has delivered KPIs.
        condition = """charts => charts.every(id => {
              const svg = document.querySelector('#' + id + ' svg');
              return svg && Number(svg.dataset.points) > 0;
            }) && document.querySelectorAll('#tiles .tile').length >= 7
              && document.querySelectorAll('#health tr').length >= 3
              && document.getElementById('live').textContent === 'live'
              && Number(document.body.dataset.kpiUpdates || 0) >= 1
              && Array.from(document.querySelectorAll('#top svg text')).some(t => / \\(.+\\)$/.test(t.textContent))"""
        try:
            page.wait_for_function(condition, arg=CHARTS, timeout=args.timeout_s * 1000)
        except Exception as error:  # the report below says which part is missing
            problems.append(f"the page did not fill in {args.timeout_s:.0f} s: {error.__class__.__name__}")
        points = page.evaluate("""charts => Object.fromEntries(charts.map(id => {
              const svg = document.querySelector('#' + id + ' svg');
              return [id, svg ? Number(svg.dataset.points) : 0];
            }))""", CHARTS)
        for name, count in points.items():
            if count <= 0:
                problems.append(f"chart {name} holds no data")
        # Every label inside its chart: SVG text is cut off at the viewBox's edge.
        clipped = page.evaluate("""() => {
              const out = [];
              for (const svg of document.querySelectorAll('.chart svg')) {
                const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
                for (const t of svg.querySelectorAll('text')) {
                  const b = t.getBBox();
                  if (b.x < -0.5 || b.y < -0.5 || b.x + b.width > w + 0.5 || b.y + b.height > h + 0.5)
                    out.push(svg.parentElement.id + ': ' + t.textContent);
                }
              }
              return out;
            }""")
        problems += [f"label cut off: {label}" for label in clipped]
        top_labels = page.evaluate("Array.from(document.querySelectorAll('#top svg text')).map(t => t.textContent)")
        # Monthly: one point per month from the first to the last the API reports.
        months = page.evaluate("""async () => {
              const body = await (await fetch('/api/analytics/monthly-revenue')).json();
              const keys = body.rows.map(r => String(r.month || Object.values(r)[0]).slice(0, 7)).sort();
              if (!keys.length) return { expected: 0, drawn: 0 };
              const [y0, m0] = keys[0].split('-').map(Number), [y1, m1] = keys[keys.length - 1].split('-').map(Number);
              const svg = document.querySelector('#monthly svg');
              return { first: keys[0], last: keys[keys.length - 1], expected: (y1 - y0) * 12 + (m1 - m0) + 1, drawn: svg ? Number(svg.dataset.points) : 0 };
            }""")
        if months["expected"] != months["drawn"]:
            problems.append(f"the monthly chart draws {months['drawn']} months, {months['first']}..{months['last']} has {months['expected']}")
        low_stock = page.evaluate("""async () => {
              const k = await (await fetch('/api/kpis')).json();
              const box = document.getElementById('lowstock');
              const rows = Array.from(box.querySelectorAll('tr')).slice(1).map(r => Number(r.lastElementChild.textContent));
              return { threshold: k.low_stock.threshold, under: k.low_stock.products.length, text: box.innerText, rows };
            }""")
        if low_stock["under"] == 0 and f"none under {low_stock['threshold']}" not in low_stock["text"]:
            problems.append(f"low stock: nothing is under {low_stock['threshold']} but the card says {low_stock['text']!r}")
        if any(value >= low_stock["threshold"] for value in low_stock["rows"]) or (low_stock["under"] and not low_stock["rows"]):
            problems.append(f"low stock lists {low_stock['rows']} against a threshold of {low_stock['threshold']}")
        watermark = page.evaluate("document.getElementById('watermark').textContent")
        if "T" in watermark.split("up to")[-1] or watermark.endswith("Z"):
            problems.append(f"the event time is not in a readable form: {watermark!r}")
        tiles = page.evaluate("Array.from(document.querySelectorAll('#tiles .tile')).map(t => t.innerText.replace('\\n', ': '))")
        page.screenshot(path=args.screenshot, full_page=True)
        closing = True
        browser.close()
    print(json.dumps({"ok": not problems, "url": args.url, "charts": points, "tiles": tiles, "top_products": top_labels,
                      "months": months, "low_stock": low_stock, "watermark": watermark,
                      "screenshot": args.screenshot, "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
