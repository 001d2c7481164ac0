
use builtin;
use str;

set edit:completion:arg-completer[otel-run] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'otel-run'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'otel-run'= {
            cand --traces-exporter 'Where otel-run''s spans go: comma list of jsonlines, otlp, console, none [default: otlp if an OTLP endpoint is set, else jsonlines]'
            cand --service-name 'service.name of the spans [default: service.name from the resource attributes, else the program''s file name]'
            cand --resource-attributes 'Extra resource attributes, `key=value,...` (percent-encoded values); merged with OTEL_RESOURCE_ATTRIBUTES, these win'
            cand --jsonlines-path 'Span file path template: `*` = 8 random chars, {rank} {size} {job} {step} {host} {pid} [env: OTEL_EXPORTER_JSONLINES_PATH] [default: traces_*.jsonlines]'
            cand --spill-path 'Where spans the collector did not acknowledge go (otlp exporter without jsonlines), same placeholders as --jsonlines-path; created only when needed [default: spill_ + the span file name template, e.g. spill_traces_*.jsonlines]'
            cand --jsonlines-format 'Line format of the span file'
            cand --exporter-otlp-endpoint 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]'
            cand --exporter-otlp-traces-endpoint 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)'
            cand --exporter-otlp-protocol 'Transport [default: http/protobuf]'
            cand --exporter-otlp-traces-protocol 'exporter-otlp-traces-protocol'
            cand --exporter-otlp-headers 'Extra request headers, `key=value,...` (values percent-decoded)'
            cand --exporter-otlp-traces-headers 'exporter-otlp-traces-headers'
            cand --exporter-otlp-timeout 'Time limit for one export including retries, in milliseconds [default: 10000]'
            cand --exporter-otlp-traces-timeout 'exporter-otlp-traces-timeout'
            cand --exporter-otlp-compression '`gzip` or `none` [default: none]'
            cand --exporter-otlp-traces-compression 'exporter-otlp-traces-compression'
            cand --exporter-otlp-certificate 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]'
            cand --exporter-otlp-traces-certificate 'exporter-otlp-traces-certificate'
            cand --sink 'Loopback OTLP receiver for the program''s own SDK: its spans go where otel-run''s own go (the rank''s file, the collector with spilling, the console) [default auto: on when the jsonlines, otlp or console exporter is]'
            cand --sink-protocol 'OTLP protocol the program is told to use (the sink serves both on one port)'
            cand --sink-body-limit 'Largest request the sink accepts, after decompression (1 to 16 MiB: a larger request could make a span-file line longer than the 128 MiB the readers accept)'
            cand --forward-signals 'Pass TERM/INT/HUP/QUIT/USR1/USR2 on to the program: `auto` forwards a signal unless it came from the terminal or from a launcher that signals every task itself (slurmstepd, mpirun, Hydra, timeout), so the program sees each signal exactly once'
            cand --grace-period 'After TERM/INT/HUP/QUIT, how long the program may take to exit before otel-run kills it (keep it under Slurm''s KillWait; at most 7 days); a second INT ends it at once'
            cand --no-adopt 'Write the program''s spans unchanged instead of re-homing spans of other traces into the job''s trace (for programs that join other distributed traces)'
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand replay 'Send span files to an OTLP collector (Jaeger, Tempo, any OpenTelemetry Collector)'
            cand merge 'Merge rank span files into one file (python, otlp or Chrome/Perfetto trace-event JSON)'
            cand summary 'Per span name and per rank timing table: which rank was slow, where, by how much'
            cand report 'Write one self-contained HTML page of the job: per-rank timeline, where the time went, job facts (opens offline, from file://)'
            cand completions 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
        }
        &'otel-run;replay'= {
            cand --service-name 'Override service.name of every replayed resource (e.g. to group replays in Jaeger)'
            cand --batch-size 'Spans per export request'
            cand --exporter-otlp-endpoint 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]'
            cand --exporter-otlp-traces-endpoint 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)'
            cand --exporter-otlp-protocol 'Transport [default: http/protobuf]'
            cand --exporter-otlp-traces-protocol 'exporter-otlp-traces-protocol'
            cand --exporter-otlp-headers 'Extra request headers, `key=value,...` (values percent-decoded)'
            cand --exporter-otlp-traces-headers 'exporter-otlp-traces-headers'
            cand --exporter-otlp-timeout 'Time limit for one export including retries, in milliseconds [default: 10000]'
            cand --exporter-otlp-traces-timeout 'exporter-otlp-traces-timeout'
            cand --exporter-otlp-compression '`gzip` or `none` [default: none]'
            cand --exporter-otlp-traces-compression 'exporter-otlp-traces-compression'
            cand --exporter-otlp-certificate 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]'
            cand --exporter-otlp-traces-certificate 'exporter-otlp-traces-certificate'
            cand --skip-invalid 'Skip and count lines that are not valid spans instead of stopping at the first one'
            cand --keep-timestamps 'Keep the recorded timestamps (default: shift all so the latest end time is now)'
            cand --dry-run 'Parse, validate and count without sending'
            cand --no-adopt 'Send spans of other traces unchanged instead of re-homing those that belong to a rank (its `mpi.rank`, or its file''s process span) under that rank''s process span in the job''s trace'
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'otel-run;merge'= {
            cand -o 'Output file [default: stdout]'
            cand --output 'Output file [default: stdout]'
            cand --format 'format'
            cand --sort 'sort'
            cand --trace 'Keep only this trace (32 hex digits)'
            cand --rank 'Keep only these ranks (mpi.rank), e.g. `0,3-5`'
            cand --buffer-size 'Memory bound: spans held before sorted runs spill to temporary files (3/4), plus the parent-check facts (1/4)'
            cand --temp-dir 'Directory for temporary sort runs [default: $TMPDIR or /tmp]'
            cand --skip-invalid 'Skip and count lines that are not valid spans instead of stopping at the first one'
            cand --repair 'Give spans whose parent is missing a synthesized placeholder parent, and stretch the step root over all ranks, so a killed job opens as one tree'
            cand --no-adopt 'Write spans of other traces unchanged instead of re-homing those that belong to a rank (its job id and `mpi.rank`, or its file''s process span) under that rank''s process span in the job''s trace'
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'otel-run;summary'= {
            cand --format 'format'
            cand --skip-invalid 'Skip and count lines that are not valid spans instead of stopping at the first one'
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'otel-run;report'= {
            cand -o 'Output file [default: stdout]'
            cand --output 'Output file [default: stdout]'
            cand --title 'Page title [default: from service.name and the Slurm job id]'
            cand --attribute-budget 'Room for span and event attributes (shown on hover) in the page; beyond it, attributes of spans other than otel-run''s own and errors are left out and counted'
            cand --skip-invalid 'Skip and count lines that are not valid spans instead of stopping at the first one'
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'otel-run;completions'= {
            cand -v 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand --verbose 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
            cand -q 'Only errors from otel-run'
            cand --quiet 'Only errors from otel-run'
            cand -h 'Print help'
            cand --help 'Print help'
        }
    ]
    $completions[$command]
}
