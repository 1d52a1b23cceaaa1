// Shared by every page: API calls (with the token from this tab) and number formatting.
"use strict";
const Alto = (() => {
  const tokenInput = document.getElementById("token-input");
  tokenInput.value = sessionStorage.getItem("alto-token") || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem("alto-token", tokenInput.value.trim()));

  function showError(message) {
    const box = document.getElementById("error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const token = sessionStorage.getItem("alto-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`/api/v1${path}`, {
      ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const fields = (body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
      throw new Error(`${body.title || response.status}: ${body.detail || ""}${fields && fields !== body.detail ? ` (${fields})` : ""}`);
    }
    return body;
  }

  // Numbers for people: 4 significant digits, no 0.30000000000000004, NaN/Infinity named.
  function num(value, digits = 4) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "string") return value.replace("Infinity", "∞");
    if (!Number.isFinite(value)) return String(value);
    if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(digits - 1);
    return String(Number(value.toPrecision(digits)));
  }
  const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  // What the search samples: c = alpha (1 - beta1) (ALTO is stable for |c| < 1) and
  // log10(1 - beta1); null when alpha or beta1 is missing or not finite.
  const c = (alpha, beta1) => {
    const a = finite(alpha), b = finite(beta1);
    return a === null || b === null ? null : finite(a * (1 - b));
  };
  const logOneMinusBeta1 = (beta1) => {
    const b = finite(beta1);
    return b === null || 1 - b <= 0 ? null : finite(Math.log10(1 - b));
  };
  const pct = (v) => (typeof v === "number" && Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${num(100 * v, 3)} pts` : "–");
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

  function cell(row, content, cls) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content;
    if (cls) td.className = cls;
    row.append(td);
    return td;
  }
  function link(href, text) {
    const a = document.createElement("a");
    a.href = href; a.textContent = text;
    return a;
  }
  const plotConfig = { responsive: true, displaylogo: false };
  function ready() {
    document.body.dataset.readyAt = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }
  return { api, num, pct, when, finite, c, logOneMinusBeta1, cell, link, showError, plotConfig, ready };
})();
