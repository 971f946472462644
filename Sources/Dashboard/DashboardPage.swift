/// The dashboard's one page: HTML, CSS and a small script of its own that draws every chart as
/// SVG. No CDN, no external asset: it works offline. It renders what `/events` pushes (`kpis` on
/// every KPI change, `health` every two seconds) and asks `/api/analytics/monthly-revenue` (from
/// PostgreSQL, cached) once a minute.
enum DashboardPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>StreamWarehouse</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml">
    <link rel="stylesheet" href="/app.css">
    </head>
    <body>
    <header>
      <h1>StreamWarehouse</h1>
      <span id="live" class="pill off" title="Server-Sent Events connection">connecting…</span>
      <span id="watermark" class="muted"></span>
    </header>
    <main>
      <section class="tiles" id="tiles" aria-label="Key figures"></section>
      <section class="card wide">
        <div class="card-head"><h2>Revenue</h2>
          <div class="switch" role="tablist" id="granularity">
            <button data-g="minute">minute</button><button data-g="hour">hour</button><button data-g="day" class="on">day</button>
          </div>
        </div>
        <div id="series" class="chart" data-chart="series"></div>
      </section>
      <section class="card"><h2>Top products</h2><div id="top" class="chart" data-chart="top"></div></section>
      <section class="card"><h2>By category</h2><div id="category" class="chart" data-chart="category"></div></section>
      <section class="card"><h2>By segment (as was)</h2><div id="segment" class="chart" data-chart="segment"></div></section>
      <section class="card"><h2>By state</h2><div id="state" class="chart" data-chart="state"></div></section>
      <section class="card"><h2>By payment method</h2><div id="method" class="chart" data-chart="method"></div></section>
      <section class="card"><h2>Low stock</h2><div id="lowstock"></div></section>
      <section class="card wide"><h2>Monthly revenue <small class="muted">PostgreSQL, cached in Redis</small></h2>
        <div id="monthly" class="chart" data-chart="monthly"></div></section>
      <section class="card wide"><h2>Pipeline</h2><div id="health"></div></section>
    </main>
    <footer class="muted">Figures from Redis, pushed by Server-Sent Events on every change. <a href="/api/kpis">/api/kpis</a> · <a href="/api/lag">/api/lag</a> · <a href="/api/health">/api/health</a> · <a href="/metrics">/metrics</a></footer>
    <script src="/app.js"></script>
    </body>
    </html>
    """#

    static let css = #"""
    :root { --bg: #0f1419; --card: #171e26; --ink: #e6edf3; --muted: #8b98a5; --accent: #4cc2ff; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --grid: #2a3440; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
    header { display: flex; gap: 12px; align-items: center; padding: 12px 20px; border-bottom: 1px solid var(--grid); flex-wrap: wrap; }
    h1 { font-size: 18px; margin: 0; } h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; }
    main { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; padding: 12px 20px; }
    .tiles { grid-column: 1 / -1; display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; }
    .tile { background: var(--card); border-radius: 8px; padding: 10px 12px; }
    .tile .label { color: var(--muted); font-size: 12px; } .tile .value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .card { background: var(--card); border-radius: 8px; padding: 12px; min-width: 0; } .wide { grid-column: 1 / -1; }
    .card-head { display: flex; justify-content: space-between; align-items: center; }
    .chart svg { width: 100%; height: auto; display: block; }
    .switch button { background: none; border: 1px solid var(--grid); color: var(--muted); padding: 3px 10px; cursor: pointer; }
    .switch button.on { color: var(--ink); border-color: var(--accent); }
    .pill { border-radius: 10px; padding: 2px 10px; font-size: 12px; background: var(--grid); }
    .pill.on { background: #12391f; color: var(--ok); } .pill.off { background: #3d1a1a; color: var(--bad); }
    .muted { color: var(--muted); } small { font-weight: 400; }
    table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
    th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--grid); } th { color: var(--muted); font-weight: 500; }
    td.num, th.num { text-align: right; }
    .status-OK { color: var(--ok); } .status-WARN { color: var(--warn); } .status-STALLED, .status-STOPPED { color: var(--bad); font-weight: 700; }
    .up { color: var(--ok); } .down { color: var(--bad); }
    footer { padding: 12px 20px; font-size: 12px; } a { color: var(--accent); }
    svg text { fill: var(--muted); font-size: 11px; } svg .bar { fill: var(--accent); } svg .area { fill: rgba(76, 194, 255, .18); }
    svg .line { stroke: var(--accent); fill: none; stroke-width: 2; } svg .grid { stroke: var(--grid); }
    @media (max-width: 600px) { main, header { padding: 8px; } .tile .value { font-size: 18px; } }
    """#

    static let favicon = #"""
    <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0f1419"/><path d="M2 12 L6 7 L9 9 L14 3" stroke="#4cc2ff" stroke-width="2" fill="none"/></svg>
    """#

    static let script = #"""
    "use strict";
    const NS = "http://www.w3.org/2000/svg";
    const state = { kpis: null, granularity: "day", names: {}, namesAt: {} };

    // Text width in SVG user units at the charts' 11px font (the viewBox scales both alike).
    const measure = document.createElement("canvas").getContext("2d");
    function textWidth(text) {
      measure.font = "11px " + getComputedStyle(document.body).fontFamily;
      return Math.ceil(measure.measureText(String(text)).width);
    }
    // The longest prefix of `text` (with "…") that fits `width`.
    function fit(text, width) {
      text = String(text);
      if (textWidth(text) <= width) return text;
      let n = text.length;
      while (n > 1 && textWidth(text.slice(0, n) + "…") > width) n--;
      return text.slice(0, n) + "…";
    }

    function el(tag, attrs, text) {
      const node = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      return node;
    }
    function money(v) {
      const n = Number(v || 0);
      return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    // Money for a tile: exact below ten million, compact above (the exact figure in its tooltip).
    function tileMoney(v) {
      const n = Number(v || 0);
      return Math.abs(n) >= 1e7 ? n.toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 2 }) : money(n);
    }
    function short(n) {
      const a = Math.abs(n);
      if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
      if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
      return String(Math.round(n * 100) / 100);
    }
    function mount(id, node) { const box = document.getElementById(id); box.replaceChildren(node); }

    // A line and area chart of [label, value] points, with min and max marked.
    function lineChart(points, width) {
      // Drawn at the container's width (text stays legible on a phone), 900 at most.
      const w = Math.max(300, Math.min(900, Math.round(width || 900))), h = w < 600 ? 200 : 220, r = 8, t = 10, b = 24;
      const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "data-points": points.length });
      if (!points.length) { svg.append(el("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "no data yet")); return svg; }
      const max = Math.max(...points.map(p => p[1]), 1);
      // The left margin fits the widest value label, so none is cut off.
      const l = Math.max(40, 10 + Math.max(...[0, 0.5, 1].map(f => textWidth(short(max * f)))));
      const x = i => l + (points.length === 1 ? (w - l - r) / 2 : i * (w - l - r) / (points.length - 1));
      const y = v => t + (h - t - b) * (1 - v / max);
      for (const f of [0, 0.5, 1]) {
        svg.append(el("line", { class: "grid", x1: l, x2: w - r, y1: y(max * f), y2: y(max * f) }));
        svg.append(el("text", { x: l - 6, y: y(max * f) + 4, "text-anchor": "end" }, short(max * f)));
      }
      const path = points.map((p, i) => `${x(i).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      svg.append(el("polygon", { class: "area", points: `${x(0)},${y(0)} ${path} ${x(points.length - 1)},${y(0)}` }));
      svg.append(el("polyline", { class: "line", points: path }));
      points.forEach((p, i) => {
        const dot = el("circle", { cx: x(i), cy: y(p[1]), r: 2.5, fill: "#4cc2ff" });
        dot.append(el("title", {}, `${p[0]}: ${money(p[1])}`));
        svg.append(dot);
      });
      // As many time labels as fit without overlapping; the first and last anchored inside the chart.
      const widest = Math.max(...points.map(p => textWidth(p[0])));
      const slots = Math.max(1, Math.floor((w - l - r) / (widest + 16)));
      const step = Math.max(1, Math.ceil(points.length / slots));
      // Where each label would sit; the last is always drawn, the others only where they do not
      // touch a label already placed.
      const span = i => {
        const width = textWidth(points[i][0]);
        const anchor = points.length === 1 ? "middle" : i === 0 ? "start" : i === points.length - 1 ? "end" : "middle";
        const left = anchor === "start" ? x(i) : anchor === "end" ? x(i) - width : x(i) - width / 2;
        return { i, anchor, left, right: left + width };
      };
      const lastSpan = span(points.length - 1);
      const placed = [lastSpan];
      let right = -Infinity;
      for (let i = 0; i < points.length - 1; i += step) {
        const s = span(i);
        if (s.left < right + 8 || s.right > lastSpan.left - 8) continue;
        placed.push(s);
        right = s.right;
      }
      for (const s of placed) svg.append(el("text", { x: x(s.i), y: h - 6, "text-anchor": s.anchor }, points[s.i][0]));
      return svg;
    }

    // Horizontal bars of [name, value] entries, largest first.
    // Entries are [key, value] or [key, value, label]: the label (a product's name and id) is shown,
    // whole when it fits the left column (at most half the chart), else shortened with the whole in
    // its tooltip; values sit right of their bars inside the chart.
    function barChart(entries, format) {
      format = format || money;
      entries = entries.filter(e => e[1] > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 10);
      const row = 24, w = 460, h = Math.max(row, entries.length * row + 4);
      const svg = el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "data-points": entries.length });
      if (!entries.length) { svg.append(el("text", { x: w / 2, y: 16, "text-anchor": "middle" }, "no data yet")); return svg; }
      const max = Math.max(...entries.map(e => e[1]));
      const names = entries.map(e => e[2] || e[0]);
      const label = Math.min(Math.floor(w / 2), 12 + Math.max(...names.map(textWidth)));
      const valueWidth = 8 + Math.max(...entries.map(e => textWidth(format(e[1]))));
      entries.forEach((e, i) => {
        const y = i * row + 4, width = Math.max(1, (w - label - valueWidth - 4) * e[1] / max);
        const text = el("text", { x: label - 6, y: y + 14, "text-anchor": "end" }, fit(names[i], label - 10));
        text.append(el("title", {}, names[i]));
        svg.append(text);
        const bar = el("rect", { class: "bar", x: label, y: y + 2, width: width.toFixed(1), height: row - 8, rx: 2 });
        bar.append(el("title", {}, `${names[i]}: ${format(e[1])}`));
        svg.append(bar);
        svg.append(el("text", { x: label + width + 6, y: y + 14 }, format(e[1])));
      });
      return svg;
    }

    // "Name (P001)" once the warehouse has named the product, else the id.
    function productLabel(id) {
      const p = state.names[id];
      return p && p.name ? `${p.name} (${id})` : id;
    }
    // Fetches names for ids not looked up in the last minute, then draws again.
    async function loadNames(ids) {
      const now = Date.now();
      const wanted = [...new Set(ids)].filter(id => !(now - (state.namesAt[id] || 0) < 60000)).slice(0, 100);
      if (!wanted.length) return;
      wanted.forEach(id => { state.namesAt[id] = now; });
      try {
        const r = await fetch("/api/products?ids=" + wanted.map(encodeURIComponent).join(","));
        if (!r.ok) return;
        Object.assign(state.names, (await r.json()).products);
        if (state.kpis) renderProducts(state.kpis);
      } catch (e) { /* names are a nicety: ids stay shown */ }
    }

    function tile(label, value, exact) {
      const d = document.createElement("div"); d.className = "tile"; d.title = exact || value;
      const a = document.createElement("div"); a.className = "label"; a.textContent = label;
      const b = document.createElement("div"); b.className = "value"; b.textContent = value;
      d.append(a, b); return d;
    }

    function bucketLabel(start, g) {
      if (g === "day") return start.slice(5, 10);
      if (g === "hour") return start.slice(11, 13) + "h";
      return start.slice(11, 16);
    }

    function renderSeries() {
      const k = state.kpis; if (!k) return;
      const g = state.granularity;
      const points = (k.buckets[g] || []).map(b => [bucketLabel(b.start, g), Number(b.revenue)]);
      mount("series", lineChart(points, document.getElementById("series").clientWidth));
    }

    function renderKPIs(k) {
      state.kpis = k;
      const days = k.buckets.day || [];
      const today = days.length ? days[days.length - 1].revenue : "0";
      const w = (k.windows || {})["24h"] || { revenue: "0" };
      document.getElementById("tiles").replaceChildren(
        tile("Revenue today", tileMoney(today), money(today)), tile("Revenue 24 h", tileMoney(w.revenue), money(w.revenue)),
        tile("Revenue all time", tileMoney(k.revenue.total), money(k.revenue.total)),
        tile("Orders", Number(k.orders_with_revenue).toLocaleString("en-US")), tile("AOV", money(k.aov)),
        tile("Units", Number(k.units).toLocaleString("en-US")),
        tile("Refund rate", (Number(k.payment_rates.refund_rate) * 100).toFixed(1) + " %"));
      const mark = document.getElementById("watermark");
      if (k.watermark) {
        const at = new Date(k.watermark);
        mark.textContent = "events up to " + (isNaN(at) ? k.watermark : at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
        mark.title = "event-time watermark " + k.watermark + " (shown in this browser's time zone)";
      } else {
        mark.textContent = ""; mark.title = "";
      }
      renderSeries();
      const pairs = m => Object.entries(m || {}).map(([n, v]) => [n, Number(v)]);
      renderProducts(k);
      loadNames(k.top_products.map(p => p.product_id).concat(((k.low_stock || {}).products || []).map(p => p.product_id)));
      mount("category", barChart(pairs(k.revenue.by_category_as_was)));
      mount("segment", barChart(pairs(k.revenue.by_segment_as_was)));
      mount("state", barChart(pairs(k.revenue.by_state_as_was)));
      mount("method", barChart(Object.entries(k.payments.by_method || {}).map(([n, v]) => [n, Number(v.amount)])));
    }

    // Top products and low stock: the parts that show product names.
    function renderProducts(k) {
      mount("top", barChart(k.top_products.map(p => [p.product_id, Number(p.revenue), productLabel(p.product_id)])));
      const low = (k.low_stock && k.low_stock.products) || [];
      const threshold = k.low_stock ? k.low_stock.threshold : 10;
      const box = document.getElementById("lowstock");
      if (!low.length) {
        const note = document.createElement("p"); note.className = "muted";
        note.textContent = `none under ${threshold} on hand`;
        box.replaceChildren(note);
        return;
      }
      const table = document.createElement("table");
      table.innerHTML = `<tr><th>product</th><th class=num>on hand (under ${threshold})</th></tr>`;
      for (const p of low.slice(0, 10)) {
        const tr = document.createElement("tr"); const a = document.createElement("td"); const b = document.createElement("td");
        a.textContent = productLabel(p.product_id); b.textContent = p.on_hand; b.className = "num"; tr.append(a, b); table.append(tr);
      }
      box.replaceChildren(table);
    }

    function renderHealth(h) {
      const box = document.createElement("div");
      const table = document.createElement("table");
      table.innerHTML = "<tr><th>group</th><th>status</th><th class=num>lag (entries)</th><th class=num>lag (s)</th><th class=num>pending</th><th class=num>out /s</th></tr>";
      for (const g of h.groups) {
        const tr = document.createElement("tr");
        const cells = [g.group, g.status, g.lag, g.time_lag_s.toFixed(1), g.pending, short(g.consume_rate)];
        cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c; if (i >= 2) td.className = "num"; if (i === 1) td.className = "status-" + c; tr.append(td); });
        table.append(tr);
      }
      const facts = document.createElement("p");
      const reach = (name, r) => `<span class="${r.reachable ? "up" : "down"}">${name} ${r.reachable ? "up" : "down"}</span>`;
      facts.innerHTML = `${reach("Redis", h.redis)} · ${reach("PostgreSQL", h.postgres)} · in ${short(h.events_in_per_s)}/s · dead letters <b>${Number(h.dead_letters)}</b> · unresolved inferred members <b>${h.inferred_members_unresolved === null ? "?" : Number(h.inferred_members_unresolved)}</b> · cache ${Number(h.cache.hits)} hits / ${Number(h.cache.misses)} misses`;
      box.append(facts, table);
      document.getElementById("health").replaceChildren(box);
    }

    // [["YYYY-MM", revenue]…] on a time axis: every month from the first to the last, a month
    // without sales at 0 (so the spacing is time, and nothing is left out).
    function everyMonth(rows) {
      const byMonth = new Map();
      for (const [m, v] of rows) if (/^\d{4}-\d{2}$/.test(m)) byMonth.set(m, (byMonth.get(m) || 0) + v);
      const months = [...byMonth.keys()].sort();
      if (!months.length) return [];
      const out = [];
      let [y, m] = months[0].split("-").map(Number);
      const [ly, lm] = months[months.length - 1].split("-").map(Number);
      while (y < ly || (y === ly && m <= lm)) {
        const key = `${y}-${String(m).padStart(2, "0")}`;
        out.push([key, byMonth.get(key) || 0]);
        if (++m > 12) { m = 1; y++; }
      }
      return out;
    }

    async function loadMonthly() {
      try {
        const r = await fetch("/api/analytics/monthly-revenue");
        if (!r.ok) throw new Error(r.status);
        const body = await r.json();
        const rows = body.rows.map(row => [String(row.month || Object.values(row)[0]).slice(0, 7), Number(row.revenue || Object.values(row)[1])]);
        state.monthly = everyMonth(rows);
        mount("monthly", lineChart(state.monthly, document.getElementById("monthly").clientWidth));
      } catch (e) {
        document.getElementById("monthly").textContent = "PostgreSQL unavailable";
      }
    }

    document.getElementById("granularity").addEventListener("click", e => {
      const g = e.target.dataset && e.target.dataset.g; if (!g) return;
      state.granularity = g;
      for (const b of e.currentTarget.querySelectorAll("button")) b.classList.toggle("on", b.dataset.g === g);
      renderSeries();
    });

    function connect() {
      const live = document.getElementById("live");
      const source = new EventSource("/events");
      source.addEventListener("open", () => { live.textContent = "live"; live.className = "pill on"; });
      source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "pill off"; });
      source.addEventListener("kpis", e => { renderKPIs(JSON.parse(e.data)); document.body.dataset.kpiUpdates = String(Number(document.body.dataset.kpiUpdates || 0) + 1); });
      source.addEventListener("health", e => renderHealth(JSON.parse(e.data)));
    }
    let resizing;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        renderSeries();
        if (state.monthly) mount("monthly", lineChart(state.monthly, document.getElementById("monthly").clientWidth));
      }, 150);
    });
    connect();
    loadMonthly();
    setInterval(loadMonthly, 60000);
    """#
}
