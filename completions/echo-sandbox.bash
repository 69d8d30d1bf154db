# bash completion for echo-sandbox: its commands, each command's options,
# the values some take (backends, the default policy's languages), and files.
_echo_sandbox() {
  local cur prev cmd i
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]}; break ;; esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "run batch serve policy cleanup doctor --help --version" -- "$cur"))
    return
  fi
  case $prev in
    --policy|--code-file|--stdin-file|--token-file|--port-file)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --backend)
      COMPREPLY=($(compgen -W "auto local k8s" -- "$cur")); return ;;
    --lang)  # the default policy's languages
      COMPREPLY=($(compgen -W "python python3 node javascript ruby perl php lua bash sh" -- "$cur")); return ;;
  esac
  local opts
  case $cmd in
    run) opts="--json --shell --lang --code --code-file --stdin-file --env --working-dir --timeout --memory
               --cpu-time --cpu --max-processes --max-output --network --backend --policy --help" ;;
    batch) opts="-j --jobs --events --policy --help" ;;
    serve) opts="--listen --policy --token-file --public-probes --max-body --max-running --max-queue --grace
                 --header-timeout --port-file --socket-mode --socket-group --help" ;;
    policy)
      if [[ $COMP_CWORD -eq $((i + 1)) ]]; then
        COMPREPLY=($(compgen -W "explain check languages" -- "$cur")); return
      fi
      opts="--policy --backend --json --shell --lang --code --code-file --env --timeout --memory --help" ;;
    cleanup) opts="--policy --namespace --all --dry-run --help" ;;
    doctor) opts="--policy --local-only --help" ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -F _echo_sandbox echo-sandbox
