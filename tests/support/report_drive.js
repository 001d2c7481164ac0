// Drives an `otel-run report` page in real headless Chromium through the DevTools protocol, as a
// person would: hover a span, hover a signal marker, ctrl+wheel to zoom, drag to pan, click a row
// of the time table. Prints one JSON object with what the page showed after each step, and every
// console message and exception, and how long each frame took to draw (drawMs).
//
// Usage: node report_drive.js CHROMIUM PAGE.html [PRINT.png]
// Last, it switches the page to print media (and fires beforeprint, as printing does) and saves
// a screenshot of that rendering to PRINT.png.
// Standard library only, any Node >= 14. The protocol runs over --remote-debugging-pipe (file
// descriptors 3 and 4, NUL-terminated JSON): no port, no network. The browser gets a fresh
// profile and no background networking; it is stopped by its pid at the end.
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [chromium, page, printShot] = process.argv.slice(2);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "otel-run-report-drive-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-extensions", "--remote-debugging-pipe",
  "--window-size=1400,1000", `--user-data-dir=${profile}`, "about:blank",
], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, f, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main() {
  const toBrowser = browser.stdio[3], fromBrowser = browser.stdio[4];
  let id = 0, session;
  const pending = new Map();
  const console_ = [];
  let buffered = "";
  fromBrowser.setEncoding("utf8");
  fromBrowser.on("data", (chunk) => {
    buffered += chunk;
    let nul;
    while ((nul = buffered.indexOf("\0")) >= 0) {
      const msg = JSON.parse(buffered.slice(0, nul));
      buffered = buffered.slice(nul + 1);
      if (msg.id && pending.has(msg.id)) {
        const { ok, fail } = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) fail(new Error(JSON.stringify(msg.error))); else ok(msg.result);
      } else if (msg.method === "Runtime.consoleAPICalled") {
        console_.push(`${msg.params.type}: ${msg.params.args.map((a) => a.value ?? a.description).join(" ")}`);
      } else if (msg.method === "Runtime.exceptionThrown") {
        console_.push(`exception: ${JSON.stringify(msg.params.exceptionDetails)}`);
      } else if (msg.method === "Log.entryAdded") {
        console_.push(`log ${msg.params.entry.level}: ${msg.params.entry.text}`);
      }
    }
  });
  // Browser-level commands without a session; page commands in the attached page's session.
  const call = (sessionId, method, params = {}) => new Promise((ok, fail) => {
    const n = ++id;
    pending.set(n, { ok, fail });
    toBrowser.write(JSON.stringify(sessionId ? { id: n, sessionId, method, params } : { id: n, method, params }) + "\0");
  });
  const { targetId } = await call(null, "Target.createTarget", { url: "about:blank" });
  ({ sessionId: session } = await call(null, "Target.attachToTarget", { targetId, flatten: true }));
  const send = (method, params) => call(session, method, params);
  const evaluate = async (expr) => {
    const r = await send("Runtime.evaluate", { expression: expr, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`${expr}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  };
  await send("Runtime.enable");
  await send("Log.enable");
  await send("Page.enable");
  await send("Page.navigate", { url: "file://" + path.resolve(page) });
  await until("the report to be ready", () => evaluate("!!(window.otelRunReport && window.otelRunReport.ready)"));

  const mouse = (type, x, y, extra = {}) => send("Input.dispatchMouseEvent", { type, x, y, button: "none", ...extra });
  const state = () => evaluate(`(() => {
    const tip = document.getElementById("tooltip");
    const sel = document.querySelector("#names tr.selected");
    return { tooltip: tip.hidden ? null : tip.innerText, view: document.getElementById("view-range").textContent,
             selected: sel ? sel.getAttribute("data-name") : null };
  })()`);
  // Where a time (µs from the job start) on a row's lane is, in page coordinates.
  const at = (label, lane, us) => evaluate(`(() => {
    const L = window.otelRunReport.layout, c = document.getElementById("timeline").getBoundingClientRect();
    const row = L.rows.find((r) => r.label === ${JSON.stringify(label)});
    const x = c.left + L.gutter + (${us} - L.v0) / (L.v1 - L.v0) * (c.width - L.gutter);
    const y = c.top + L.axis + row.y - L.scrollY + (${lane} + 0.5) * L.laneHeight;
    return { x, y };
  })()`);

  const out = { steps: {} };
  let p = await at(process.env.DRIVE_ROW || "rank 1", 1, 2.5e6);
  await mouse("mouseMoved", p.x, p.y);
  out.steps.hoverSpan = await state();
  p = await at(process.env.DRIVE_ROW || "rank 1", 0, 9e6);
  await mouse("mouseMoved", p.x, p.y);
  out.steps.hoverSignal = await state();
  p = await at("rank 0", 0, 5e6);
  await mouse("mouseWheel", p.x, p.y, { deltaX: 0, deltaY: -600, modifiers: 2 });
  await sleep(100);
  out.steps.zoomed = await state();
  await mouse("mousePressed", p.x, p.y, { button: "left", buttons: 1, clickCount: 1 });
  await mouse("mouseMoved", p.x - 300, p.y, { button: "left", buttons: 1 });
  await mouse("mouseReleased", p.x - 300, p.y, { button: "left", buttons: 0, clickCount: 1 });
  await sleep(100);
  out.steps.panned = await state();
  const r = await evaluate(`(() => { const tr = document.querySelector('#names tbody tr'); tr.scrollIntoView();
    const b = tr.getBoundingClientRect(); return { x: b.left + 20, y: b.top + b.height / 2 }; })()`);
  await mouse("mousePressed", r.x, r.y, { button: "left", buttons: 1, clickCount: 1 });
  await mouse("mouseReleased", r.x, r.y, { button: "left", buttons: 0, clickCount: 1 });
  await sleep(100);
  out.steps.clicked = await state();
  await send("Emulation.setEmulatedMedia", { media: "print" });
  await evaluate("window.dispatchEvent(new Event('beforeprint')), true");
  out.steps.print = await evaluate(`({ detailsOpen: document.getElementById("rank-details").open,
    background: getComputedStyle(document.body).backgroundColor,
    errorColour: getComputedStyle(document.documentElement).getPropertyValue("--err").trim(),
    toolbar: getComputedStyle(document.querySelector(".toolbar")).display })`);
  if (printShot) {
    const { data } = await send("Page.captureScreenshot", { format: "png" });
    fs.writeFileSync(printShot, Buffer.from(data, "base64"));
  }
  out.errors = await evaluate("window.otelRunReport.errors");
  out.drawMs = await evaluate("window.otelRunReport.drawMs");
  out.console = console_;
  return out;
}

// Stops the browser by its pid, waits for it, removes its profile.
function finish(code, text) {
  const done = () => {
    // The browser's helper processes may still be leaving files in the profile for a moment.
    try {
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    } catch (e) {
      console.error(`report_drive.js: could not remove ${profile}: ${e.message}`);
    }
    (code ? console.error : console.log)(text);
    process.exit(code);
  };
  if (browser.exitCode !== null || browser.signalCode !== null) return done();
  browser.on("exit", done);
  browser.kill("SIGTERM");
  setTimeout(() => { browser.kill("SIGKILL"); }, 5000);
}
main().then((out) => finish(0, JSON.stringify(out)), (e) => finish(1, String(e.stack || e)));
