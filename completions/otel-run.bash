_otel__run() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="otel__run"
                ;;
            otel__run,completions)
                cmd="otel__run__subcmd__completions"
                ;;
            otel__run,merge)
                cmd="otel__run__subcmd__merge"
                ;;
            otel__run,replay)
                cmd="otel__run__subcmd__replay"
                ;;
            otel__run,report)
                cmd="otel__run__subcmd__report"
                ;;
            otel__run,summary)
                cmd="otel__run__subcmd__summary"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        otel__run)
            opts="-v -q -h -V --traces-exporter --service-name --resource-attributes --jsonlines-path --spill-path --jsonlines-format --exporter-otlp-endpoint --exporter-otlp-traces-endpoint --exporter-otlp-protocol --exporter-otlp-traces-protocol --exporter-otlp-headers --exporter-otlp-traces-headers --exporter-otlp-timeout --exporter-otlp-traces-timeout --exporter-otlp-compression --exporter-otlp-traces-compression --exporter-otlp-certificate --exporter-otlp-traces-certificate --sink --sink-protocol --no-adopt --sink-body-limit --forward-signals --grace-period --verbose --quiet --help --version replay merge summary report completions"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --traces-exporter)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --service-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --resource-attributes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jsonlines-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --spill-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jsonlines-format)
                    COMPREPLY=($(compgen -W "python otlp" -- "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-protocol)
                    COMPREPLY=($(compgen -W "grpc http/protobuf" -- "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-protocol)
                    COMPREPLY=($(compgen -W "grpc http/protobuf" -- "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-headers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-headers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-compression)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-compression)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-certificate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-certificate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --sink)
                    COMPREPLY=($(compgen -W "auto on off" -- "${cur}"))
                    return 0
                    ;;
                --sink-protocol)
                    COMPREPLY=($(compgen -W "grpc http/protobuf" -- "${cur}"))
                    return 0
                    ;;
                --sink-body-limit)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --forward-signals)
                    COMPREPLY=($(compgen -W "auto always never" -- "${cur}"))
                    return 0
                    ;;
                --grace-period)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        otel__subcmd__run__subcmd__completions)
            opts="-v -q -h --verbose --quiet --help bash elvish fish powershell zsh"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        otel__subcmd__run__subcmd__merge)
            opts="-o -v -q -h --skip-invalid --output --format --sort --repair --trace --rank --buffer-size --temp-dir --no-adopt --verbose --quiet --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --output)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -W "python otlp chrome" -- "${cur}"))
                    return 0
                    ;;
                --sort)
                    COMPREPLY=($(compgen -W "start end none" -- "${cur}"))
                    return 0
                    ;;
                --trace)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --rank)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --buffer-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --temp-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        otel__subcmd__run__subcmd__replay)
            opts="-v -q -h --skip-invalid --keep-timestamps --dry-run --service-name --batch-size --no-adopt --exporter-otlp-endpoint --exporter-otlp-traces-endpoint --exporter-otlp-protocol --exporter-otlp-traces-protocol --exporter-otlp-headers --exporter-otlp-traces-headers --exporter-otlp-timeout --exporter-otlp-traces-timeout --exporter-otlp-compression --exporter-otlp-traces-compression --exporter-otlp-certificate --exporter-otlp-traces-certificate --verbose --quiet --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --service-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --batch-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-endpoint)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-protocol)
                    COMPREPLY=($(compgen -W "grpc http/protobuf" -- "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-protocol)
                    COMPREPLY=($(compgen -W "grpc http/protobuf" -- "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-headers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-headers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-compression)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-compression)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-certificate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --exporter-otlp-traces-certificate)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        otel__subcmd__run__subcmd__report)
            opts="-o -v -q -h --skip-invalid --output --title --attribute-budget --verbose --quiet --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --output)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --title)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --attribute-budget)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        otel__subcmd__run__subcmd__summary)
            opts="-v -q -h --skip-invalid --format --verbose --quiet --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --format)
                    COMPREPLY=($(compgen -W "table csv json" -- "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _otel__run -o nosort -o bashdefault -o default otel-run
else
    complete -F _otel__run -o bashdefault -o default otel-run
fi
