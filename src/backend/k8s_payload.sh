# The k8s container's first program when a request brings files in (its
# files, its code as a file) or wants files back (collect): run as
# `/bin/sh -c SCRIPT echo-sandbox ARGV...` in the working dir, it needs
# nothing in the image but a POSIX shell, head, tail, dd, mkdir, chmod, rm,
# find and wc (coreutils and BusyBox alike). Compiled into the engine
# (backend/k8s_command.h); what the engine sends is in backend/k8s_payload.h.
#
# stdin: the handshake (kubectl is attached): the end mark's secret, kept,
# and the start mark, copied to stderr by dd (backend/k8s_command.h: 34 is
# its length), so that the shell never holds it; a header line, then the
# block: the index (lines "f OFFSET LENGTH MODE PATH" and "c PATTERN", then
# an empty line), the files' bytes and the program's stdin. The block is read
# whole with one head -c into a spool file before anything else: nothing
# follows it on stdin, so not even a head that reads ahead (BusyBox's) can
# take bytes that are not its own.
#
# Once the program has ended: the end mark on stderr, with its status.
# With collect, then: the marker line, then a frame
# per matching file ("F LENGTH SIZE PATH", then exactly LENGTH bytes: the
# file's first, padded with NULs should it shrink) and "E MORE" last. The
# marker is random per run and never on the program's stdin, so its output
# cannot start the frames; the engine checks the frames against its own
# pattern matcher and ceilings all the same.
IFS= read -r e || exit 125
dd bs=1 count=34 >&2 2>/dev/null || exit 125
IFS=' ' read -r il dl sl cn cf ct mk || exit 125
sp=.echo-sandbox-in.$$
head -c $((il + dl + sl)) > "$sp" || exit 125
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
  case $p in */*) mkdir -p -- "${p%/*}" || exit 125 ;; esac
  tail -c +$((il + o + 1)) "$sp" | head -c "$n" > "$p" && chmod "$md" "$p" || exit 125
done < "$sp"
tail -c +$((il + dl + 1)) "$sp" > "$sp.0" && exec 3< "$sp.0" && rm -f "$sp" "$sp.0" || exit 125
set +f
"$@" <&3 3<&-
st=$?
exec 3<&-
printf '\036%s %s\n' "$e" "$st" >&2
[ -n "$ps" ] || exit $st
set -f

# One pattern segment against one name: a hidden name only explicitly.
seg() {
  case $2 in .*) case $1 in .*) ;; *) return 1 ;; esac ;; esac
  case $2 in $1) return 0 ;; esac
  return 1
}
# A pattern against a path, segment by segment; ** any number of
# directories, at the end every file below (engine/collect.h).
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
  c=0 b=0 more=0
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
    sz=$(wc -c < "$f" 2>/dev/null) || continue
    sz=$((sz + 0)) n=$((sz + 0))
    [ "$n" -le "$cf" ] || n=$cf
    [ "$n" -le $((ct - b)) ] || n=$((ct - b))
    printf 'F %s %s %s\n' "$n" "$sz" "$f"
    { head -c "$n" < "$f"; head -c "$n" < /dev/zero; } 2>/dev/null | head -c "$n"
    c=$((c + 1)) b=$((b + n))
  done
  printf 'E %s\n' "$more"
}
exit $st
