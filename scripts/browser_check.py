#!/usr/bin/env python3
"""Loads the dashboard in a real browser (Debian's Chromium, driven by Playwright) and fails on
any console error, page error, failed request or HTTP error, or when a chart holds no data.

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
              && Number(document.body.dataset.kpiUpdates || 0) >= 1"""
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
        tiles = page.evaluate("Array.from(document.querySelectorAll('#tiles .tile')).map(t => t.innerText.replace('\\n', ': '))")
        page.screenshot(path=args.screenshot, full_page=True)
        closing = True
        browser.close()
    print(json.dumps({"ok": not problems, "url": args.url, "charts": points, "tiles": tiles,
                      "screenshot": args.screenshot, "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
