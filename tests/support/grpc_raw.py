"""Raw unary calls to otel-run's sink through Python's grpcio: a gRPC client that is not otel-run's
and not an OpenTelemetry exporter, so the sink's gRPC side is judged by the gRPC protocol alone.

Usage: <venv>/bin/python tests/support/grpc_raw.py PORT TOKEN
Prints one JSON object: for each case, [status code name, rejected spans or null, details].
Cases sending spans name them raw-*; "bad" spans must never reach the file.
"""

import json
import sys

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
port, token = sys.argv[1], sys.argv[2]


def request(name, span_id=b"\x05" * 8):
    req = trace_service_pb2.ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\x06" * 16
    span.span_id = span_id
    span.name = name
    span.kind = trace_pb2.Span.SPAN_KIND_INTERNAL
    span.start_time_unix_nano = 1
    span.end_time_unix_nano = 2
    return req.SerializeToString()


def call(channel, body, metadata, compression=None, method=EXPORT):
    # Identity (de)serializers: the exact bytes go on the wire, garbage included.
    export = channel.unary_unary(
        method,
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    try:
        answer = export(body, metadata=metadata, compression=compression, timeout=10)
    except grpc.RpcError as e:
        return [e.code().name, None, e.details()]
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(answer)
    rejected = response.partial_success.rejected_spans if response.HasField("partial_success") else 0
    return ["OK", rejected, response.partial_success.error_message]


auth = [("x-otel-run-token", token)]
results = {}
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    results["no token"] = call(channel, request("bad"), [])
    results["wrong token"] = call(channel, request("bad"), [("x-otel-run-token", "0" * 32)])
    results["valid"] = call(channel, request("raw-grpc"), auth)
    results["valid gzip"] = call(channel, request("raw-grpc-gzip"), auth, grpc.Compression.Gzip)
    results["invalid span id"] = call(channel, request("bad", span_id=b"\x01\x02\x03"), auth)
    results["garbage"] = call(channel, b"\xff\xff\xff\xff garbage", auth)
    # The sink runs with a 1 MiB body limit.
    results["oversized"] = call(channel, b"\x00" * (2 << 20), auth)
    results["gzip bomb"] = call(channel, b"\x00" * (8 << 20), auth, grpc.Compression.Gzip)
    results["unknown method"] = call(channel, request("bad"), auth, method="/no.Such/Method")
    results["valid after all that"] = call(channel, request("raw-grpc-last"), auth)
print(json.dumps(results))
