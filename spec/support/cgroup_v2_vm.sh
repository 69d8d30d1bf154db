#!/usr/bin/env bash
# Runs spec files on a cgroup v2 kernel: Debian's own cloud kernel
# (linux-image-cloud-amd64, fetched with apt-get download) booted under
# qemu-system-x86_64 in TCG mode, with only the unified cgroup hierarchy
# mounted. For machines that mount cgroup v1 themselves.
#
#   spec/support/cgroup_v2_vm.sh [SPEC_FILE...]   (default: spec/cgroup_spec.lua)
#
# The guest sees this machine's root file system read-only through virtiofs
# (QEMU's virtiofsd), so it runs this very build with the host's lua5.4,
# busted, python3 and node; /tmp, /run, /root and /var/tmp are tmpfs of its
# own. The guest's init (a busybox initramfs) loads the virtio and virtiofs
# modules, switches to that root and starts the specs the way a systemd
# service with Delegate=yes would be: alone in a cgroup of its own
# (esb-tests.service) whose parent has the memory, pids and cpu controllers
# enabled. It has no network device.
#
# ESB_VM_COMMAND, when set, is a shell command the guest runs there instead
# of spec/run (to look around).
#
# Ends with the guest's "N passed, N failed, N skipped"; exits 0 only when
# the guest's spec run did. Needs root (apt-get, virtiofsd).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${ESB_BUILD_DIR:-$here/build}" && pwd)
cache=${ESB_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/echo-sandbox/vm}
specs=("$@")
((${#specs[@]})) || specs=(spec/cgroup_spec.lua)

missing=()
for p in qemu-system-x86 busybox-static cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel and the modules the guest loads, once per kernel version.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci fuse virtiofs)
image=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$image" ]; then
  apt-get update -qq
  image=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
kdir=$cache/$image
if [ ! -f "$kdir/vmlinuz" ]; then
  work=$(mktemp -d)
  (cd "$work" && apt-get download -q "$image" >/dev/null 2>&1) || { rm -rf "$work"; echo "cannot download $image" >&2; exit 1; }
  dpkg-deb -x "$work"/*.deb "$work/x"
  mkdir -p "$kdir.new"
  cp "$work"/x/boot/vmlinuz-* "$kdir.new/vmlinuz"
  for m in "${modules[@]}"; do
    find "$work/x/lib/modules" -name "$m.ko" -exec cp {} "$kdir.new/" \;
    [ -f "$kdir.new/$m.ko" ] || { echo "$image has no $m.ko" >&2; rm -rf "$work" "$kdir.new"; exit 1; }
  done
  rm -rf "$work" "$kdir"
  mv "$kdir.new" "$kdir"
fi

vm=$(cd "$(mktemp -d)" && pwd -P)
keep="$(cd "$here" && pwd -P) $(cd "$build" && pwd -P) $vm"
vfsd=
cleanup() {
  [ -z "$vfsd" ] || kill "$vfsd" 2>/dev/null || true
  rm -rf "$vm"
}
trap cleanup EXIT

# The initramfs: busybox, the modules, and an init that mounts the host's
# root and switches to it.
mkdir -p "$vm/initrd/bin" "$vm/initrd/lib/modules"
cp /bin/busybox "$vm/initrd/bin/busybox"
cp "$kdir"/*.ko "$vm/initrd/lib/modules/"
cat > "$vm/initrd/init" <<EOF
#!/bin/busybox sh
b=/bin/busybox
\$b mkdir -p /proc /host
\$b mount -t proc proc /proc
for m in ${modules[*]}; do \$b insmod /lib/modules/\$m.ko || echo "esb-vm: insmod \$m failed"; done
\$b mount -t virtiofs -o ro host /host || { echo "esb-vm: exit 125"; \$b poweroff -f; }
\$b mount -t devtmpfs devtmpfs /host/dev
\$b mkdir -p /host/dev/pts /host/dev/shm
\$b mount -t devpts devpts /host/dev/pts
\$b mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
# Writable places of the guest's own; what of ours lies below them (a clone
# in /tmp, this script's files) is bound back in from the shared root.
\$b mount -t tmpfs -o mode=755 tmpfs /host/run
for d in tmp root var/tmp; do
  \$b mkdir -p /host/run/esb-host/\$d
  \$b mount --bind /host/\$d /host/run/esb-host/\$d
  \$b mount -t tmpfs -o mode=1777 tmpfs /host/\$d
done
for p in $keep; do
  for d in tmp root var/tmp; do
    case \$p in /\$d/*) \$b mkdir -p /host\$p; \$b mount --bind /host/run/esb-host\$p /host\$p;; esac
  done
done
\$b mount -t proc proc /host/proc
\$b mount -t sysfs sysfs /host/sys
\$b mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
\$b umount /proc
exec \$b switch_root /host /bin/sh $vm/guest.sh
EOF
chmod +x "$vm/initrd/init"
(cd "$vm/initrd" && find . | cpio -o -H newc --quiet) > "$vm/initrd.cpio"

# What the guest runs, as its pid 1, from the shared root.
{
  echo '#!/bin/sh'
  echo 'export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TMPDIR=/tmp LANG=C.UTF-8'
  echo 'ip link set lo up 2>/dev/null'
  echo 'echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control'
  echo 'mkdir /sys/fs/cgroup/esb-tests.service'
  printf 'cd %q\n' "$here"
  # A child shell alone in the service's cgroup, as systemd starts a service.
  command=${ESB_VM_COMMAND:-exec spec/run ${specs[*]}}
  printf 'sh -c %q\n' "echo \$\$ > /sys/fs/cgroup/esb-tests.service/cgroup.procs && export ESB_BUILD_DIR=$build ESB_SPEC_CGROUP_VERSION=2 && $command"
  echo 'echo "esb-vm: exit $?"'
  echo 'exec /bin/busybox poweroff -f'
} > "$vm/guest.sh"

/usr/lib/qemu/virtiofsd --socket-path="$vm/vfs.sock" -o source=/ -o cache=auto -o sandbox=chroot \
  -o log_level=err </dev/null >"$vm/virtiofsd.log" 2>&1 &
vfsd=$!
for _ in $(seq 100); do [ -S "$vm/vfs.sock" ] && break; sleep 0.05; done

mem=2G
status=0
timeout "${ESB_VM_TIMEOUT:-1200}" qemu-system-x86_64 -accel tcg -smp 2 -m "$mem" -nographic -no-reboot -nic none \
  -object memory-backend-memfd,id=mem,size="$mem",share=on -numa node,memdev=mem \
  -chardev socket,id=vfs,path="$vm/vfs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=host \
  -kernel "$kdir/vmlinuz" -initrd "$vm/initrd.cpio" \
  -append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all" </dev/null | tr -d '\r' | tee "$vm/console.log" || status=$?
guest=$(sed -n 's/^esb-vm: exit \([0-9]*\)$/\1/p' "$vm/console.log" | tail -n 1)
if [ -z "$guest" ]; then
  echo "esb-vm: the guest did not finish (qemu status $status)" >&2
  grep -q '^[0-9]* passed, [0-9]* failed' "$vm/console.log" || echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
exit "$guest"
