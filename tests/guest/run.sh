#!/usr/bin/env bash
# The device suite of issue 14, run INSIDE one QEMU guest that has /dev/uhid
# (started by .ci/guest.sh). hwkey's software devices become kernel HID
# devices through uhid, and the tools that talk to real keys are pointed at
# them: libfido2 (fido2-token, fido2-cred, fido2-assert), python-fido2,
# hidapi, pam_u2f (pamu2fcfg, pamtester), ykman, hwkey's own hidapi backend,
# udev. Every check prints PASS or FAIL with its reason; the exit status is
# the number of failures (0: all passed).
#
#   tests/guest/run.sh HWKEY_BINARY PYTHON_WITH_FIDO2
set -u
HWKEY=$(realpath "${1:?usage: run.sh HWKEY PYTHON}")
PY=${2:?usage: run.sh HWKEY PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
W=$(mktemp -d /tmp/hwkey-guest.XXXXXX)
export HOME=/root
echo "GUEST-START $(date +%s.%N)"
fails=0
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; fails=$((fails + 1)); }
# check NAME CMD...: run CMD with a time limit, PASS if it exits 0.
check() {
  local name=$1; shift
  local t0=$(date +%s.%N)
  if timeout -k 5 120 "$@" >"$W/out" 2>"$W/err"; then
    pass "$name ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
  else
    fail "$name (exit $?): $(tail -n 5 "$W/err" | tr '\n' ' ')"
  fi
  sed 's/^/    | /' "$W/out" | head -n 15
}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

