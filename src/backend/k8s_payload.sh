# The k8s container's first program when a request brings files in (its
# files, its code as a file) or wants files back (collect): run as
# `/bin/sh -c SCRIPT echo-sandbox NOFILE ARGV...` in the working dir, it needs
# nothing in the image but a POSIX shell, head, tail, dd, mkdir, chmod, rm,
# find and wc (coreutils and BusyBox alike). Compiled into the engine
# (backend/k8s_command.h); what the engine sends is in backend/k8s_payload.h.
#
# stdin: the handshake (kubectl is attached): the end mark's secret, kept,
# and the start mark, copied to stderr by dd (backend/k8s_command.h: 34 is
# its length), so that the shell never holds it, and the stdout mark, copied
# to stdout alike; a header line, then the
# block: the index (lines "f OFFSET LENGTH MODE PATH" and "c PATTERN", then
# an empty line), the files' bytes and the program's stdin. The block is read
# whole with one head -c into a spool file before anything else: nothing
# follows it on stdin, so not even a head that reads ahead (BusyBox's) can
# take bytes that are not its own.
#
# stdout: first one line of ours, before the program exists (so it cannot
# be the program's): the start line, or the failure line naming the step
# that failed (then exit 125; the engine reports it as its own failure,
# never as the program's exit). Every name is an operand ("./NAME"): a file
# called "-x" is no option. The start mark on stderr comes before either,
# so it is the first byte of the pod's log: what the wrapper's tools say
# on stderr lies between the marks, and the engine holds it until the
# start line says a program runs.
#
# Once the program has ended (with collect: and every process it left is
# killed, so that nothing but us holds stdout and stderr): the end mark on
# stderr, with its status. With collect, then: the marker line, a frame per
# matching file ("F LENGTH SIZE PATH", then exactly LENGTH bytes: the
# file's first, padded with NULs should it shrink) and "E MORE BYTES" last,
# BYTES the frames' length: the engine finds them from that end.
#
# NOFILE, the engine's (the run's max_open_files; 0: none), is the
# program's RLIMIT_NOFILE, soft and hard: set in the program's own process
# before exec (so that it and all it starts keep to it, while we, who need
# descriptors of our own after it, do not), once a trial in a subshell
# showed before the start line that it can be set.
nf=$1
shift
fail() {
  printf '\036echo-sandbox-wrapper-failed %s\n' "$1"
  exit 125
}

