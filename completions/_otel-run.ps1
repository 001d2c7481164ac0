
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'otel-run' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'otel-run'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'otel-run' {
            [CompletionResult]::new('--traces-exporter', '--traces-exporter', [CompletionResultType]::ParameterName, 'Where otel-run''s spans go: comma list of jsonlines, otlp, console, none [default: otlp if an OTLP endpoint is set, else jsonlines]')
            [CompletionResult]::new('--service-name', '--service-name', [CompletionResultType]::ParameterName, 'service.name of the spans [default: service.name from the resource attributes, else the program''s file name]')
            [CompletionResult]::new('--resource-attributes', '--resource-attributes', [CompletionResultType]::ParameterName, 'Extra resource attributes, `key=value,...` (percent-encoded values); merged with OTEL_RESOURCE_ATTRIBUTES, these win')
            [CompletionResult]::new('--jsonlines-path', '--jsonlines-path', [CompletionResultType]::ParameterName, 'Span file path template: `*` = 8 random chars, {rank} {size} {job} {step} {host} {pid} [env: OTEL_EXPORTER_JSONLINES_PATH] [default: traces_*.jsonlines]')
            [CompletionResult]::new('--spill-path', '--spill-path', [CompletionResultType]::ParameterName, 'Where spans the collector did not acknowledge go (otlp exporter without jsonlines), same placeholders as --jsonlines-path; created only when needed [default: spill_ + the span file name template, e.g. spill_traces_*.jsonlines]')
            [CompletionResult]::new('--jsonlines-format', '--jsonlines-format', [CompletionResultType]::ParameterName, 'Line format of the span file')
            [CompletionResult]::new('--exporter-otlp-endpoint', '--exporter-otlp-endpoint', [CompletionResultType]::ParameterName, 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]')
            [CompletionResult]::new('--exporter-otlp-traces-endpoint', '--exporter-otlp-traces-endpoint', [CompletionResultType]::ParameterName, 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)')
            [CompletionResult]::new('--exporter-otlp-protocol', '--exporter-otlp-protocol', [CompletionResultType]::ParameterName, 'Transport [default: http/protobuf]')
            [CompletionResult]::new('--exporter-otlp-traces-protocol', '--exporter-otlp-traces-protocol', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-protocol')
            [CompletionResult]::new('--exporter-otlp-headers', '--exporter-otlp-headers', [CompletionResultType]::ParameterName, 'Extra request headers, `key=value,...` (values percent-decoded)')
            [CompletionResult]::new('--exporter-otlp-traces-headers', '--exporter-otlp-traces-headers', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-headers')
            [CompletionResult]::new('--exporter-otlp-timeout', '--exporter-otlp-timeout', [CompletionResultType]::ParameterName, 'Time limit for one export including retries, in milliseconds [default: 10000]')
            [CompletionResult]::new('--exporter-otlp-traces-timeout', '--exporter-otlp-traces-timeout', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-timeout')
            [CompletionResult]::new('--exporter-otlp-compression', '--exporter-otlp-compression', [CompletionResultType]::ParameterName, '`gzip` or `none` [default: none]')
            [CompletionResult]::new('--exporter-otlp-traces-compression', '--exporter-otlp-traces-compression', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-compression')
            [CompletionResult]::new('--exporter-otlp-certificate', '--exporter-otlp-certificate', [CompletionResultType]::ParameterName, 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]')
            [CompletionResult]::new('--exporter-otlp-traces-certificate', '--exporter-otlp-traces-certificate', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-certificate')
            [CompletionResult]::new('--sink', '--sink', [CompletionResultType]::ParameterName, 'Loopback OTLP receiver for the program''s own SDK: its spans go where otel-run''s own go (the rank''s file, the collector with spilling, the console) [default auto: on when the jsonlines, otlp or console exporter is]')
            [CompletionResult]::new('--sink-protocol', '--sink-protocol', [CompletionResultType]::ParameterName, 'OTLP protocol the program is told to use (the sink serves both on one port)')
            [CompletionResult]::new('--sink-body-limit', '--sink-body-limit', [CompletionResultType]::ParameterName, 'Largest request the sink accepts, after decompression (1 to 16 MiB: a larger request could make a span-file line longer than the 128 MiB the readers accept)')
            [CompletionResult]::new('--forward-signals', '--forward-signals', [CompletionResultType]::ParameterName, 'Pass TERM/INT/HUP/QUIT/USR1/USR2 on to the program: `auto` forwards a signal unless it came from the terminal or from a launcher that signals every task itself (slurmstepd, mpirun, Hydra, timeout), so the program sees each signal exactly once')
            [CompletionResult]::new('--grace-period', '--grace-period', [CompletionResultType]::ParameterName, 'After TERM/INT/HUP/QUIT, how long the program may take to exit before otel-run kills it (keep it under Slurm''s KillWait; at most 7 days); a second INT ends it at once')
            [CompletionResult]::new('--no-adopt', '--no-adopt', [CompletionResultType]::ParameterName, 'Write the program''s spans unchanged instead of re-homing spans of other traces into the job''s trace (for programs that join other distributed traces)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Send span files to an OTLP collector (Jaeger, Tempo, any OpenTelemetry Collector)')
            [CompletionResult]::new('merge', 'merge', [CompletionResultType]::ParameterValue, 'Merge rank span files into one file (python, otlp or Chrome/Perfetto trace-event JSON)')
            [CompletionResult]::new('summary', 'summary', [CompletionResultType]::ParameterValue, 'Per span name and per rank timing table: which rank was slow, where, by how much')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'Write one self-contained HTML page of the job: per-rank timeline, where the time went, job facts (opens offline, from file://)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script (bash, zsh, fish, elvish, powershell)')
            break
        }
        'otel-run;replay' {
            [CompletionResult]::new('--service-name', '--service-name', [CompletionResultType]::ParameterName, 'Override service.name of every replayed resource (e.g. to group replays in Jaeger)')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Spans per export request')
            [CompletionResult]::new('--exporter-otlp-endpoint', '--exporter-otlp-endpoint', [CompletionResultType]::ParameterName, 'Collector endpoint; for http/protobuf `/v1/traces` is appended [default: grpc http://localhost:4317, http/protobuf http://localhost:4318]')
            [CompletionResult]::new('--exporter-otlp-traces-endpoint', '--exporter-otlp-traces-endpoint', [CompletionResultType]::ParameterName, 'Traces endpoint, used as is (beats --exporter-otlp-endpoint)')
            [CompletionResult]::new('--exporter-otlp-protocol', '--exporter-otlp-protocol', [CompletionResultType]::ParameterName, 'Transport [default: http/protobuf]')
            [CompletionResult]::new('--exporter-otlp-traces-protocol', '--exporter-otlp-traces-protocol', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-protocol')
            [CompletionResult]::new('--exporter-otlp-headers', '--exporter-otlp-headers', [CompletionResultType]::ParameterName, 'Extra request headers, `key=value,...` (values percent-decoded)')
            [CompletionResult]::new('--exporter-otlp-traces-headers', '--exporter-otlp-traces-headers', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-headers')
            [CompletionResult]::new('--exporter-otlp-timeout', '--exporter-otlp-timeout', [CompletionResultType]::ParameterName, 'Time limit for one export including retries, in milliseconds [default: 10000]')
            [CompletionResult]::new('--exporter-otlp-traces-timeout', '--exporter-otlp-traces-timeout', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-timeout')
            [CompletionResult]::new('--exporter-otlp-compression', '--exporter-otlp-compression', [CompletionResultType]::ParameterName, '`gzip` or `none` [default: none]')
            [CompletionResult]::new('--exporter-otlp-traces-compression', '--exporter-otlp-traces-compression', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-compression')
            [CompletionResult]::new('--exporter-otlp-certificate', '--exporter-otlp-certificate', [CompletionResultType]::ParameterName, 'PEM file with the CA certificate(s) to trust for https endpoints [default: the webpki roots]')
            [CompletionResult]::new('--exporter-otlp-traces-certificate', '--exporter-otlp-traces-certificate', [CompletionResultType]::ParameterName, 'exporter-otlp-traces-certificate')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip and count lines that are not valid spans instead of stopping at the first one')
            [CompletionResult]::new('--keep-timestamps', '--keep-timestamps', [CompletionResultType]::ParameterName, 'Keep the recorded timestamps (default: shift all so the latest end time is now)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Parse, validate and count without sending')
            [CompletionResult]::new('--no-adopt', '--no-adopt', [CompletionResultType]::ParameterName, 'Send spans of other traces unchanged instead of re-homing those that belong to a rank (its `mpi.rank`, or its file''s process span) under that rank''s process span in the job''s trace')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'otel-run;merge' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output file [default: stdout]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output file [default: stdout]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'format')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'sort')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Keep only this trace (32 hex digits)')
            [CompletionResult]::new('--rank', '--rank', [CompletionResultType]::ParameterName, 'Keep only these ranks (mpi.rank), e.g. `0,3-5`')
            [CompletionResult]::new('--buffer-size', '--buffer-size', [CompletionResultType]::ParameterName, 'Memory bound: spans held before sorted runs spill to temporary files (3/4), plus the parent-check facts (1/4)')
            [CompletionResult]::new('--temp-dir', '--temp-dir', [CompletionResultType]::ParameterName, 'Directory for temporary sort runs [default: $TMPDIR or /tmp]')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip and count lines that are not valid spans instead of stopping at the first one')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Give spans whose parent is missing a synthesized placeholder parent, and stretch the step root over all ranks, so a killed job opens as one tree')
            [CompletionResult]::new('--no-adopt', '--no-adopt', [CompletionResultType]::ParameterName, 'Write spans of other traces unchanged instead of re-homing those that belong to a rank (its job id and `mpi.rank`, or its file''s process span) under that rank''s process span in the job''s trace')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'otel-run;summary' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'format')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip and count lines that are not valid spans instead of stopping at the first one')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'otel-run;report' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output file [default: stdout]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output file [default: stdout]')
            [CompletionResult]::new('--title', '--title', [CompletionResultType]::ParameterName, 'Page title [default: from service.name and the Slurm job id]')
            [CompletionResult]::new('--attribute-budget', '--attribute-budget', [CompletionResultType]::ParameterName, 'Room for span and event attributes (shown on hover) in the page; beyond it, attributes of spans other than otel-run''s own and errors are left out and counted')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Skip and count lines that are not valid spans instead of stopping at the first one')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'otel-run;completions' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More diagnostics from otel-run on stderr (-v info, -vv debug); OTEL_RUN_LOG takes an EnvFilter expression instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only errors from otel-run')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
