#!/usr/bin/env bash
# The real USB HID path (issue 14): hwkey's software devices as Linux HID
# devices through /dev/uhid, driven by libfido2, python-fido2, hidapi,
# pam_u2f, ykman and hwkey itself. The CI host's kernel has no uhid, so the
# suite (tests/guest/run.sh) runs in ONE QEMU guest booted with Debian's
# kernel by virtme-ng; the guest sees the host's filesystem, so everything is
# installed and built here, on the host.
#
# Installs: qemu-system-x86 linux-image-amd64 busybox-static fido2-tools
# libhidapi-hidraw0 python3-hid libpam-u2f pamu2fcfg pamtester
# yubikey-manager udev, and pip virtme-ng + fido2 in a venv.
# Skips (exit 0, saying why) only when QEMU or the kernel cannot be had.
# Bounded: the guest gets GUEST_TIMEOUT seconds (default 900).
# Prints the guest's boot time, the suite's wall time and each tool's version.
set -uo pipefail
cd "$(dirname "$0")/.."
GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}
VENV=${HWKEY_GUEST_VENV:-/opt/hwkey-guest/venv}
t_start=$(date +%s)

skip() { echo "SKIP guest suite: $*"; exit 0; }

pkgs=(qemu-system-x86 linux-image-amd64 busybox-static fido2-tools libhidapi-hidraw0 python3-hid
      libpam-u2f pamu2fcfg pamtester yubikey-manager udev python3-venv util-linux openssh-client)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >/tmp/hwkey-guest-apt.log 2>&1 || { tail -n 20 /tmp/hwkey-guest-apt.log; }
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 could not be installed"
KERNEL=$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -n1)
[ -n "$KERNEL" ] || skip "no /boot/vmlinuz-* (linux-image-amd64 could not be installed)"
for p in fido2-tools libpam-u2f pamu2fcfg pamtester yubikey-manager busybox-static; do
  dpkg -s "$p" >/dev/null 2>&1 || { echo "FAIL: package $p is missing"; exit 1; }
done
if ! [ -x "$VENV/bin/vng" ] || ! "$VENV/bin/python" -c 'import fido2' 2>/dev/null; then
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q virtme-ng fido2; } >/tmp/hwkey-guest-pip.log 2>&1 \
    || { tail -n 20 /tmp/hwkey-guest-pip.log; echo "FAIL: pip install virtme-ng fido2"; exit 1; }
fi
echo "virtme-ng $("$VENV/bin/vng" --version 2>&1 | head -n1); qemu $(qemu-system-x86_64 --version | head -n1)"

echo "building hwkey on the host"
cargo build --bin hwkey --quiet || { echo "FAIL: cargo build --bin hwkey"; exit 1; }
# The guest runs a private copy: a cargo build on the host while the guest
# runs (the guest reads the host's files) must not swap the binary under it.
mkdir -p target/guest
cp target/debug/hwkey target/guest/hwkey
HWKEY=$PWD/target/guest/hwkey

# /dev/kvm on these CI machines is PVM and cannot boot a stock kernel: use
# TCG unless real KVM (kvm_intel/kvm_amd) is there.
accel=(--disable-kvm)
if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then accel=(); fi

echo "booting one guest ($(basename "$KERNEL"), ${accel[*]:-kvm})"
export PATH="$VENV/bin:$PATH"
t0=$(date +%s.%N)
guest_cmd="modprobe uhid; cd $(printf %q "$PWD") && HWKEY_UNFIXED=${HWKEY_UNFIXED:-} bash tests/guest/run.sh $(printf %q "$HWKEY") $(printf %q "$VENV/bin/python")"
# stdout through a pipe: vng's QEMU reopens its stdout, which truncates a file.
timeout --foreground -k 10 "$GUEST_TIMEOUT" nice -n 15 vng "${accel[@]}" --run "$KERNEL" --memory 1G --cpus 2 \
    --rwdir "$PWD" --cwd "$PWD" --exec "$guest_cmd" </dev/null 2>&1 | {
  boot=
  while IFS= read -r line; do
    if [ -z "$boot" ] && [[ $line == GUEST-START* ]]; then
      boot=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
      echo "guest boot time: ${boot}s (QEMU start to the first command)"
    fi
    printf '%s\n' "$line"
  done
}
rc=${PIPESTATUS[0]}
t1=$(date +%s.%N)
printf 'guest wall time: %.1fs (boot + suite); guest.sh total %ss; exit %s\n' \
  "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$(( $(date +%s) - t_start ))" "$rc"
[ "$rc" = 124 ] && echo "FAIL: the guest did not finish within ${GUEST_TIMEOUT}s"
exit "$rc"
