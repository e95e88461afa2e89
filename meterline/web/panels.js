"use strict";
// The customer's panels: usage by meter, balance burn-down, token cost by model (charts) and
// the tables (balance, ledger, invoice preview, invoices, payments, alerts). Each render
// function takes one API answer ({ok, status, body}) and the view (customer, window, tz,
// x range). Tables show the API's exact strings; only chart geometry uses numbers.
(function (ML) {
  const $ = (id) => document.getElementById(id);
  const { dec, decStr, num, esc, records, toMs, fmtInt } = ML;
  const ADDITIVE = new Set(["sum", "count"]);
  const SUMMARY = { sum: "total", count: "total", max: "max", min: "min", latest: "latest", unique_count: "peak window" };
  const TIME_COLS = /^(at|period_start|period_end|expires_at|effective_at|issued_at|window_start)$/;
  const GRANT = "#16a34a", TOPUP = "#e07a1f";
  const isNumber = (v) => typeof v === "number" || /^-?\d+(\.\d+)?$/.test(String(v));

  function failure(res, what) {
    // 404 naming a table: the billing tables are not on this store (yet).
    if (res.status === 404 && res.body && res.body.table) return `<div class="empty">${esc(res.body.error)}</div>`;
    if (!res.ok) return `<div class="error">${esc(what)}: ${esc((res.body && res.body.error) || res.status || "unreachable")}</div>`;
    return null;
  }

  const dimKey = (d) => Object.keys(d || {}).sort().map((k) => `${k}=${d[k]}`).join(", ") || "all";
  const sortedTimes = (rows) => [...new Set(rows.map((r) => toMs(r.window_start)))].sort((a, b) => a - b);

  function meterSummary(agg, rows) {
    const vals = rows.map((r) => dec(r.value));
    if (ADDITIVE.has(agg)) return decStr(vals.reduce((a, v) => a + v, 0n));
    if (agg === "min") return decStr(vals.reduce((a, v) => (v < a ? v : a)));
    if (agg === "latest") return rows.reduce((a, r) => (toMs(r.window_start) > toMs(a.window_start) ? r : a)).value;
    return decStr(vals.reduce((a, v) => (v > a ? v : a)));
  }

  // One card and chart per meter; one series per dimension group. Additive meters stack
  // their groups as bars (drawn top of the stack first, so each group shows its own band);
  // the others are readings, drawn as lines.
  function usage(res, view) {
    const box = $("usage");
    const bad = failure(res, "usage");
    if (bad) { box.innerHTML = `<div class="card">${bad}</div>`; return; }
    const rows = records(res.body);
    $("usage-note").textContent = `${view.window} windows · ${view.tz}` + (res.body.truncated ? " · truncated" : "");
    const meters = new Map();
    for (const r of rows) {
      if (!meters.has(r.meter)) meters.set(r.meter, { agg: r.aggregation, rows: [] });
      meters.get(r.meter).rows.push(r);
    }
    const seen = new Set();
    for (const [meter, m] of [...meters.entries()].sort()) {
      const cardId = "usage-" + meter.replace(/[^A-Za-z0-9_-]/g, "_");
      seen.add(cardId);
      let card = document.getElementById(cardId);
      if (!card) {
        card = document.createElement("div");
        card.className = "card";
        card.id = cardId;
        card.dataset.chart = `usage:${meter}`;
        card.innerHTML = `<div class="card-head"><span class="card-title"></span><span class="total"></span></div><div class="chart"></div>`;
        box.appendChild(card);
      }
      card.querySelector(".card-title").innerHTML = `${esc(meter)}<span class="badge">${esc(m.agg)}</span>`;
      card.querySelector(".total").textContent = `${SUMMARY[m.agg] || "value"} ${meterSummary(m.agg, m.rows)}`;
      const xs = sortedTimes(m.rows);
      const groups = new Map();
      for (const r of m.rows) {
        const k = dimKey(r.dimensions);
        if (!groups.has(k)) groups.set(k, new Map());
        groups.get(k).set(toMs(r.window_start), r.value);
      }
      const names = [...groups.keys()].sort();
      const stacked = ADDITIVE.has(m.agg);
      const order = stacked ? [...names].reverse() : names;
      const ys = order.map((k) => {
        const own = groups.get(k);
        if (!stacked) return xs.map((t) => num(own.get(t)));
        // Height = this group plus every group below it (earlier in `names`).
        const below = names.slice(0, names.indexOf(k) + 1);
        return xs.map((t) => (own.has(t) ? below.reduce((a, g) => a + (num(groups.get(g).get(t)) || 0), 0) : null));
      });
      const raw = order.map((k) => xs.map((t) => groups.get(k).get(t) ?? null));
      ML.draw(`usage:${meter}`, card.querySelector(".chart"), {
        height: 190, tz: view.tz, xRange: [view.x0, view.x1], barMs: view.barMs,
        series: order.map((k) => ({ label: k, color: ML.COLORS[names.indexOf(k) % ML.COLORS.length], kind: stacked ? "windowBars" : "line" })),
      }, [xs, ...ys], raw);
    }
    for (const el of [...box.children]) {
      if (!seen.has(el.id)) {
        if (el.dataset.chart) ML.clear(el.dataset.chart);
        el.remove();
      }
    }
    if (!rows.length) box.innerHTML = `<div class="card empty">no usage for ${esc(view.customer)} in this range</div>`;
  }

  // Running balance (balance_after) over time from the ledger, one step per entry, carried
  // to now; grants and top-ups as points on the line and dashed verticals.
  function burnDown(res, view) {
    const el = $("burn-chart");
    const bad = failure(res, "ledger");
    if (bad) { ML.clear("burn"); el.innerHTML = bad; return; }
    const entries = records(res.body).sort((a, b) => toMs(a.at) - toMs(b.at) || a.seq - b.seq);
    $("ledger-note").textContent = res.body.truncated ? `last ${entries.length} entries` : `${entries.length} entries`;
    if (!entries.length) { ML.clear("burn"); el.innerHTML = `<div class="empty">no ledger entries yet</div>`; return; }
    // Entries of one millisecond collapse to the last one (uPlot wants one y per x).
    const points = [];
    for (const e of entries) {
      const t = toMs(e.at), last = points[points.length - 1];
      const p = last && last.t === t ? last : { t, grants: [], topups: [] };
      if (p !== last) points.push(p);
      p.balance = e.balance_after;
      if (e.kind === "grant" || e.kind === "overpayment") p.grants.push(e);
      if (e.kind === "topup") p.topups.push(e);
    }
    // The balance just before the first entry shown, so its grant (or debit) is a visible step.
    const first = entries[0];
    points.unshift({ t: points[0].t - 1, balance: decStr(dec(first.balance_after) - dec(first.amount)), grants: [], topups: [] });
    const now = Date.now(), lastT = points[points.length - 1].t;
    if (now > lastT) points.push({ t: now, balance: points[points.length - 1].balance, grants: [], topups: [], now: true });
    const xs = points.map((p) => p.t);
    const label = (list) => list.map((e) => `+${e.amount}${e.grant_id ? " " + e.grant_id : ""}`).join(", ");
    const marked = (key) => points.map((p) => (p[key].length ? num(p.balance) : null));
    const markedText = (key) => points.map((p) => (p[key].length ? label(p[key]) : null));
    const markers = points.flatMap((p) => [
      ...(p.grants.length ? [{ t: p.t, kind: "grant", color: GRANT }] : []),
      ...(p.topups.length ? [{ t: p.t, kind: "topup", color: TOPUP }] : []),
    ]);
    const span = Math.max(60e3, now - xs[0]);
    ML.draw("burn", el, {
      height: 240, tz: view.tz, xRange: [xs[0] - span * 0.02, Math.max(now, lastT) + span * 0.02], markers,
      series: [
        { label: "balance", color: ML.COLORS[0], kind: "step" },
        { label: "grants", color: GRANT, kind: "points" },
        { label: "top-ups", color: TOPUP, kind: "points" },
      ],
    }, [xs, points.map((p) => num(p.balance)), marked("grants"), marked("topups")],
    [points.map((p) => p.balance), markedText("grants"), markedText("topups")]);
  }

  // Totals per model over the shown range, exact; cost and billed (with markup) side by side.
  function tokens(res, view) {
    const table = $("tokens-table"), el = $("tokens-chart");
    const bad = failure(res, "tokens");
    if (bad) { table.innerHTML = bad; return; }
    const byModel = new Map();
    for (const r of records(res.body)) {
      const m = byModel.get(r.model) || { input: 0n, output: 0n, cached: 0n, cost: 0n, billed: 0n, events: 0n };
      m.input += BigInt(r.input_tokens); m.output += BigInt(r.output_tokens); m.cached += BigInt(r.cached_input_tokens);
      m.cost += dec(r.cost); m.billed += dec(r.billed); m.events += BigInt(r.events);
      byModel.set(r.model, m);
    }
    $("tokens-note").textContent = `${view.window} windows · ${view.tz}` + (res.body.truncated ? " · truncated" : "");
    const models = [...byModel.keys()].sort();
    if (!models.length) {
      ML.clear("tokens");
      el.innerHTML = `<div class="empty">no token usage in this range</div>`;
      table.innerHTML = "";
      $("tokens-total").textContent = "";
      return;
    }
    const col = (k) => models.map((m) => decStr(byModel.get(m)[k]));
    ML.draw("tokens", el, {
      height: 220, x: "category", categories: models, xLabel: "model",
      series: [
        { label: "cost", color: ML.COLORS[0], kind: "barLeft" },
        { label: "billed (with markup)", color: ML.COLORS[1], kind: "barRight" },
      ],
    }, [models.map((_, i) => i), col("cost").map(num), col("billed").map(num)], [col("cost"), col("billed")]);
    let cost = 0n, billed = 0n;
    for (const m of byModel.values()) { cost += m.cost; billed += m.billed; }
    $("tokens-total").textContent = `cost ${decStr(cost)} · billed ${decStr(billed)}`;
    const big = (v) => v.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    table.innerHTML = `<table><tr><th>model</th><th>input</th><th>output</th><th>cached</th><th>cost</th><th>billed</th><th>requests</th></tr>` +
      models.map((name) => {
        const m = byModel.get(name);
        return `<tr data-model="${esc(name)}"><td>${esc(name)}</td><td>${big(m.input)}</td><td>${big(m.output)}</td><td>${big(m.cached)}</td>` +
          `<td>${decStr(m.cost)}</td><td>${decStr(m.billed)}</td><td>${big(m.events)}</td></tr>`;
      }).join("") + `</table>`;
  }

  function cell(col, v, tz, numeric) {
    if (v === null || v === undefined || v === "") return `<td class="muted ${numeric ? "" : "text"}">—</td>`;
    if (typeof v === "object") return `<td class="text">${esc(JSON.stringify(v))}</td>`;
    if (TIME_COLS.test(col)) {
      const t = toMs(v);
      if (!Number.isNaN(t)) return `<td class="text" title="${esc(v)}">${esc(ML.fullTime(t, tz))}</td>`;
    }
    if (typeof v === "number") return `<td>${fmtInt(v)}</td>`;
    // Decimal strings exactly as the API printed them.
    if (isNumber(v)) return `<td class="${v.startsWith("-") ? "neg" : ""}">${esc(v)}</td>`;
    return `<td class="text">${esc(v)}</td>`;
  }

  function table(cols, rows, tz, rowClass = () => "") {
    if (!rows.length) return `<div class="empty">none yet</div>`;
    // Headers line up with their cells: right for numeric columns, left for text and times.
    const numeric = (c) => !TIME_COLS.test(c) && rows.every((r) => r[c] === null || r[c] === undefined || r[c] === "" || isNumber(r[c]));
    const numbers = cols.map(numeric);
    return `<table><tr>${cols.map((c, i) => `<th class="${numbers[i] ? "" : "text"}">${esc(c.replace(/_/g, " "))}</th>`).join("")}</tr>` +
      rows.map((r) => `<tr class="${rowClass(r)}">${cols.map((c, i) => cell(c, r[c], tz, numbers[i])).join("")}</tr>`).join("") + `</table>`;
  }

  function listing(id, what, cols, limit) {
    return (res, view) => {
      const bad = failure(res, what);
      if (bad) { $(id).innerHTML = bad; return; }
      const present = cols.filter((c) => res.body.columns.includes(c));
      $(id).innerHTML = table(present, records(res.body).slice(0, limit), view.tz);
    };
  }

  function balance(res, view) {
    const box = $("balance");
    if (res.status === 404 && res.body && !res.body.table) { box.innerHTML = `<div class="empty">no balance yet</div>`; return; }
    const bad = failure(res, "balance");
    if (bad) { box.innerHTML = bad; return; }
    const b = res.body;
    box.innerHTML = `<div id="balance-value" class="big ${String(b.balance).startsWith("-") ? "neg" : ""}">${esc(b.balance)}</div>` +
      `<div class="muted">${b.at ? "as of " + esc(ML.fullTime(toMs(b.at), view.tz)) : ""}</div>`;
  }

  function preview(res, view) {
    const box = $("preview"), due = $("preview-due");
    if (res.status === 404) {
      due.textContent = "";
      box.innerHTML = `<div class="empty">${esc((res.body && res.body.error) || "no open billing period")}</div>`;
      return;
    }
    const bad = failure(res, "invoice preview");
    if (bad) { box.innerHTML = bad; return; }
    const inv = res.body;
    due.textContent = `amount due ${inv.amount_due} ${inv.currency}`;
    const period = `${ML.fullTime(inv.period_start, view.tz)} – ${ML.fullTime(inv.period_end, view.tz)}`;
    box.innerHTML = `<div class="muted">${esc(inv.invoice_id)} · ${esc(period)} · ${esc(inv.status)}</div>` +
      table(["kind", "meter", "quantity", "unit_price", "amount"], inv.lines || [], view.tz,
        (r) => (r.kind === "overage" || r.kind === "amount_due" ? "sum" : ""));
  }

  function invoices(res, view) {
    const bad = failure(res, "invoices");
    if (bad) { $("invoices").innerHTML = bad; return; }
    // Summaries come from the `invoices` table when it exists, else from the lines.
    const invs = res.body.invoices || [];
    const cols = ["invoice_id", "period_start", "amount_due", "remaining", "status", "currency"]
      .filter((c) => invs.some((i) => c in i));
    $("invoices").innerHTML = table(cols, invs.slice(0, 12), view.tz);
  }

  ML.panels = {
    usage, burnDown, tokens, balance, preview, invoices,
    ledger: listing("ledger", "ledger", ["at", "kind", "amount", "balance_after", "grant_id", "ref"], 12),
    payments: listing("payments", "payments", ["at", "processor", "status", "amount", "currency", "pays", "failure_code"], 10),
    alerts: listing("alerts", "alerts", ["at", "kind", "ref", "data"], 10),
  };
})(window.ML);