# Every process the program left behind, killed: in a pod we are its first
# process, and kill -1 there reaches every other process of the pod's own
# pid namespace; elsewhere (a pod sharing its pid namespace, or a node that
# is not one) those of our session, which we lead, until none is left (one
# that made a session of its own escapes this).
reap() {
  if [ $$ -eq 1 ]; then
    kill -9 -1 2>/dev/null
    return 0
  fi
  read -r s 2>/dev/null < /proc/$$/stat || return 0
  IFS=' '
  set -- ${s##*) }
  [ "$4" = $$ ] || return 0
  again=1
  while [ -n "$again" ]; do
    again=
    for d in /proc/[0-9]*; do
      [ "${d#/proc/}" != $$ ] && read -r s 2>/dev/null < "$d/stat" || continue
      set -- ${s##*) }
      [ "$4" = $$ ] && [ "$1" != Z ] && kill -9 "${d#/proc/}" 2>/dev/null && again=1
    done
  done
  return 0
}

IFS= read -r e || fail 'reading the handshake line'
dd bs=1 count=34 >&2 2>/dev/null || fail 'copying the start mark'
dd bs=1 count=34 2>/dev/null || fail 'copying the stdout mark'
IFS=' ' read -r il dl sl cn cf ct mk || fail 'reading the header line'
sp=.echo-sandbox-in.$$
head -c $((il + dl + sl)) > "$sp" || fail 'spooling the request'
got=$(wc -c < "$sp") || fail 'spooling the request'
[ $((got)) -eq $((il + dl + sl)) ] || fail "spooling the request: $((got)) of $((il + dl + sl)) bytes came"
set -f
ps=
while IFS= read -r l && [ -n "$l" ]; do
  k=${l%% *} l=${l#* }
  if [ "$k" = c ]; then
    ps="$ps$l
"
    continue
  fi
  o=${l%% *} l=${l#* }
  n=${l%% *} l=${l#* }
  md=${l%% *} p=${l#* }
  case $p in */*) mkdir -p -- "./${p%/*}" || fail "making the directory of file $p" ;; esac
  tail -c +$((il + o + 1)) "$sp" | head -c "$n" > "./$p" || fail "writing file $p"
  chmod "$md" -- "./$p" || fail "setting the mode of file $p"
done < "$sp"
tail -c +$((il + dl + 1)) "$sp" > "$sp.0" || fail "spooling the program's stdin"
command exec 3< "$sp.0" || fail "opening the program's stdin"
rm -f -- "$sp" "$sp.0" || fail 'removing the spool'
set +f
# A limit is only ever lowered: a hard limit below NOFILE (the container
# runtime's) already holds the program to less, and stays.
h=$(ulimit -Hn) || fail 'reading the open-file limit'
[ "$h" = unlimited ] || [ "$nf" -le "$h" ] || nf=$h
[ "$nf" = 0 ] || (ulimit -n "$nf") || fail "lowering the open-file limit to $nf"
printf '\036echo-sandbox-started\n'
# In the background, so that the kubelet's SIGTERM (a delete's), which
# reaches us as the container's first process, is passed on to it; we wait
# again until it has ended. (Its exit 125 cannot come: the trial above set
# the same limit from the same process.)
( [ "$nf" = 0 ] || ulimit -n "$nf" || exit 125; exec "$@" ) <&3 3<&- &
pg=$!
exec 3<&-
trap 'kill -TERM "$pg" 2>/dev/null' TERM
while wait "$pg"; st=$?; [ "$st" -gt 128 ] && kill -0 "$pg" 2>/dev/null; do :; done
[ -z "$ps" ] || reap
printf '\036%s %s\n' "$e" "$st" >&2
[ -n "$ps" ] || exit $st
set -f
LC_ALL=C # ${#h} counts bytes

# One pattern segment against one name: a hidden name only explicitly.
seg() {
  case $2 in .*) case $1 in .*) ;; *) return 1 ;; esac ;; esac
  case $2 in $1) return 0 ;; esac
  return 1
}
# A pattern against a path, segment by segment; ** any number of
# directories, at the end every file below (engine/contract/collect.h).
match() {
  case $1 in
  '**') case $2 in .* | */.*) return 1 ;; esac; return 0 ;;
  '**/'*)
    match "${1#???}" "$2" && return 0
    case $2 in .*) return 1 ;; */*) match "$1" "${2#*/}" ;; *) return 1 ;; esac ;;
  */*)
    case $2 in */*) ;; *) return 1 ;; esac
    seg "${1%%/*}" "${2%%/*}" && match "${1#*/}" "${2#*/}" ;;
  *)
    case $2 in */*) return 1 ;; esac
    seg "$1" "$2" ;;
  esac
}

printf '%s\n' "$mk"
find . -xdev -type f -links 1 2>/dev/null | head -n 100000 | {
  c=0 b=0 t=0 more=0
  while IFS= read -r f; do
    case $f in ./*) f=${f#./} ;; *) continue ;; esac
    hit=
    IFS='
'
    for pt in $ps; do
      if match "$pt" "$f"; then hit=1; break; fi
    done
    IFS=' '
    [ -n "$hit" ] || continue
    if [ "$c" -ge "$cn" ]; then more=1; continue; fi
    sz=$(wc -c < "./$f" 2>/dev/null) || continue
    sz=$((sz + 0)) n=$((sz + 0))
    [ "$n" -le "$cf" ] || n=$cf
    [ "$n" -le $((ct - b)) ] || n=$((ct - b))
    h="F $n $sz $f"
    printf '%s\n' "$h"
    { head -c "$n" < "./$f"; head -c "$n" < /dev/zero; } 2>/dev/null | head -c "$n"
    c=$((c + 1)) b=$((b + n)) t=$((t + ${#h} + 1 + n))
  done
  printf 'E %s %s\n' "$more" "$t"
}
exit $st
