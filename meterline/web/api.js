"use strict";
// The API client (key storage, Bearer header, auth failures) and the helpers every panel
// uses: exact decimals, formatting, listings as records. One namespace, ML, shared by the
// page's plain scripts.
window.ML = window.ML || {};

(function (ML) {
  // ---- exact decimals: the API prints decimals as strings; sums stay exact with BigInt ----
  // 24 fractional digits covers every Decimal(38, 12) column and their sums.
  const SCALE = 24;
  const ONE = 10n ** BigInt(SCALE);

  function dec(s) {
    if (s === null || s === undefined || s === "") return 0n;
    s = String(s);
    const neg = s.startsWith("-");
    if (neg) s = s.slice(1);
    const [i, f = ""] = s.split(".");
    const v = BigInt(i || "0") * ONE + BigInt((f + "0".repeat(SCALE)).slice(0, SCALE) || "0");
    return neg ? -v : v;
  }

  // Plain text of an exact value: no exponent, no trailing zeros, as the API prints them.
  // maxFrac rounds half-up for a compact display; the default shows every digit.
  function decStr(v, maxFrac = SCALE, group = false) {
    const neg = v < 0n;
    if (neg) v = -v;
    if (maxFrac < SCALE) {
      const unit = 10n ** BigInt(SCALE - maxFrac);
      v = ((v + unit / 2n) / unit) * unit;
    }
    let i = (v / ONE).toString();
    if (group) i = i.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const f = (v % ONE).toString().padStart(SCALE, "0").slice(0, maxFrac).replace(/0+$/, "");
    const out = f ? `${i}.${f}` : i;
    return neg && out !== "0" ? `-${out}` : out;
  }

  // For geometry only: a chart's position, never a shown or summed value.
  const num = (s) => (s === null || s === undefined || s === "" ? null : Number(s));
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function shortNum(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "";
    const a = Math.abs(v);
    const trim = (x) => x.toPrecision(3).replace(/\.?0+$/, "");
    if (a >= 1e9) return trim(v / 1e9) + "G";
    if (a >= 1e6) return trim(v / 1e6) + "M";
    if (a >= 1e4) return trim(v / 1e3) + "k";
    if (a === 0) return "0";
    return Number(v.toPrecision(3)).toString();
  }

  // Epoch ms from what the API prints for a time: epoch ms (billing records) or ISO-8601.
  const toMs = (v) => (typeof v === "number" ? v : Date.parse(v));

  function fullTime(t, tz) {
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, dateStyle: "medium", timeStyle: "medium", hourCycle: "h23",
    }).format(new Date(t));
  }

  function records(body) {
    const cols = body.columns || [];
    return (body.rows || []).map((row) => Object.fromEntries(cols.map((c, i) => [c, row[i]])));
  }

  // ---- the key: per tab by default (sessionStorage), per device when asked (localStorage) ----
  const KEY_ITEM = "meterline.apiKey";
  const key = {
    get() {
      return sessionStorage.getItem(KEY_ITEM) || localStorage.getItem(KEY_ITEM) || "";
    },
    set(value, remember) {
      sessionStorage.removeItem(KEY_ITEM);
      localStorage.removeItem(KEY_ITEM);
      if (value) (remember ? localStorage : sessionStorage).setItem(KEY_ITEM, value);
    },
    remembered: () => Boolean(localStorage.getItem(KEY_ITEM)),
  };

  // A 401 (no or unknown key) or 403 (a key that may not read this) stops the refresh loop
  // until the user gives another key: polling on with a refused key only fills the logs.
  class AuthError extends Error {
    constructor(res) {
      super((res.body && res.body.error) || `HTTP ${res.status}`);
      this.status = res.status;
      this.path = res.path;
    }
  }

  // GET path as JSON with the key, if any. Answers {ok, status, body, path}; a transport error
  // is status 0. allow: statuses the caller handles itself (403 on /customers for a customer
  // key); any other 401/403 throws AuthError.
  async function get(path, allow = []) {
    const headers = { Accept: "application/json" };
    const k = key.get();
    if (k) headers.Authorization = `Bearer ${k}`;
    let res;
    try {
      const r = await fetch(path, { cache: "no-store", headers });
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      res = { ok: r.ok, status: r.status, body, path };
    } catch (e) {
      return { ok: false, status: 0, body: { error: String(e) }, path };
    }
    if ((res.status === 401 || res.status === 403) && !allow.includes(res.status)) {
      throw new AuthError(res);
    }
    return res;
  }

  Object.assign(ML, {
    dec, decStr, num, fmtInt, esc, shortNum, toMs, fullTime, records, key, get, AuthError,
  });
})(window.ML);
