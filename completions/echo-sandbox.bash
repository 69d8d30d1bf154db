# bash completion for echo-sandbox: its commands, each command's options and
# the values they take, all read from the program's own --help (the tables
# the commands parse their flags with), so that no list here can drift from
# them. An option's value comes from its metavariable there: FILE (or a
# name ending in FILE) a file, DIR a directory, a|b|c one of those,
# LANGUAGE one the policy knows (`policy languages`); any other value is
# the user's to type, and nothing is offered for it, least of all options.

# The options of a command, from its --help ("$@": the program and the
# command's words): one "NAME METAVAR" line each (METAVAR empty without a
# value), from the lines that start "  -".
_echo_sandbox_options() {
  local line spec names metavar name
  while IFS= read -r line; do
    [[ $line == "  -"* ]] || continue
    spec=${line#  }
    spec=${spec%%  *}                # up to the two blanks before the text
    metavar=                         # "-j, --jobs N": the last name's
    if [[ ${spec##*, } == *" "* ]]; then
      metavar=${spec##* }
      spec=${spec% *}
    fi
    names=${spec//,/ }
    for name in $names; do
      printf '%s %s\n' "$name" "$metavar"
    done
  done < <("$@" --help 2>/dev/null)
}

# The names of the commands (COMMAND, or policy's SUBCOMMAND) in a --help.
_echo_sandbox_commands() { # program [command]
  if (($# == 1)); then
    "$1" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p'
  else
    "$1" "$2" --help 2>/dev/null | sed -n "s/^.*echo-sandbox $2 \\([a-z][a-z-]*\\).*/\\1/p" | awk '!seen[$0]++'
  fi
}

_echo_sandbox() {
  local cur prev prog i cmd= sub= word option metavar
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  prog=${COMP_WORDS[0]}
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    [[ $word == -- ]] && return    # the program's own words: files
    [[ $word == -* ]] && continue
    if [[ -z $cmd ]]; then
      cmd=$word
    elif [[ ($cmd == policy || $cmd == session || $cmd == pool) && -z $sub ]]; then
      sub=$word
    fi
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$(_echo_sandbox_commands "$prog") --help --version" -- "$cur"))
    return
  fi
  if [[ ($cmd == policy || $cmd == session || $cmd == pool) && -z $sub ]]; then
    COMPREPLY=($(compgen -W "$(_echo_sandbox_commands "$prog" "$cmd")" -- "$cur"))
    return
  fi
  local -a words=("$prog" "$cmd")
  [[ -n $sub ]] && words+=("$sub")
  local options
  options=$(_echo_sandbox_options "${words[@]}")
  # The word after an option that takes a value is that value.
  while read -r option metavar; do
    [[ $option == "$prev" && -n $metavar ]] || continue
    case $metavar in
      *FILE) COMPREPLY=($(compgen -f -- "$cur")) ;;
      DIR) COMPREPLY=($(compgen -d -- "$cur")) ;;
      *"|"*) COMPREPLY=($(compgen -W "${metavar//|/ }" -- "$cur")) ;;
      LANGUAGE)
        COMPREPLY=($(compgen -W "$("$prog" policy languages 2>/dev/null |
          grep -o '"name":"[^"]*"' | sed 's/"name":"\(.*\)"/\1/')" -- "$cur")) ;;
    esac
    # Nothing to offer: offer nothing (no file names either).
    ((${#COMPREPLY[@]})) || compopt +o default 2>/dev/null
    return
  done <<< "$options"
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(cut -d' ' -f1 <<< "$options")" -- "$cur"))
  fi
}
complete -o default -F _echo_sandbox echo-sandbox
