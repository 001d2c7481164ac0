# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_otel_run_global_optspecs
    string join \n traces-exporter= service-name= resource-attributes= jsonlines-path= spill-path= jsonlines-format= exporter-otlp-endpoint= exporter-otlp-traces-endpoint= exporter-otlp-protocol= exporter-otlp-traces-protocol= exporter-otlp-headers= exporter-otlp-traces-headers= exporter-otlp-timeout= exporter-otlp-traces-timeout= exporter-otlp-compression= exporter-otlp-traces-compression= exporter-otlp-certificate= exporter-otlp-traces-certificate= sink= sink-protocol= no-adopt sink-body-limit= forward-signals= grace-period= v/verbose q/quiet h/help V/version
end

function __fish_otel_run_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_otel_run_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_otel_run_using_subcommand
    set -l cmd (__fish_otel_run_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c otel-run -n "__fish_otel_run_needs_command" -l traces-exporter -d 'Where otel-run\'s spans go: comma list of jsonlines, otlp, console, none [default: otlp if an OTLP endpoint is set, else jsonlines]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l service-name -d 'service.name of the spans [default: service.name from the resource attributes, else the program\'s file name]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l resource-attributes -d 'Extra resource attributes, `key=value,...` (percent-encoded values); merged with OTEL_RESOURCE_ATTRIBUTES, these win' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l jsonlines-path -d 'Span file path template: `*` = 8 random chars, {rank} {size} {job} {step} {host} {pid} [env: OTEL_EXPORTER_JSONLINES_PATH] [default: traces_*.jsonlines]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l spill-path -d 'Where spans the collector did not acknowledge go (otlp exporter without jsonlines), same placeholders as --jsonlines-path; created only when needed [default: spill_ + the span file name template, e.g. spill_traces_*.jsonlines]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l jsonlines-format -d 'Line format of the span file' -r -f -a "python\t'OpenTelemetry Python\'s `ReadableSpan.to_json()`, one span per line (bsb-otel compatible)'
otlp\t'OTLP/JSON `TracesData` per line (OpenTelemetry Collector file exporter format)'"
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-endpoint -d 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-endpoint -d 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-protocol -d 'Transport [default: http/protobuf]' -r -f -a "grpc\t''
http/protobuf\t''"
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-protocol -r -f -a "grpc\t''
http/protobuf\t''"
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-headers -d 'Extra request headers, `key=value,...` (values percent-decoded)' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-headers -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-timeout -d 'Time limit for one export including retries, in milliseconds [default: 10000]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-timeout -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-compression -d '`gzip` or `none` [default: none]' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-compression -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-certificate -d 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]' -r -F
complete -c otel-run -n "__fish_otel_run_needs_command" -l exporter-otlp-traces-certificate -r -F
complete -c otel-run -n "__fish_otel_run_needs_command" -l sink -d 'Loopback OTLP receiver for the program\'s own SDK: its spans go where otel-run\'s own go (the rank\'s file, the collector with spilling, the console) [default auto: on when the jsonlines, otlp or console exporter is]' -r -f -a "auto\t'On when the jsonlines, otlp or console exporter is on'
on\t''
off\t'Pass-through: the program exports on its own (e.g. bsb-otel\'s native jsonlines exporter, which finds the rank\'s file in OTEL_EXPORTER_JSONLINES_PATH)'"
complete -c otel-run -n "__fish_otel_run_needs_command" -l sink-protocol -d 'OTLP protocol the program is told to use (the sink serves both on one port)' -r -f -a "grpc\t''
http/protobuf\t''"
complete -c otel-run -n "__fish_otel_run_needs_command" -l sink-body-limit -d 'Largest request the sink accepts, after decompression (1 to 16 MiB: a larger request could make a span-file line longer than the 128 MiB the readers accept)' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l forward-signals -d 'Pass TERM/INT/HUP/QUIT/USR1/USR2 on to the program: `auto` forwards a signal unless it came from the terminal or from a launcher that signals every task itself (slurmstepd, mpirun, Hydra, timeout), so the program sees each signal exactly once' -r -f -a "auto\t'Forward unless the sender already signalled the program (see --help)'
always\t''
never\t''"
complete -c otel-run -n "__fish_otel_run_needs_command" -l grace-period -d 'After TERM/INT/HUP/QUIT, how long the program may take to exit before otel-run kills it (keep it under Slurm\'s KillWait; at most 7 days); a second INT ends it at once' -r
complete -c otel-run -n "__fish_otel_run_needs_command" -l no-adopt -d 'Write the program\'s spans unchanged instead of re-homing spans of other traces into the job\'s trace (for programs that join other distributed traces)'
complete -c otel-run -n "__fish_otel_run_needs_command" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_needs_command" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otel-run -n "__fish_otel_run_needs_command" -s V -l version -d 'Print version'
complete -c otel-run -n "__fish_otel_run_needs_command" -a "replay" -d 'Send span files to an OTLP collector (Jaeger, Tempo, any OpenTelemetry Collector)'
complete -c otel-run -n "__fish_otel_run_needs_command" -a "merge" -d 'Merge rank span files into one file (python, otlp or Chrome/Perfetto trace-event JSON)'
complete -c otel-run -n "__fish_otel_run_needs_command" -a "summary" -d 'Per span name and per rank timing table: which rank was slow, where, by how much'
complete -c otel-run -n "__fish_otel_run_needs_command" -a "report" -d 'Write one self-contained HTML page of the job: per-rank timeline, where the time went, job facts (opens offline, from file://)'
complete -c otel-run -n "__fish_otel_run_needs_command" -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l service-name -d 'Override service.name of every replayed resource (e.g. to group replays in Jaeger)' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l batch-size -d 'Spans per export request' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-endpoint -d 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-endpoint -d 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-protocol -d 'Transport [default: http/protobuf]' -r -f -a "grpc\t''
http/protobuf\t''"
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-protocol -r -f -a "grpc\t''
http/protobuf\t''"
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-headers -d 'Extra request headers, `key=value,...` (values percent-decoded)' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-headers -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-timeout -d 'Time limit for one export including retries, in milliseconds [default: 10000]' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-timeout -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-compression -d '`gzip` or `none` [default: none]' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-compression -r
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-certificate -d 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]' -r -F
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l exporter-otlp-traces-certificate -r -F
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l skip-invalid -d 'Skip and count lines that are not valid spans instead of stopping at the first one'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l keep-timestamps -d 'Keep the recorded timestamps (default: shift all so the latest end time is now)'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l dry-run -d 'Parse, validate and count without sending'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -l no-adopt -d 'Send spans of other traces unchanged instead of re-homing those that belong to a rank (its `mpi.rank`, or its file\'s process span) under that rank\'s process span in the job\'s trace'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_using_subcommand replay" -s h -l help -d 'Print help'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -s o -l output -d 'Output file [default: stdout]' -r -F
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l format -r -f -a "python\t'OpenTelemetry Python\'s to_json lines (bsb-otel compatible); python input lines are copied unchanged'
otlp\t'OTLP/JSON TracesData lines'
chrome\t'Chrome/Perfetto trace-event JSON (one process per host, one thread per rank); always in start order, times relative to the first span\'s second'"
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l sort -r -f -a "start\t'By start time (external sort: memory bounded by --buffer-size)'
end\t'By end time (streaming k-way merge of the rank files, which otel-run writes in end order; a file out of order beyond the reorder window is reported)'
none\t'Input order (keeps 24 bytes per span id to drop duplicates)'"
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l trace -d 'Keep only this trace (32 hex digits)' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l rank -d 'Keep only these ranks (mpi.rank), e.g. `0,3-5`' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l buffer-size -d 'Memory bound: spans held before sorted runs spill to temporary files (3/4), plus the parent-check facts (1/4)' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l temp-dir -d 'Directory for temporary sort runs [default: $TMPDIR or /tmp]' -r -F
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l skip-invalid -d 'Skip and count lines that are not valid spans instead of stopping at the first one'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l repair -d 'Give spans whose parent is missing a synthesized placeholder parent, and stretch the step root over all ranks, so a killed job opens as one tree'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -l no-adopt -d 'Write spans of other traces unchanged instead of re-homing those that belong to a rank (its job id and `mpi.rank`, or its file\'s process span) under that rank\'s process span in the job\'s trace'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_using_subcommand merge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otel-run -n "__fish_otel_run_using_subcommand summary" -l format -r -f -a "table\t'Aligned columns, durations in seconds'
csv\t'One table, `kind` column span|rank, durations in nanoseconds'
json\t'`spans`, `ranks`, `slowest_rank`, durations in nanoseconds'"
complete -c otel-run -n "__fish_otel_run_using_subcommand summary" -l skip-invalid -d 'Skip and count lines that are not valid spans instead of stopping at the first one'
complete -c otel-run -n "__fish_otel_run_using_subcommand summary" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_using_subcommand summary" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_using_subcommand summary" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -s o -l output -d 'Output file [default: stdout]' -r -F
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -l title -d 'Page title [default: from service.name and the Slurm job id]' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -l attribute-budget -d 'Room for span and event attributes (shown on hover) in the page; beyond it, attributes of spans other than otel-run\'s own and errors are left out and counted' -r
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -l skip-invalid -d 'Skip and count lines that are not valid spans instead of stopping at the first one'
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_using_subcommand report" -s h -l help -d 'Print help'
complete -c otel-run -n "__fish_otel_run_using_subcommand completions" -s v -l verbose -d 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead'
complete -c otel-run -n "__fish_otel_run_using_subcommand completions" -s q -l quiet -d 'Only errors from otel-run'
complete -c otel-run -n "__fish_otel_run_using_subcommand completions" -s h -l help -d 'Print help'
