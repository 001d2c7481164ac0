// otel-run report: draws the job model embedded in this page (ARCHITECTURE.md §16; the fields are documented in src/report/mod.rs).
// Plain canvas and DOM, no library, no network: everything this page needs is in this file.
"use strict";

(function () {
  const errors = [];
  const errorBox = document.getElementById("errors");
  function reportError(msg) {
    errors.push(String(msg));
    errorBox.textContent = errors.join("\n");
    errorBox.hidden = false;
    publish();
  }
  window.addEventListener("error", (e) => reportError(e.message || e));
  window.addEventListener("unhandledrejection", (e) => reportError(e.reason));

  // What tests and tools read: window.otelRunReport and the same as JSON in <output id="probe">.
  const hook = { ready: false, ranks: [], rows: [], spanNames: [], tableNames: [], errors, firstPaintMs: null, spans: 0, drawMs: [] };
  window.otelRunReport = hook;
  function publish() {
    document.getElementById("probe").textContent = JSON.stringify(hook);
  }

  try {
    main();
  } catch (e) {
    reportError((e && e.stack) || e);
  }

  function main() {
    // Phases of the first paint, in ms since navigation start (scripts/bench-report.sh reads them).
    const timing = { scriptStart: performance.now() };
    hook.timing = timing;
    const M = JSON.parse(document.getElementById("report-data").textContent);
    timing.parsed = performance.now();
    const names = M.names, strings = M.strings, F = M.facts;

    // ---------------------------------------------------------------- formatting
    function fmtDur(us) {
      if (!(us > 0)) return "0";
      if (us < 1) return "<1 µs";
      if (us < 1000) return us.toFixed(0) + " µs";
      if (us < 1e6) return trim((us / 1e3).toPrecision(4)) + " ms";
      if (us < 600e6) return trim((us / 1e6).toPrecision(4)) + " s";
      const s = Math.round(us / 1e6), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return (h ? h + " h " : "") + m + " min " + (s % 60) + " s";
    }
    function trim(s) { return s.includes(".") ? s.replace(/\.?0+$/, "") : s; }
    const fmtNs = (ns) => fmtDur(ns / 1000);
    function fmtBytes(b) {
      if (b == null) return "–";
      const u = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
      return (i ? b.toFixed(1) : b) + " " + u[i];
    }
    const fmtSec = (s) => (s == null ? "–" : s.toFixed(3) + " s");
    function el(tag, attrs, ...kids) {
      const e = document.createElement(tag);
      if (attrs) for (const k in attrs) {
        if (k === "class") { if (attrs[k]) e.className = attrs[k]; }
        else if (k === "text") e.textContent = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
      for (const k of kids) e.append(k);
      return e;
    }
    const list = (a) => (a && a.length ? a.join(", ") : "–");

    // ---------------------------------------------------------------- colours
    const css = () => getComputedStyle(document.documentElement);
    let printing = false;
    let theme = {};
    function readTheme() {
      const c = css();
      const v = (n) => c.getPropertyValue(n).trim();
      const dark = !printing && window.matchMedia("(prefers-color-scheme: dark)").matches;
      theme = {
        bg: v("--bg"), fg: v("--fg"), muted: v("--muted"), line: v("--line"), panel: v("--panel"),
        err: v("--err"), sig: v("--sig"), agg: v("--agg"), hl: v("--hl"), dark,
        font: "11px " + v("--font"),
      };
    }
    // One colour per name: golden-angle hues in the order of the time table, so the phases that
    // matter most get the most distinct colours.
    const hues = new Array(names.length).fill(0);
    M.table.forEach((t, i) => { hues[t.name] = (i * 137.508 + 95) % 360; });
    function nameColour(id) {
      if (printing) return "#ffffff";
      return theme.dark ? `hsl(${hues[id]},45%,42%)` : `hsl(${hues[id]},60%,72%)`;
    }

    // ---------------------------------------------------------------- header and facts
    document.getElementById("title").textContent = document.title;
    const exitText = Object.entries(F.exits).map(([k, n]) => `${k} ×${n}`).join(", ");
    document.getElementById("subtitle").textContent =
      `${F.ranks} ranks on ${F.hosts.length} host${F.hosts.length === 1 ? "" : "s"}, ${fmtNs(F.wall)} wall, ` +
      `started ${new Date(Number(BigInt(F.start_unix_nano) / 1000000n)).toISOString()}`;
    const facts = [
      ["launcher", list(F.launcher)],
      ["job / step", list(F.job) + (F.step.length ? " / " + list(F.step) : "") + (F.cluster.length ? " on " + list(F.cluster) : "")],
      ["service", list(F.service)],
      ["ranks", `${F.ranks}` + (F.size.length ? ` (mpi.size ${list(F.size)})` : "")],
      ["hosts", F.hosts.length > 12 ? `${F.hosts.length}: ${F.hosts.slice(0, 12).join(", ")}, …` : `${F.hosts.length}: ${list(F.hosts)}`],
      ["wall time", `${fmtNs(F.wall)} (first span start to last span end)`],
      ["exit statuses", exitText || "no process spans"],
      ["trace", F.trace_count === 1 ? F.traces[0] : `${F.trace_count} traces: ${F.traces.join(", ")}${F.trace_count > F.traces.length ? ", …" : ""}`],
      ["input", `${F.files} file${F.files === 1 ? "" : "s"}, ${F.lines} lines, ${F.spans_read} spans` +
        (F.duplicates ? `, ${F.duplicates} duplicate copies drawn once` : "")],
      ["orphans", `${F.orphans} span${F.orphans === 1 ? "" : "s"} whose parent is missing`, F.orphans > 0],
      ["torn lines", `${F.torn} (a crash mid-write)`, F.torn > 0],
      ["invalid lines", `${F.invalid} skipped`, F.invalid > 0],
    ];
    if (F.attrs_omitted) facts.push(["attributes", `left out for ${F.attrs_omitted} spans/events (--attribute-budget)`]);
    const dl = document.getElementById("facts");
    for (const [k, v, bad] of facts) dl.append(el("dt", { text: k }), el("dd", { text: v, class: bad ? "bad" : "" }));

    const rt = document.getElementById("rank-table");
    rt.append(el("thead", null, el("tr", null, ...["rank", "host", "wall", "exit", "CPU user", "CPU system", "max RSS", "spans"].map((h) => el("th", { text: h })))));
    const rtb = el("tbody");
    for (const r of M.rank_facts) {
      rtb.append(el("tr", null,
        el("td", { text: r.rank }), el("td", { text: r.host || "–" }),
        el("td", { text: r.wall == null ? "–" : fmtNs(r.wall) }),
        el("td", { text: r.exit == null ? "no process span" : r.exit, class: r.error ? "bad" : "" }),
        el("td", { text: fmtSec(r.cpu_user) }), el("td", { text: fmtSec(r.cpu_system) }),
        el("td", { text: fmtBytes(r.max_rss) }), el("td", { text: r.spans })));
    }
    rt.append(rtb);
    if (M.rank_facts.length <= 16) document.getElementById("rank-details").open = true;

    // ---------------------------------------------------------------- rows: columns → typed arrays
    const MAX_DEPTH = 32;
    const rows = M.rows.map((r) => {
      const n = r.s.length;
      const start = new Float64Array(n), end = new Float64Array(n);
      let t = 0, depths = 1;
      for (let i = 0; i < n; i++) {
        t += r.s[i];
        start[i] = t;
        end[i] = t + r.d[i];
        if (r.z[i] + 1 > depths) depths = r.z[i] + 1;
      }
      depths = Math.min(depths, MAX_DEPTH);
      const status = new Uint8Array(n);
      const msg = new Map(), attrs = new Map(), events = new Map();
      for (let i = 0; i < r.st.length; i += 3) { status[r.st[i]] = r.st[i + 1]; if (r.st[i + 2] >= 0) msg.set(r.st[i], r.st[i + 2]); }
      for (let i = 0; i < r.a.length; i += 2) attrs.set(r.a[i], r.a[i + 1]);
      const signals = [];
      for (let i = 0; i < r.ev.length; i += 5) {
        const e = { span: r.ev[i], t: r.ev[i + 1], name: r.ev[i + 2], attrs: r.ev[i + 3], signal: r.ev[i + 4] === 1 };
        if (!events.has(e.span)) events.set(e.span, []);
        events.get(e.span).push(e);
        if (e.signal) signals.push(e);
      }
      // One level per depth: span indices in start order, end times, error prefix counts.
      const counts = new Int32Array(depths);
      for (let i = 0; i < n; i++) counts[Math.min(r.z[i], MAX_DEPTH - 1)]++;
      const levels = [];
      for (let d = 0; d < depths; d++) levels.push({ idx: new Int32Array(counts[d]), s: new Float64Array(counts[d]), e: new Float64Array(counts[d]), err: new Int32Array(counts[d] + 1), maxDur: 0, n: 0 });
      for (let i = 0; i < n; i++) {
        const L = levels[Math.min(r.z[i], MAX_DEPTH - 1)];
        const k = L.n++;
        L.idx[k] = i; L.s[k] = start[i]; L.e[k] = end[i];
        L.err[k + 1] = L.err[k] + (status[i] === 2 ? 1 : 0);
        if (end[i] - start[i] > L.maxDur) L.maxDur = end[i] - start[i];
      }
      return { label: r.label, rank: r.rank, host: r.host, n, start, end, name: r.n, status, msg, attrs, events, signals, levels, depths };
    });
    const totalSpans = rows.reduce((a, r) => a + r.n, 0);
    timing.built = performance.now();
    let tMax = 0;
    for (const r of rows) for (const L of r.levels) if (L.n) tMax = Math.max(tMax, L.e.reduce((a, b) => (a > b ? a : b), 0));
    tMax = Math.max(tMax, 1);

    // Layout: host headers between groups of ranks; the step row on top. Compact: one line per
    // rank, deeper lanes drawn over shallower ones (the innermost phase shows), for an overview
    // of many ranks.
    const many = rows.length > 48;
    const LEVEL_H = many ? 5 : 14, ROW_GAP = many ? 1 : 4, HOST_H = many ? 13 : 18, AXIS_H = 22, GUTTER = 118;
    const compactBox = document.getElementById("compact");
    let compact = rows.length > 64;
    compactBox.checked = compact;
    let entries = [], contentH = 0;
    function layout() {
      entries = [];
      let y = 0, lastHost = null;
      for (const r of rows) {
        if (r.rank !== null && r.host !== lastHost) {
          entries.push({ host: r.host || "(no host.name)", y, h: HOST_H });
          y += HOST_H;
          lastHost = r.host;
        }
        const h = (compact ? 1 : r.depths) * LEVEL_H + ROW_GAP;
        entries.push({ row: r, y, h });
        y += h;
      }
      contentH = y;
      hook.layout.rows = entries.filter((e) => e.row).map((e) => ({ label: e.row.label, y: e.y, h: e.h }));
    }
    // Where things are on the canvas (CSS px), for tools that point at a span.
    hook.layout = { rows: [], gutter: GUTTER, axis: AXIS_H, laneHeight: LEVEL_H, v0: 0, v1: 0, scrollY: 0 };
    layout();

    // ---------------------------------------------------------------- timeline
    const canvas = document.getElementById("timeline");
    const ctx = canvas.getContext("2d");
    const tip = document.getElementById("tooltip");
    let W = 0, H = 0, dpr = 1;
    let v0 = 0, v1 = tMax, scrollY = 0, selected = -1;
    let scheduled = false;

    function resize() {
      // No taller than the rows need: a 4-rank job gets a short timeline.
      canvas.style.height = Math.max(160, Math.min(window.innerHeight * 0.75, contentH + AXIS_H + 2)) + "px";
      const r = canvas.getBoundingClientRect();
      dpr = window.devicePixelRatio || 1;
      W = Math.max(200, Math.round(r.width));
      H = Math.max(120, Math.round(r.height));
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
    }
    function clampView() {
      const span = Math.max(v1 - v0, 0.5);
      const pad = tMax * 0.05;
      let a = v0, b = v0 + span;
      if (span > tMax + 2 * pad) { a = -pad; b = tMax + pad; }
      if (a < -pad) { b += -pad - a; a = -pad; }
      if (b > tMax + pad) { a -= b - (tMax + pad); b = tMax + pad; }
      v0 = a; v1 = b;
      scrollY = Math.max(0, Math.min(scrollY, Math.max(0, contentH - (H - AXIS_H))));
    }
    function request() {
      if (!scheduled) { scheduled = true; requestAnimationFrame(() => { scheduled = false; draw(); }); }
    }
    function lowerBound(a, x, lo, hi) {
      while (lo < hi) { const m = (lo + hi) >>> 1; if (a[m] < x) lo = m + 1; else hi = m; }
      return lo;
    }
    function niceStep(raw) {
      const p = Math.pow(10, Math.floor(Math.log10(raw)));
      for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
      return 10 * p;
    }

    function draw() {
      const began = performance.now();
      clampView();
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = theme.bg;
      ctx.fillRect(0, 0, W, H);
      const plotW = W - GUTTER;
      const k = plotW / (v1 - v0);
      ctx.font = theme.font;
      ctx.textBaseline = "middle";

      const top = AXIS_H;
      ctx.save();
      ctx.beginPath();
      ctx.rect(GUTTER, top, plotW, H - top);
      ctx.clip();
      // Rows in view only: the page stays fast with thousands of ranks.
      let first = 0;
      while (first < entries.length && entries[first].y + entries[first].h < scrollY) first++;
      for (let ei = first; ei < entries.length; ei++) {
        const en = entries[ei];
        const ry = top + en.y - scrollY;
        if (ry > H) break;
        if (!en.row) {
          ctx.fillStyle = theme.panel;
          ctx.fillRect(GUTTER, ry, plotW, en.h);
          continue;
        }
        const r = en.row;
        for (let d = 0; d < r.depths; d++) drawLevel(r, r.levels[d], ry + (compact ? 0 : d * LEVEL_H), k);
        for (const e of r.signals) {
          const x = GUTTER + (e.t - v0) * k;
          if (x < GUTTER - 6 || x > W + 6) continue;
          ctx.fillStyle = theme.sig;
          ctx.fillRect(x - 0.75, ry, 1.5, en.h - ROW_GAP);
          const s = Math.max(4, Math.min(7, LEVEL_H * 0.6));
          ctx.beginPath();
          ctx.moveTo(x - s, ry); ctx.lineTo(x + s, ry); ctx.lineTo(x, ry + s * 1.4); ctx.closePath();
          ctx.fill();
          if (printing) { ctx.strokeStyle = "#000"; ctx.stroke(); }
        }
      }
      ctx.restore();

      // Gutter: host headers and row labels.
      ctx.fillStyle = theme.bg;
      ctx.fillRect(0, top, GUTTER, H - top);
      // Labels never overlap: a row is labelled when there is room since the last label.
      let labelled = -1e9;
      for (let ei = first; ei < entries.length; ei++) {
        const en = entries[ei];
        const ry = top + en.y - scrollY;
        if (ry > H) break;
        if (!en.row) {
          ctx.fillStyle = theme.panel;
          ctx.fillRect(0, ry, GUTTER, en.h);
          ctx.fillStyle = theme.muted;
          ctx.fillText(clip(en.host, GUTTER - 8), 4, ry + en.h / 2);
          labelled = ry + en.h;
        } else if (ry + en.h >= top && ry >= labelled - 1) {
          const lh = Math.min(en.h, Math.max(LEVEL_H, 12));
          ctx.fillStyle = en.row.rank === null ? theme.hl : theme.fg;
          ctx.fillText(en.row.label, 8, ry + lh / 2);
          labelled = ry + 12;
        }
      }
      ctx.strokeStyle = theme.line;
      ctx.beginPath(); ctx.moveTo(GUTTER + 0.5, top); ctx.lineTo(GUTTER + 0.5, H); ctx.stroke();

      // Axis: time since the first span.
      ctx.fillStyle = theme.bg;
      ctx.fillRect(0, 0, W, top);
      const step = niceStep((v1 - v0) / Math.max(2, plotW / 110));
      ctx.fillStyle = theme.muted;
      ctx.strokeStyle = theme.line;
      ctx.beginPath();
      for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
        const x = Math.round(GUTTER + (t - v0) * k) + 0.5;
        ctx.moveTo(x, top - 5); ctx.lineTo(x, top);
        ctx.fillText("+" + fmtDur(t), x + 3, top / 2);
      }
      ctx.moveTo(GUTTER, top - 0.5); ctx.lineTo(W, top - 0.5);
      ctx.stroke();
      ctx.fillText("rank", 8, top / 2);
      Object.assign(hook.layout, { v0, v1, scrollY });
      // How long frames take (the last 50), for scripts/bench-report.sh.
      hook.drawMs.push(Math.round((performance.now() - began) * 10) / 10);
      if (hook.drawMs.length > 50) hook.drawMs.shift();
      document.getElementById("view-range").textContent = `${fmtDur(Math.max(0, v0))} – ${fmtDur(v1)} (${fmtDur(v1 - v0)} shown)`;
    }
    function clip(text, w) {
      if (ctx.measureText(text).width <= w) return text;
      let lo = 0, hi = text.length;
      while (lo < hi) { const m = (lo + hi + 1) >> 1; if (ctx.measureText(text.slice(0, m) + "…").width <= w) lo = m; else hi = m - 1; }
      return lo ? text.slice(0, lo) + "…" : "";
    }

    // One depth of one row. Spans at least a pixel wide are bars; runs of narrower spans collapse
    // into one-pixel columns (red if any of them is an error), found by binary search, so a
    // zoomed-out frame costs pixels, not spans.
    function drawLevel(r, L, y, k) {
      if (!L.n) return;
      const h = LEVEL_H - 1;
      const tA = v0, tB = v1;
      let i = lowerBound(L.s, tA - L.maxDur, 0, L.n);
      while (i < L.n) {
        const s = L.s[i];
        if (s > tB) break;
        const e = L.e[i];
        if (e < tA) { i++; continue; }
        const x0 = GUTTER + (s - tA) * k, x1 = GUTTER + (e - tA) * k;
        if (x1 - x0 >= 1) {
          bar(r, L.idx[i], x0, x1, y, h);
          i++;
          continue;
        }
        const px = Math.floor(x0);
        const tNext = tA + (px + 1 - GUTTER) / k;
        const j = Math.max(i + 1, lowerBound(L.s, tNext, i + 1, L.n));
        const errs = L.err[j] - L.err[i];
        const dim = selected >= 0 && !printing && !anyName(r, L, i, j, selected);
        ctx.globalAlpha = dim ? 0.25 : 1;
        ctx.fillStyle = errs ? theme.err : j - i > 1 ? theme.agg : nameColour(r.name[L.idx[i]]);
        if (printing && !errs) ctx.fillStyle = "#777";
        ctx.fillRect(px, y, 1, h);
        ctx.globalAlpha = 1;
        // A wide span starting in the same pixel after narrow ones (no overlap at one depth).
        if (j - 1 > i && L.e[j - 1] > tNext) {
          bar(r, L.idx[j - 1], GUTTER + (L.s[j - 1] - tA) * k, GUTTER + (L.e[j - 1] - tA) * k, y, h);
        }
        i = j;
      }
    }
    function anyName(r, L, i, j, name) {
      if (j - i > 64) return true; // too many to check per frame; do not dim what may contain it
      for (let q = i; q < j; q++) if (r.name[L.idx[q]] === name) return true;
      return false;
    }
    function bar(r, si, x0, x1, y, h) {
      const a = Math.max(x0, GUTTER - 2), b = Math.min(x1, W + 2);
      const w = Math.max(1, b - a);
      const nm = r.name[si];
      const err = r.status[si] === 2;
      ctx.globalAlpha = selected >= 0 && !printing && nm !== selected ? 0.25 : 1;
      ctx.fillStyle = err ? theme.err : nameColour(nm);
      ctx.fillRect(a, y, w, h);
      if (err && w > 4) {
        // Hatching: errors stay visible in black-and-white print.
        ctx.save();
        ctx.beginPath(); ctx.rect(a, y, w, h); ctx.clip();
        ctx.strokeStyle = printing ? "#fff" : theme.bg;
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (let x = a - h; x < a + w; x += 5) { ctx.moveTo(x, y + h); ctx.lineTo(x + h, y); }
        ctx.stroke();
        ctx.restore();
      }
      if (w > 3 && (printing || selected === nm)) {
        ctx.strokeStyle = printing ? "#000" : theme.hl;
        ctx.strokeRect(a + 0.5, y + 0.5, w - 1, h - 1);
      }
      if (w > 36 && h >= 10) {
        ctx.fillStyle = err ? "#fff" : theme.dark && !printing ? "#f0f0f0" : "#111";
        ctx.fillText(clip(names[nm], w - 6), a + 3, y + h / 2 + 0.5);
      }
      ctx.globalAlpha = 1;
    }

    // ---------------------------------------------------------------- hover
    function hit(mx, my) {
      if (mx < GUTTER || my < AXIS_H) return null;
      const cy = my - AXIS_H + scrollY;
      let lo = 0, hi = entries.length - 1;
      while (lo < hi) { const m = (lo + hi + 1) >> 1; if (entries[m].y <= cy) lo = m; else hi = m - 1; }
      const en = entries[lo];
      if (!en || !en.row || cy > en.y + en.h) return null;
      const r = en.row;
      const k = (W - GUTTER) / (v1 - v0);
      const t = v0 + (mx - GUTTER) / k, tol = 3 / k;
      for (const e of r.signals) if (Math.abs(e.t - t) <= tol * 1.5) return { r, event: e };
      const d = Math.floor((cy - en.y) / LEVEL_H);
      if (d < 0 || d >= (compact ? 1 : r.depths)) return null;
      // Compact: the deepest lane drawn at that point is the one seen.
      for (let q = compact ? r.depths - 1 : d; q >= (compact ? 0 : d); q--) {
        const L = r.levels[q];
        let i = lowerBound(L.s, t + tol, 0, L.n) - 1;
        for (let steps = 0; i >= 0 && steps < 256; i--, steps++) {
          if (L.e[i] >= t - tol) return { r, span: L.idx[i] };
          if (L.s[i] < t - tol - L.maxDur) break;
        }
      }
      return null;
    }
    function tipText(h) {
      const r = h.r;
      const frag = document.createDocumentFragment();
      const line = (text, cls) => frag.append(cls ? el("div", { class: cls, text }) : el("div", { text }));
      const where = r.label + (r.host ? " on " + r.host : "");
      if (h.event) {
        frag.append(el("b", { text: strings[h.event.name] }));
        line(`signal event, ${where}, at +${fmtDur(h.event.t)}`);
        if (h.event.attrs >= 0) line(strings[h.event.attrs], "attrs");
        return frag;
      }
      const i = h.span;
      frag.append(el("b", { text: names[r.name[i]] }));
      line(`${fmtDur(r.end[i] - r.start[i])}, from +${fmtDur(r.start[i])} (${where})`);
      const st = r.status[i];
      const m = r.msg.get(i);
      line("status: " + (st === 2 ? "ERROR" : st === 1 ? "OK" : "UNSET") + (m !== undefined ? ` — ${strings[m]}` : ""), st === 2 ? "bad" : "");
      const a = r.attrs.get(i);
      if (a !== undefined) line(strings[a], "attrs");
      for (const e of r.events.get(i) || []) line(`event ${strings[e.name]} at +${fmtDur(e.t)}` + (e.attrs >= 0 ? "\n" + strings[e.attrs] : ""), e.signal ? "bad" : "attrs");
      return frag;
    }
    canvas.addEventListener("mousemove", (ev) => {
      if (drag) return;
      const b = canvas.getBoundingClientRect();
      const mx = ev.clientX - b.left, my = ev.clientY - b.top;
      const h = hit(mx, my);
      if (!h) { tip.hidden = true; return; }
      tip.replaceChildren(tipText(h));
      tip.hidden = false;
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      tip.style.left = Math.min(mx + 14, W - tw - 4) + "px";
      tip.style.top = (my + 16 + th > H ? Math.max(0, my - th - 8) : my + 16) + "px";
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });

    // ---------------------------------------------------------------- zoom and pan
    function zoom(factor, atX) {
      const plotW = W - GUTTER;
      const fx = atX == null ? 0.5 : Math.min(1, Math.max(0, (atX - GUTTER) / plotW));
      const t = v0 + (v1 - v0) * fx;
      const span = Math.max(2, Math.min((v1 - v0) * factor, tMax * 1.1));
      v0 = t - span * fx; v1 = v0 + span;
      request();
    }
    function pan(px) { const dt = px * (v1 - v0) / (W - GUTTER); v0 += dt; v1 += dt; request(); }
    canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      tip.hidden = true;
      const b = canvas.getBoundingClientRect();
      const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? H : 1;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) zoom(Math.exp(ev.deltaY * unit * 0.0025), ev.clientX - b.left);
      else if (ev.shiftKey) pan((ev.deltaY || ev.deltaX) * unit);
      else { if (ev.deltaX) pan(ev.deltaX * unit); scrollY += ev.deltaY * unit; request(); }
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("pointerdown", (ev) => {
      drag = { x: ev.clientX, y: ev.clientY };
      canvas.setPointerCapture(ev.pointerId);
      canvas.style.cursor = "grabbing";
      tip.hidden = true;
    });
    canvas.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      pan(drag.x - ev.clientX);
      scrollY += drag.y - ev.clientY;
      drag = { x: ev.clientX, y: ev.clientY };
      request();
    });
    const endDrag = () => { drag = null; canvas.style.cursor = ""; };
    canvas.addEventListener("pointerup", endDrag);
    canvas.addEventListener("pointercancel", endDrag);
    canvas.addEventListener("dblclick", (ev) => { const b = canvas.getBoundingClientRect(); zoom(ev.shiftKey ? 2 : 0.5, ev.clientX - b.left); });
    canvas.addEventListener("keydown", (ev) => {
      const k = ev.key;
      if (k === "+" || k === "=") zoom(0.5);
      else if (k === "-") zoom(2);
      else if (k === "0") reset();
      else if (k === "ArrowLeft") pan(-(W - GUTTER) / 8);
      else if (k === "ArrowRight") pan((W - GUTTER) / 8);
      else if (k === "ArrowUp") { scrollY -= 60; request(); }
      else if (k === "ArrowDown") { scrollY += 60; request(); }
      else return;
      ev.preventDefault();
    });
    function reset() { v0 = 0; v1 = tMax; request(); }
    document.getElementById("zoom-in").onclick = () => zoom(0.5);
    document.getElementById("zoom-out").onclick = () => zoom(2);
    document.getElementById("zoom-reset").onclick = reset;
    compactBox.onchange = () => {
      compact = compactBox.checked;
      layout();
      resize();
      request();
    };

    // ---------------------------------------------------------------- where the time went
    const table = document.getElementById("names");
    table.append(el("thead", null, el("tr", null, ...["span name", "lost", "imbalance", "ranks", "rank min", "rank mean", "rank max", "slowest rank", "count", "total", "max span"].map((h) => el("th", { text: h })))));
    const tbody = el("tbody");
    const rowsByName = new Map();
    for (const t of M.table) {
      const sw = el("span", { class: "swatch" });
      sw.style.background = `hsl(${hues[t.name]},60%,65%)`;
      const has = t.ranks != null;
      const tr = el("tr", { "data-name": names[t.name] },
        el("td", null, sw, names[t.name]),
        el("td", { text: has ? fmtNs(t.lost) : "–" }),
        el("td", { text: has ? t.imbalance.toFixed(2) : "–", class: has && t.imbalance >= 1.5 ? "bad" : "" }),
        el("td", { text: has ? t.ranks : "–" }),
        el("td", { text: has ? fmtNs(t.rmin) : "–" }),
        el("td", { text: has ? fmtNs(t.rmean) : "–" }),
        el("td", { text: has ? fmtNs(t.rmax) : "–" }),
        el("td", { text: has ? t.rmax_rank : "–" }),
        el("td", { text: t.count }),
        el("td", { text: fmtNs(t.total) }),
        el("td", { text: fmtNs(t.max) }));
      tr.onclick = () => select(t.name);
      rowsByName.set(t.name, tr);
      tbody.append(tr);
    }
    table.append(tbody);
    function select(id) {
      selected = selected === id ? -1 : id;
      for (const [n, tr] of rowsByName) tr.classList.toggle("selected", n === selected);
      request();
    }

    const barsBox = document.getElementById("bars");
    const barCanvases = [];
    for (const b of M.bars) {
      const c = el("canvas", { "aria-label": `per-rank time in ${names[b.name]}` });
      const max = Math.max(...b.per_rank), mean = b.per_rank.reduce((a, x) => a + x, 0) / b.per_rank.length;
      const worst = M.rank_list[b.per_rank.indexOf(max)];
      const cap = el("figcaption", null, el("b", { text: names[b.name] }),
        ` — slowest rank ${worst}: ${fmtNs(max)}, mean ${fmtNs(mean)}`);
      barsBox.append(el("figure", null, c, cap));
      barCanvases.push({ c, b, max, mean });
    }
    function drawBars() {
      for (const { c, b, max, mean } of barCanvases) {
        const w = Math.max(100, Math.round(c.getBoundingClientRect().width)), h = 70;
        c.width = w * dpr; c.height = h * dpr;
        const g = c.getContext("2d");
        g.setTransform(dpr, 0, 0, dpr, 0, 0);
        g.fillStyle = theme.bg; g.fillRect(0, 0, w, h);
        const n = b.per_rank.length, bw = w / n;
        for (let i = 0; i < n; i++) {
          const v = b.per_rank[i], bh = max ? (v / max) * (h - 4) : 0;
          g.fillStyle = v === max && max > mean * 1.0001 ? (printing ? "#000" : theme.fg) : printing ? "#888" : `hsl(${hues[b.name]},55%,${theme.dark ? 50 : 60}%)`;
          g.fillRect(i * bw, h - bh, Math.max(bw - (bw > 3 ? 1 : 0), 0.5), bh);
        }
        const my = h - (max ? (mean / max) * (h - 4) : 0);
        g.strokeStyle = theme.fg; g.setLineDash([4, 3]);
        g.beginPath(); g.moveTo(0, my + 0.5); g.lineTo(w, my + 0.5); g.stroke();
      }
    }

    document.getElementById("footer").textContent =
      `${totalSpans} spans in ${rows.length} rows. Written by otel-run report; works offline, nothing is loaded from the network. ` +
      "Times are rounded to microseconds; the table's numbers are exact.";

    // ---------------------------------------------------------------- go
    function redrawAll() { readTheme(); resize(); draw(); drawBars(); }
    redrawAll();
    window.addEventListener("resize", () => { resize(); request(); drawBars(); });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
    window.addEventListener("beforeprint", () => {
      printing = true;
      document.getElementById("rank-details").open = true;
      redrawAll();
    });
    window.addEventListener("afterprint", () => { printing = false; redrawAll(); });

    hook.rows = rows.map((r) => r.label);
    hook.ranks = rows.filter((r) => r.rank !== null).map((r) => r.rank);
    hook.spanNames = names.slice();
    hook.tableNames = Array.from(tbody.querySelectorAll("tr"), (tr) => tr.getAttribute("data-name"));
    hook.spans = totalSpans;
    hook.theme = theme.dark ? "dark" : "light";
    hook.compact = compact;
    hook.errorSpans = rows.reduce((a, r) => a + r.status.reduce((c, x) => c + (x === 2 ? 1 : 0), 0), 0);
    hook.signalEvents = rows.reduce((a, r) => a + r.signals.length, 0);
    timing.drawn = performance.now();
    for (const k in timing) timing[k] = Math.round(timing[k]);
    hook.firstPaintMs = timing.drawn;
    hook.ready = true;
    publish();
  }
})();
