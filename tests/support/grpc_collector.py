"""A scripted OTLP/gRPC collector on grpcio, for what rotel cannot do: TLS on the receiving side
and answers that throttle (RESOURCE_EXHAUSTED with and without google.rpc.RetryInfo) or reject
part of a request.

Usage: <venv>/bin/python tests/support/grpc_collector.py DIR ANSWER[,ANSWER...] [CERT KEY]
  DIR     gets `port` (written once listening, on 127.0.0.1, port chosen by the kernel) and
          `requests` (one JSON line per request received: answer given, span count)
  ANSWER  one per request in order, the last one repeated: ok, reject1 (partial success, one
          span rejected), exhausted (RESOURCE_EXHAUSTED), exhausted-retryinfo (the same with
          RetryInfo 200 ms), unavailable
  CERT KEY  PEM server certificate chain and key: serve TLS instead of cleartext
Runs until killed.
"""

import json
import os
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

out_dir, answers = sys.argv[1], sys.argv[2].split(",")
lock = threading.Lock()
count = [0]


def export(request, context):
    with lock:
        answer = answers[min(count[0], len(answers) - 1)]
        count[0] += 1
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with open(os.path.join(out_dir, "requests"), "a") as f:
            f.write(json.dumps({"answer": answer, "spans": spans}) + "\n")
    if answer == "ok":
        return trace_service_pb2.ExportTraceServiceResponse()
    if answer == "reject1":
        response = trace_service_pb2.ExportTraceServiceResponse()
        response.partial_success.rejected_spans = 1
        response.partial_success.error_message = "one span too old"
        return response
    if answer == "exhausted-retryinfo":
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=200_000_000))
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(
            code=code_pb2.RESOURCE_EXHAUSTED, message="slow down", details=[detail]
        )
        context.set_trailing_metadata([("grpc-status-details-bin", status.SerializeToString())])
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    if answer == "exhausted":
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "over quota")
    if answer == "unavailable":
        context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
    context.abort(grpc.StatusCode.INTERNAL, f"unknown scripted answer {answer!r}")


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers(
    [
        grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                    response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
    ]
)
if len(sys.argv) > 4:
    with open(sys.argv[3], "rb") as c, open(sys.argv[4], "rb") as k:
        credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write(str(port))
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.wait_for_termination()
