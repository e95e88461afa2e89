"use strict";
// The page: key prompt, customer picker, window and zone, the pipeline counters and the
// refresh loop that feeds the panels. View settings live in the URL hash (shareable); the
// key never does.
(function (ML) {
  const $ = (id) => document.getElementById(id);
  const { esc, fmtInt, shortNum } = ML;
  // Month is an average length: it only sizes the bars, the windows come from the API.
  const WINDOWS = {
    minute: { ms: 60e3, n: 60 },
    hour: { ms: 3600e3, n: 48 },
    day: { ms: 86400e3, n: 31 },
    month: { ms: 30.44 * 86400e3, n: 12 },
  };
  const COUNTERS = [
    ["events_in", "Events in"], ["counted", "Counted"], ["duplicates", "Duplicates"],
    ["replayed", "Replayed"], ["late", "Late"], ["rejected", "Rejected", true],
    ["forwarded", "Forwarded"], ["dlq_sent", "DLQ", true], ["rows_written", "Rows written"],
    ["dedup_ids", "Dedup ids"],
  ];
  const REFRESH_MS = 3000;
  const RATE_SAMPLES = 90;
  const state = {
    customer: "", window: "minute", tz: "UTC", paused: false, blocked: false, tick: 0,
    scoped: false, prevHealth: null, prevAt: 0, rates: [],
  };
  const hook = window.meterline;
  Object.assign(hook, { refreshes: 0, lastError: null, state });

  function view() {
    const w = WINDOWS[state.window], now = Date.now();
    // One extra window on the right so the current, still-growing window is drawn whole.
    return { customer: state.customer, window: state.window, tz: state.tz,
             x0: now - w.n * w.ms, x1: now + w.ms, barMs: w.ms };
  }

  // ---- key ----
  function showKeyState() {
    const k = ML.key.get();
    $("key-state").textContent = k ? `key ••••${k.slice(-4)}${ML.key.remembered() ? " (remembered)" : ""}` : "no key";
  }
  function askKey(message, blocking) {
    state.blocked = state.blocked || blocking;
    $("key-message").textContent = message;
    $("key-panel").hidden = false;
    $("key-input").value = "";
    $("key-remember").checked = ML.key.remembered();
    $("key-input").focus();
  }
  function useKey(value, remember) {
    ML.key.set(value, remember);
    state.blocked = false;
    $("key-panel").hidden = true;
    banner("");
    showKeyState();
    state.tick = 0; // re-asks /customers: another key may be admin or scoped
    refreshNow();
  }
  function banner(text) {
    $("banner").textContent = text;
    $("banner").hidden = !text;
  }
  function authFailed(e) {
    const had = Boolean(ML.key.get());
    const msg = e.status === 401
      ? (had ? `The worker refused this API key (401: ${e.message}).` : `This worker requires an API key (401: ${e.message}).`)
      : `This key may not read ${e.path.split("?")[0]} (403: ${e.message}). Use a key for this customer, or pick a customer the key may read.`;
    banner(msg);
    askKey(msg + " Enter an API key:", true);
    $("status").className = "pill bad";
    $("status").textContent = e.status === 401 ? "key needed" : "forbidden";
  }

  // ---- customers: admin keys (and an open API) list them; a customer key types its own ----
  async function loadCustomers() {
    const res = await ML.get("/customers?limit=1000", [403]);
    if (res.status === 403) {
      state.scoped = true;
      $("customer-note").textContent = "This key is scoped to one customer: type its customer id above.";
      $("customer-list").innerHTML = "";
      return;
    }
    if (!res.ok) return;
    state.scoped = false;
    const list = ML.records(res.body);
    if (!state.customer && list.length) {
      const weight = (c) => Number(c.events) + Number(c.token_events);
      state.customer = list.reduce((a, c) => (weight(c) > weight(a) ? c : a)).customer_id;
      $("customer").value = state.customer;
      saveHash();
    }
    $("customer-list").innerHTML = list.map((c) => `<option value="${esc(c.customer_id)}">${fmtInt(c.events)} events` +
      `${Number(c.token_events) ? `, ${fmtInt(c.token_events)} LLM` : ""}</option>`).join("");
    $("customer-note").textContent = list.length ? `${list.length} customers${res.body.truncated ? " (first 1000)" : ""}` : "no customers yet";
  }

  // ---- pipeline ----
  function renderHealth(res) {
    const pill = $("status");
    if (!res.ok || !res.body || !res.body.usage) {
      pill.className = "pill bad";
      pill.textContent = res.status === 0 ? "worker unreachable" : `health ${res.status}`;
      return;
    }
    const h = res.body, now = Date.now();
    const values = { ...h.usage, dlq_sent: h.dlq_sent, dedup_ids: h.dedup_ids };
    pill.className = "pill " + (h.ready ? "ok" : "warn");
    pill.textContent = (h.ready ? "ready" : "not ready") + ` · ${(h.assigned || []).length} partitions`;
    const prev = state.prevHealth, dt = (now - state.prevAt) / 1000;
    $("counters").innerHTML = COUNTERS.map(([key, label, alarm]) => {
      if (values[key] === undefined) return "";
      const delta = prev && prev[key] !== undefined && dt > 0 ? (values[key] - prev[key]) / dt : null;
      const d = delta === null ? "&nbsp;" : `${delta >= 0 ? "+" : ""}${shortNum(delta)}/s`;
      return `<div class="card stat${alarm && values[key] > 0 ? " alert" : ""}"><div class="label">${label}</div>` +
        `<div class="value">${fmtInt(values[key])}</div><div class="delta">${d}</div></div>`;
    }).join("");
    if (prev && dt > 0) {
      state.rates.push({ t: now, v: Math.max(0, (values.events_in - prev.events_in) / dt) });
      if (state.rates.length > RATE_SAMPLES) state.rates.shift();
    }
    state.prevHealth = values;
    state.prevAt = now;
    const last = state.rates[state.rates.length - 1];
    $("rate-now").textContent = last ? `${shortNum(last.v)} ev/s` : "measuring…";
    ML.draw("rate", $("rate-chart"), {
      height: 130, tz: state.tz, xRange: [now - RATE_SAMPLES * REFRESH_MS, now],
      series: [{ label: "events/s", color: ML.COLORS[0], kind: "line" }],
    }, [state.rates.map((r) => r.t), state.rates.map((r) => r.v)], [state.rates.map((r) => shortNum(r.v))]);
  }

  // ---- refresh ----
  async function refresh() {
    // /health stays open whatever the keys; a 401/403 there just means "not shown".
    const health = ML.get("/health", [401, 403]).then(renderHealth);
    if (state.tick % 5 === 0 || (!state.customer && !state.scoped)) await loadCustomers();
    state.tick++;
    const jobs = [health];
    if (state.customer) {
      const v = view(), c = encodeURIComponent(state.customer), p = ML.panels;
      const q = new URLSearchParams({ window: v.window, tz: v.tz, from: String(Math.floor(v.x0)) });
      // An answer that arrives after the user switched customer, window or zone is dropped:
      // it would draw the previous selection over the new one. So is a refusal: a 403 for the
      // customer just replaced would block the page and swallow the refresh asked for the new one.
      const current = () => v.customer === state.customer && v.window === state.window && v.tz === state.tz;
      const load = (path, ...render) => ML.get(path).then(
        (r) => { if (current()) for (const f of render) f(r, v); },
        (e) => { if (current()) throw e; },
      );
      jobs.push(
        load(`/usage/${c}?${q}`, p.usage),
        load(`/tokens/${c}?${q}`, p.tokens),
        load(`/balance/${c}`, p.balance),
        // Newest first; the burn-down reads the latest 1000 entries, the table the first few.
        load(`/ledger/${c}?limit=1000`, p.burnDown, p.ledger),
        load(`/invoices/${c}/preview`, p.preview),
        load(`/invoices/${c}?limit=200`, p.invoices),
        load(`/payments/${c}?limit=10`, p.payments),
        load(`/alerts/${c}?limit=10`, p.alerts),
      );
    }
    // allSettled: one panel's failure must not hide the others; the first auth error wins.
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    hook.refreshes++;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString("en-GB", { hourCycle: "h23" });
  }

  // One refresh at a time, so a slow store never piles requests up; a control changed
  // meanwhile asks for one more right after, with the new selection.
  let running = null, again = false;
  function refreshNow() {
    if (running) { again = true; return running; }
    running = (async () => {
      do {
        again = false;
        try {
          await refresh();
          hook.lastError = null;
        } catch (e) {
          hook.lastError = String(e);
          if (e instanceof ML.AuthError) authFailed(e);
          else $("updated").textContent = "refresh failed: " + e;
        }
      } while (again && !state.blocked);
      running = null;
    })();
    return running;
  }
  async function loop() {
    if (!state.paused && !state.blocked) await refreshNow();
    setTimeout(loop, REFRESH_MS);
  }

  // ---- controls ----
  function saveHash() {
    const p = new URLSearchParams({ customer: state.customer, window: state.window, tz: state.tz });
    history.replaceState(null, "", "#" + p.toString());
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.get("customer")) state.customer = p.get("customer");
    if (WINDOWS[p.get("window")]) state.window = p.get("window");
    if (p.get("tz")) state.tz = p.get("tz");
  }
  function resetCustomerView() {
    for (const id of ML.chartIds()) if (id !== "rate") ML.clear(id);
    $("usage").innerHTML = "";
  }
  function setup() {
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const zones = [...new Set(["UTC", local, state.tz, "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Tokyo"])];
    $("tz").innerHTML = zones.map((z) => `<option value="${esc(z)}">${esc(z)}${z === local && z !== "UTC" ? " (local)" : ""}</option>`).join("");
    $("tz").value = state.tz;
    $("window").value = state.window;
    $("customer").value = state.customer;
    $("customer-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.customer = $("customer").value.trim();
      saveHash();
      resetCustomerView();
      // A customer key refused for one customer may be right for the one typed now.
      if (state.blocked) { state.blocked = false; $("key-panel").hidden = true; banner(""); }
      refreshNow();
    });
    $("window").addEventListener("change", (e) => { state.window = e.target.value; saveHash(); refreshNow(); });
    $("tz").addEventListener("change", (e) => { state.tz = e.target.value; saveHash(); resetCustomerView(); refreshNow(); });
    $("pause").addEventListener("click", () => {
      state.paused = !state.paused;
      $("pause").textContent = state.paused ? "Resume" : "Pause";
      $("pause").classList.toggle("on", state.paused);
    });
    $("key-button").addEventListener("click", () => askKey("Enter an API key (admin, or scoped to one customer):", false));
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      useKey($("key-input").value.trim(), $("key-remember").checked);
    });
    $("key-none").addEventListener("click", () => useKey("", false));
    showKeyState();
  }

  readHash();
  setup();
  loop();
})(window.ML);