# Start a software device and wait for its `listening on hid:` line(s).
# start NAME N CMD...: sets $PID; the N hidraw paths land in $W/NAME.paths.
start() {
  local name=$1 n=$2; shift 2
  "$@" >"$W/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 1 200); do
    [ "$(grep -c '^listening on hid:' "$W/$name.log")" -ge "$n" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  sed -n 's/^listening on hid:\([^ ]*\).*/\1/p' "$W/$name.log" >"$W/$name.paths"
  [ "$(wc -l <"$W/$name.paths")" -ge "$n" ]
}

echo "== versions"
uname -r
"$HWKEY" --version
dpkg-query -W -f '${Package} ${Version}\n' fido2-tools libfido2-1 libpam-u2f pamu2fcfg pamtester \
  yubikey-manager libhidapi-hidraw0 python3-hid udev openssh-client qemu-system-x86 2>/dev/null
"$PY" -c 'import importlib.metadata as m; print("python-fido2", m.version("fido2"))'

echo "== udev"
UDEVD=
if [ -x /lib/systemd/systemd-udevd ] && [ -d /etc/udev ]; then
  mkdir -p /etc/udev/rules.d /run/udev
  cp "$REPO/udev/70-hwkey.rules" /etc/udev/rules.d/70-hwkey.rules
  /lib/systemd/systemd-udevd --daemon 2>/dev/null && UDEVD=1 && echo "systemd-udevd started"
else
  echo "no systemd-udevd: the udev checks are skipped"
fi

# ---------------------------------------------------------------------------
echo "== the software authenticator as a uhid device"
if ! [ -c /dev/uhid ]; then
  fail "no /dev/uhid in the guest (modprobe uhid failed)"
  exit 1
fi
if start fido 1 "$HWKEY" virtual serve --uhid; then
  DEV=$(head -n1 "$W/fido.paths"); FIDO_PID=$PID
  pass "hwkey virtual serve --uhid: listening on hid:$DEV"
else
  fail "hwkey virtual serve --uhid: $(cat "$W/fido.log")"; exit 1
fi
[ -n "$UDEVD" ] && udevadm settle -t 10

check "fido2-token -L lists $DEV" sh -c "fido2-token -L | tee /dev/stderr | grep -q '^$DEV:'"
check "fido2-token -I $DEV (CTAP 2.1 getInfo)" sh -c "fido2-token -I $DEV | tee /dev/stderr | grep -q 'FIDO_2_1'"

# libfido2 makes and verifies a credential and an assertion.
cdh=$(head -c 32 /dev/urandom | base64)
printf '%s\nexample.com\nalice\n%s\n' "$cdh" "$(printf user-1 | base64)" >"$W/cred.in"
check "fido2-cred -M (make credential)" fido2-cred -M -i "$W/cred.in" -o "$W/cred.out" "$DEV"
check "fido2-cred -V (verify attestation)" fido2-cred -V -i "$W/cred.out" -o "$W/cred.pub"
credid=$(sed -n 5p "$W/cred.out")
printf '%s\nexample.com\n%s\n' "$cdh" "$credid" >"$W/assert.in"
check "fido2-assert -G (get assertion)" fido2-assert -G -i "$W/assert.in" -o "$W/assert.out" "$DEV"
check "fido2-assert -V (verify signature)" fido2-assert -V -i "$W/assert.out" "$W/cred.pub" es256

# hmac-secret: the same salt gives the same secret, another salt another one.
check "fido2-cred -M -h (hmac-secret credential)" fido2-cred -M -h -i "$W/cred.in" -o "$W/hcred.out" "$DEV"
check "fido2-cred -V -h" fido2-cred -V -h -i "$W/hcred.out" -o "$W/hcred.pub"
hid=$(sed -n 5p "$W/hcred.out")
salt1=$(head -c 32 /dev/urandom | base64); salt2=$(head -c 32 /dev/urandom | base64)
for i in 1 2 3; do
  s=$salt1; [ $i = 3 ] && s=$salt2
  printf '%s\nexample.com\n%s\n%s\n' "$cdh" "$hid" "$s" >"$W/hassert$i.in"
  timeout 60 fido2-assert -G -h -i "$W/hassert$i.in" -o "$W/hassert$i.out" "$DEV" 2>"$W/err" || echo "fido2-assert -G -h: $(cat "$W/err")"
done
check "fido2-assert -V -h (hmac-secret assertion verifies)" fido2-assert -V -h -i "$W/hassert1.out" "$W/hcred.pub" es256
h1=$(sed -n 5p "$W/hassert1.out"); h2=$(sed -n 5p "$W/hassert2.out"); h3=$(sed -n 5p "$W/hassert3.out")
if [ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "$h1" != "$h3" ] && [ "$(printf %s "$h1" | base64 -d | wc -c)" = 32 ]; then
  pass "hmac-secret: same salt -> same 32-byte secret, other salt -> other secret"
else
  fail "hmac-secret outputs: '$h1' '$h2' '$h3'"
fi

# With a PIN: libfido2 asks for it (read from stdin without a terminal).
if start pin 1 "$HWKEY" virtual serve --uhid --pin 123456; then
  PDEV=$(head -n1 "$W/pin.paths")
  check "fido2-token -I $PDEV: clientPin set" sh -c "fido2-token -I $PDEV | grep -q 'options:.* clientPin'"
  check "fido2-cred -M -v with the PIN" setsid -w sh -c "echo 123456 | fido2-cred -M -v -i '$W/cred.in' -o '$W/pcred.out' $PDEV"
  check "fido2-cred -V -v (UV flag set)" fido2-cred -V -v -i "$W/pcred.out" -o "$W/pcred.pub"
  printf '%s\nexample.com\n%s\n' "$cdh" "$(sed -n 5p "$W/pcred.out")" >"$W/passert.in"
  check "fido2-assert -G -v with the PIN" setsid -w sh -c "echo 123456 | fido2-assert -G -v -i '$W/passert.in' -o '$W/passert.out' $PDEV"
  check "fido2-assert -V -v" fido2-assert -V -v -i "$W/passert.out" "$W/pcred.pub" es256
  check "fido2-assert -G -v with a wrong PIN fails" setsid -w sh -c "! echo 654321 | fido2-assert -G -v -i '$W/passert.in' -o '$W/x.out' $PDEV"
  kill -TERM "$PID"; wait "$PID" 2>/dev/null
else
  fail "hwkey virtual serve --uhid --pin: $(cat "$W/pin.log")"
fi

# OpenSSH: a FIDO key pair on the device, a signature, its check.
if command -v ssh-keygen >/dev/null; then
  check "ssh-keygen -t ecdsa-sk makes a key on $DEV" sh -c \
    "ssh-keygen -q -t ecdsa-sk -N '' -O device=$DEV -f '$W/id_sk' </dev/null && cat '$W/id_sk.pub'"
  echo data >"$W/signed"
  check "ssh-keygen -Y sign with it, -Y check-novalidate accepts" sh -c \
    "ssh-keygen -Y sign -f '$W/id_sk' -n file '$W/signed' </dev/null &&
     ssh-keygen -Y check-novalidate -n file -f '$W/id_sk.pub' -s '$W/signed.sig' <'$W/signed'"
fi

# Python: hidapi sees the FIDO usage page; python-fido2 registers and signs in.
check "hidapi (python3-hid, hidraw backend) sees usage page 0xF1D0 on $DEV" /usr/bin/python3 -c "
import hidraw as hid, sys
ds = [d for d in hid.enumerate() if d['path'].decode() == '$DEV']
print(ds)
sys.exit(0 if any(d['usage_page'] == 0xf1d0 and d['usage'] == 1 for d in ds) else 1)"
check "python-fido2 CtapHidDevice + Fido2Client (Fido2Server verifies)" "$PY" "$HERE/webauthn.py" python-client "$DEV"

# hwkey's own hidapi backend.
check "hwkey list shows $DEV" sh -c "'$HWKEY' list | tee /dev/stderr | grep -q '$DEV'"
check "hwkey info --device hid:$DEV" sh -c "'$HWKEY' info --device 'hid:$DEV' | tee /dev/stderr | grep -q FIDO_2_1"
check "hwkey info (the one connected key, no --device)" sh -c "'$HWKEY' info --json | grep -q FIDO_2_1"
check "hwkey webauthn register/login over hid (Fido2Server verifies)" "$PY" "$HERE/webauthn.py" hwkey-client "$HWKEY" "$DEV"

# pam_u2f: enrol with pamu2fcfg, authenticate with pamtester.
mkdir -p /etc/pam.d
check "pamu2fcfg enrols" sh -c "pamu2fcfg -u root -o pam://hwkey -i pam://hwkey > '$W/u2f_keys' && cat '$W/u2f_keys' && echo"
cat >/etc/pam.d/hwkey-test <<EOF
auth required pam_u2f.so authfile=$W/u2f_keys origin=pam://hwkey appid=pam://hwkey cue
account required pam_permit.so
EOF
check "pamtester with pam_u2f.so authenticates" pamtester hwkey-test root authenticate
printf 'root:AAAA,BBBB,es256,+presence\n' >"$W/u2f_wrong"
sed "s|$W/u2f_keys|$W/u2f_wrong|" /etc/pam.d/hwkey-test >/etc/pam.d/hwkey-wrong
check "pamtester refuses a key handle the device does not know" sh -c "! pamtester hwkey-wrong root authenticate"

# udev: the project's rule tags the node.
if [ -n "$UDEVD" ]; then
  check "udevadm info $DEV: ID_FIDO_TOKEN=1 and the uaccess tag" sh -c \
    "udevadm info '$DEV' | tee /dev/stderr | grep -q 'ID_FIDO_TOKEN=1' && udevadm info '$DEV' | grep -E '^(E: CURRENT_TAGS=|Q:)' | grep -q ':uaccess:'"
  # systemd's own 60-fido-id.rules + 70-uaccess.rules tag FIDO nodes too:
  # mask them (a same-named file in /etc wins) so only udev/70-hwkey.rules can.
  ln -sf /dev/null /etc/udev/rules.d/60-fido-id.rules
  ln -sf /dev/null /etc/udev/rules.d/70-uaccess.rules
  udevadm control --reload
  check "udev/70-hwkey.rules alone tags $DEV uaccess (systemd's FIDO rules masked)" sh -c \
    "udevadm trigger --action=add --settle /sys/class/hidraw/$(basename "$DEV") && udevadm info '$DEV' | tee /dev/stderr | grep -E '^(E: CURRENT_TAGS=|Q:)' | grep -q ':uaccess:'"
fi

# Permission errors name the node and the udev rule (the node is root's 0600
# without a seat to hand it to).
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  check "an unreadable node: permission error names the node and the udev rules" sh -c \
    "! setpriv --reuid=nobody --regid=nogroup --clear-groups '$HWKEY' info --device 'hid:$DEV' 2>&1 | tee /dev/stderr | grep -q . ;
     setpriv --reuid=nobody --regid=nogroup --clear-groups '$HWKEY' info --device 'hid:$DEV' 2>&1 | grep -q \"permission denied opening $DEV.*udev/70-hwkey.rules\""
fi

# ---------------------------------------------------------------------------
echo "== the software YubiKey (OTP + FIDO interfaces)"
KEY=00112233445566778899aabbccddeeff00112233
if start yk 2 "$HWKEY" virtual yubikey --uhid --serial 12345678 --slot2-hmac "$KEY"; then
  OTP=$(sed -n 1p "$W/yk.paths"); YFIDO=$(sed -n 2p "$W/yk.paths"); YK_PID=$PID
  pass "hwkey virtual yubikey --uhid: OTP $OTP, FIDO $YFIDO"
else
  fail "hwkey virtual yubikey --uhid: $(cat "$W/yk.log")"
fi
[ -n "$UDEVD" ] && udevadm settle -t 10
CHAL=616263646566
want=$(/usr/bin/python3 -c "import hmac, hashlib; print(hmac.new(bytes.fromhex('$KEY'), bytes.fromhex('$CHAL'), hashlib.sha1).hexdigest())")
echo "Python hmac: HMAC-SHA1(key, $CHAL) = $want"
check "ykman list: a YubiKey with serial 12345678" sh -c "ykman list | tee /dev/stderr | grep -q 'YubiKey.*12345678'"
check "ykman otp calculate 2 $CHAL = Python's HMAC-SHA1" sh -c "ykman otp calculate 2 $CHAL | tee /dev/stderr | grep -qx '$want'"
check "hwkey yubikey chalresp --slot 2 $CHAL = Python's HMAC-SHA1" sh -c "'$HWKEY' yubikey chalresp --slot 2 $CHAL | tee /dev/stderr | grep -qx '$want'"
check "hwkey yubikey chalresp --device hid:$OTP" sh -c "'$HWKEY' yubikey chalresp --slot 2 $CHAL --device 'hid:$OTP' | grep -qx '$want'"
check "hwkey yubikey info: serial and slots" sh -c "'$HWKEY' yubikey info | tee /dev/stderr | grep -q 'serial: 12345678'"
check "hwkey yubikey program slot 1, then ykman computes with it" sh -c \
  "'$HWKEY' yubikey program --slot 1 --hmac-key 0102030405 &&
   [ \"\$(ykman otp calculate 1 $CHAL)\" = \"\$(/usr/bin/python3 -c \"import hmac,hashlib;print(hmac.new(bytes.fromhex('0102030405'),bytes.fromhex('$CHAL'),hashlib.sha1).hexdigest())\")\" ]"
check "hwkey list shows both FIDO devices (several devices)" sh -c "'$HWKEY' list | tee /dev/stderr | grep -c hidraw | grep -qx 2"
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  check "YubiKey OTP node unreadable: the error names the node and the udev rules" sh -c \
    "setpriv --reuid=nobody --regid=nogroup --clear-groups '$HWKEY' yubikey info --device 'hid:$OTP' 2>&1 | tee /dev/stderr | grep -q \"permission denied opening $OTP.*udev/70-hwkey.rules\""
fi
check "hwkey info with two FIDO devices connected (touch to select) completes" sh -c "'$HWKEY' info --json | grep -q FIDO_2_1"
check "fido2-token -I on the YubiKey's FIDO interface ($YFIDO)" sh -c "fido2-token -I '$YFIDO' | grep -q FIDO_2"
if [ -n "$UDEVD" ]; then
  check "udevadm info $OTP (YubiKey OTP interface): uaccess tag" sh -c \
    "udevadm info '$OTP' | tee /dev/stderr | grep -E '^(E: CURRENT_TAGS=|Q:)' | grep -q ':uaccess:'"
fi

# ---------------------------------------------------------------------------
echo "== unplug and exit"
# The device is removed (the process killed) while a request waits for a
# touch: the client reports a typed error quickly instead of hanging.
if start slow 1 "$HWKEY" virtual serve --uhid --touch-delay 600000; then
  SLOW=$(head -n1 "$W/slow.paths"); SLOW_PID=$PID
  printf '{"challenge":"Y2hhbGxlbmdl","rpId":"example.com","allowCredentials":[]}' >"$W/login.json"
  t0=$(date +%s)
  timeout 60 "$HWKEY" webauthn register --origin https://example.com --device "hid:$SLOW" --options - \
    >"$W/unplug.out" 2>"$W/unplug.err" <<<'{"rp":{"id":"example.com","name":"x"},"user":{"id":"dQ","name":"u","displayName":"u"},"challenge":"Y2hhbGxlbmdl","pubKeyCredParams":[{"type":"public-key","alg":-7}]}' &
  client=$!
  sleep 3
  kill -9 "$SLOW_PID"
  wait "$client"; rc=$?
  dt=$(( $(date +%s) - t0 ))
  msg=$(grep '^error:' "$W/unplug.err" | head -n1)
  if [ "$rc" = 1 ] && [[ $msg == *"device disconnected"* ]] && [[ $msg != *"HID error"* ]] && [ "$dt" -lt 30 ]; then
    pass "unplugged mid-request: exit 1 after ${dt}s: $msg"
  else
    fail "unplugged mid-request: exit $rc after ${dt}s: $(cat "$W/unplug.err")"
  fi
fi
# For the record: the same with the binary from before the hidapi-backend fix
# (HWKEY_UNFIXED, if given): what the finding looked like.
if [ -n "${HWKEY_UNFIXED:-}" ] && [ -x "$HWKEY_UNFIXED" ] && start slow2 1 "$HWKEY" virtual serve --uhid --touch-delay 600000; then
  S2=$(head -n1 "$W/slow2.paths")
  timeout 60 "$HWKEY_UNFIXED" webauthn register --origin https://example.com --device "hid:$S2" --options - \
    >/dev/null 2>"$W/unfixed.err" <<<'{"rp":{"id":"example.com","name":"x"},"user":{"id":"dQ","name":"u","displayName":"u"},"challenge":"Y2hhbGxlbmdl","pubKeyCredParams":[{"type":"public-key","alg":-7}]}' &
  c2=$!; sleep 3; kill -9 "$PID"; wait "$c2"; rc=$?
  echo "INFO before the fix, unplugged mid-request: exit $rc: $(grep '^error:' "$W/unfixed.err")"
fi
# SIGTERM removes the device.
kill -TERM "$FIDO_PID"; wait "$FIDO_PID"; rc=$?
sleep 0.5
if [ "$rc" = 0 ] && ! [ -e "$DEV" ]; then pass "SIGTERM: exit 0 and $DEV is gone"; else fail "SIGTERM: exit $rc, $(ls -l "$DEV" 2>&1)"; fi
kill -INT "$YK_PID"; wait "$YK_PID"; rc=$?
sleep 0.5
if [ "$rc" = 0 ] && ! [ -e "$OTP" ] && ! [ -e "$YFIDO" ]; then pass "SIGINT: exit 0 and both YubiKey nodes are gone"; else fail "SIGINT: exit $rc"; fi

echo "== $fails failure(s)"
exit "$fails"
