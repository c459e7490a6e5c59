#!/usr/bin/env bash
# Desktop login end to end (CONTRACTS §4), against the software
# authenticator over CTAPHID-on-UDP on 127.0.0.1 (no USB needed):
#
# - OpenSSH with libhwkey_sk.so: ssh-keygen enrolls ecdsa-sk and ed25519-sk
#   keys (also -O resident and -O verify-required with a PIN), ssh-keygen -Y
#   sign / -Y verify, ssh-keygen -K downloads resident keys, and ssh logs in
#   to an sshd of its own on 127.0.0.1 with an sk key (and fails with another).
# - PAM with libpam_hwkey.so through pamtester and PAM service files of its
#   own: a user enrolled with `hwkey pam enroll` authenticates; another key,
#   another origin and an unenrolled user are refused (the last accepted with
#   nouserok); pinverification=1 asks for the PIN. pam_u2f (Debian's
#   libpam-u2f) parses the line `hwkey pam enroll` printed.
# - The time from pam_sm_authenticate to the answer (median of 50 pamtester
#   runs, each timed by the module's own debug line); for the release figure
#   run it as `HWKEY_DESKTOP_PROFILE=release bash .ci/desktop-login.sh`.
#
# Installs openssh-client, openssh-server, pamtester and libpam-u2f from
# Debian when missing (without starting the system's sshd). Every wait is
# bounded; everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n--- desktop: %s\n' "$*"; }
fail() { echo "desktop-login: FAILED: $*" >&2; exit 1; }

step "packages"
need=()
for p in openssh-client openssh-server pamtester libpam-u2f; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep the package's own sshd from starting on port 22.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
ssh -V

step "clippy of the FFI shims (pam/, sk/; the root's clippy covers hwkey only)"
cargo clippy -p hwkey-pam -p hwkey-sk --all-targets -- -D warnings

# The dev build `cargo test` just made is reused (dependencies are optimized
# in it; a cold release build costs CI minutes). HWKEY_DESKTOP_PROFILE=release
# runs everything, and the timing below, on `cargo build --release --workspace`.
PROFILE=${HWKEY_DESKTOP_PROFILE:-debug}
step "build ($PROFILE, workspace)"
if [ "$PROFILE" = release ]; then cargo build --release --workspace --quiet; else cargo build --workspace --quiet; fi
HWKEY=$ROOT/target/$PROFILE/hwkey
SK=$ROOT/target/$PROFILE/libhwkey_sk.so
PAMSO=$ROOT/target/$PROFILE/libpam_hwkey.so
[ -f "$SK" ] && [ -f "$PAMSO" ] || fail "the cdylibs were not built"

WORK=$(mktemp -d /tmp/hwkey-desktop.XXXXXX)
chmod 755 "$WORK"
PIDS=()
PAMD=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "${PAMD[@]}"; do rm -f "$f"; done
  [ -f "$WORK/sshd.pid" ] && kill "$(cat "$WORK/sshd.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Start a software authenticator; prints its address.
start_device() { # NAME [ARGS...]
  local name=$1; shift
  "$HWKEY" virtual serve --udp 127.0.0.1:0 "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    if grep -q '^listening on udp://' "$WORK/$name.log"; then
      sed -n 's|^listening on udp://||p' "$WORK/$name.log" | head -n1
      return 0
    fi
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  fail "device $name did not start"
}

DEV=$(start_device key --pin 1234)
DEV2=$(start_device other --pin 1234)
echo "software keys at udp:$DEV and udp:$DEV2"

# OpenSSH asks for the PIN through SSH_ASKPASS (no terminal in CI).
printf '#!/bin/sh\necho 1234\n' > "$WORK/askpass" && chmod 755 "$WORK/askpass"
export SSH_ASKPASS="$WORK/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0
export SSH_SK_PROVIDER="$SK"
export HWKEY_DEVICE="udp:$DEV"
T="timeout 60"

step "ssh-keygen: enroll ecdsa-sk, ed25519-sk, resident, verify-required"
$T ssh-keygen -q -t ecdsa-sk -w "$SK" -f "$WORK/id_ecdsa_sk" -N '' -C ci-ecdsa </dev/null
$T ssh-keygen -q -t ed25519-sk -w "$SK" -f "$WORK/id_ed25519_sk" -N '' -C ci-ed25519 </dev/null
$T ssh-keygen -q -t ecdsa-sk -w "$SK" -O resident -O user=ci -O application=ssh:ci -f "$WORK/id_rk" -N '' </dev/null
$T ssh-keygen -q -t ed25519-sk -w "$SK" -O verify-required -f "$WORK/id_uv" -N '' </dev/null
grep -q '^sk-ecdsa-sha2-nistp256@openssh.com ' "$WORK/id_ecdsa_sk.pub" || fail "ecdsa-sk public key"
grep -q '^sk-ssh-ed25519@openssh.com ' "$WORK/id_ed25519_sk.pub" || fail "ed25519-sk public key"
# A second resident key of the same application and user: refused unless overwritten.
if $T ssh-keygen -q -t ecdsa-sk -w "$SK" -O resident -O user=ci -O application=ssh:ci -f "$WORK/id_rk2" -N '' </dev/null 2>"$WORK/exists.log"; then
  fail "a second resident key for the same user was not refused"
fi
echo "second resident key refused: $(tail -n1 "$WORK/exists.log")"
# For the failing logins below: a key not in authorized_keys, and an
# authorized key whose credential lives on the other device.
$T ssh-keygen -q -t ecdsa-sk -w "$SK" -f "$WORK/id_wrong" -N '' </dev/null
HWKEY_DEVICE="udp:$DEV2" $T ssh-keygen -q -t ecdsa-sk -w "$SK" -f "$WORK/id_otherdev" -N '' </dev/null

step "ssh-keygen -Y sign / -Y verify"
echo "hello from hwkey" > "$WORK/msg"
for k in id_ecdsa_sk id_ed25519_sk id_uv; do
  rm -f "$WORK/msg.sig"
  $T ssh-keygen -q -Y sign -f "$WORK/$k" -n file "$WORK/msg" </dev/null
  echo "ci@example $(cut -d' ' -f1,2 "$WORK/$k.pub")" > "$WORK/allowed_signers"
  ssh-keygen -Y verify -f "$WORK/allowed_signers" -I ci@example -n file -s "$WORK/msg.sig" < "$WORK/msg" \
    || fail "-Y verify of $k"
  if echo "tampered" | ssh-keygen -Y verify -f "$WORK/allowed_signers" -I ci@example -n file -s "$WORK/msg.sig" >/dev/null 2>&1; then
    fail "-Y verify accepted a tampered message ($k)"
  fi
done

step "ssh-keygen -K (download resident keys)"
mkdir "$WORK/k" && (cd "$WORK/k" && $T ssh-keygen -K -N '' </dev/null)
ls "$WORK/k"
rk_pub=$(ls "$WORK"/k/*.pub | head -n1)
[ -n "$rk_pub" ] || fail "no resident key downloaded"
[ "$(cut -d' ' -f2 "$rk_pub")" = "$(cut -d' ' -f2 "$WORK/id_rk.pub")" ] || fail "the downloaded resident key differs"

step "ssh login to an sshd on 127.0.0.1"
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -f "$WORK/hostkey" -N ''
cut -d' ' -f1,2 "$WORK/id_ecdsa_sk.pub" > "$WORK/authorized_keys"
cut -d' ' -f1,2 "$WORK/id_ed25519_sk.pub" >> "$WORK/authorized_keys"
cut -d' ' -f1,2 "$WORK/id_otherdev.pub" >> "$WORK/authorized_keys"
# sshd checks the UV flag of this one: the PIN (through SSH_ASKPASS) must have been used.
echo "verify-required $(cut -d' ' -f1,2 "$WORK/id_uv.pub")" >> "$WORK/authorized_keys"
chmod 600 "$WORK/authorized_keys"
PORT=""
for _ in 1 2 3 4 5; do
  p=$((20000 + RANDOM % 20000))
  cat > "$WORK/sshd_config" <<EOF
Port $p
ListenAddress 127.0.0.1
HostKey $WORK/hostkey
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
EOF
  /usr/sbin/sshd -f "$WORK/sshd_config" -E "$WORK/sshd.log"
  for _ in $(seq 1 50); do [ -s "$WORK/sshd.pid" ] && break; sleep 0.1; done
  if [ -s "$WORK/sshd.pid" ]; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { cat "$WORK/sshd.log" >&2; fail "sshd did not start"; }
login_user=$(id -un)
ssh_to() { # KEY
  $T ssh -F none -i "$WORK/$1" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o SecurityKeyProvider="$SK" -p "$PORT" "$login_user@127.0.0.1" echo logged-in-with-hwkey </dev/null
}
[ "$(ssh_to id_ecdsa_sk)" = logged-in-with-hwkey ] || fail "ssh login with ecdsa-sk"
[ "$(ssh_to id_ed25519_sk)" = logged-in-with-hwkey ] || fail "ssh login with ed25519-sk"
[ "$(ssh_to id_uv)" = logged-in-with-hwkey ] || fail "ssh login with a verify-required key (PIN)"
if ssh_to id_wrong >/dev/null 2>&1; then fail "ssh login with a key not in authorized_keys succeeded"; fi
# Authorized, but the device at HWKEY_DEVICE does not hold the credential: no signature, no login.
if ssh_to id_otherdev >/dev/null 2>&1; then fail "ssh login without the device holding the key succeeded"; fi
echo "ssh: logged in with ecdsa-sk, ed25519-sk and a verify-required key; a key not authorized and a key on another device were refused"
kill "$(cat "$WORK/sshd.pid")" 2>/dev/null || true

step "PAM: hwkey pam enroll, pamtester"
ORIGIN=pam://hwkey-ci
HWKEY_PIN=1234 $T "$HWKEY" pam enroll --user root --origin "$ORIGIN" --device "udp:$DEV" > "$WORK/root.line"
cat "$WORK/root.line"
grep -Eq '^root:[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]+,es256,\+presence$' "$WORK/root.line" || fail "the enroll line is not pamu2fcfg's format"
cp "$WORK/root.line" "$WORK/u2f_mappings"
chmod 644 "$WORK/u2f_mappings"
SVC=hwkey-ci-$$
service() { # NAME ARGS...
  local name=$SVC-$1; shift
  printf 'auth required %s authfile=%s debug debug_file=stderr cue %s\naccount required pam_permit.so\n' \
    "$PAMSO" "$WORK/u2f_mappings" "$*" > "/etc/pam.d/$name"
  PAMD+=("/etc/pam.d/$name")
  echo "$name"
}
svc_ok=$(service ok "origin=$ORIGIN device=udp:$DEV")
svc_other_key=$(service otherkey "origin=$ORIGIN device=udp:$DEV2")
svc_other_origin=$(service otherorigin "origin=pam://elsewhere device=udp:$DEV")
svc_pin=$(service pin "origin=$ORIGIN device=udp:$DEV pinverification=1")
printf 'auth required %s authfile=%s debug debug_file=stderr nouserok origin=%s device=udp:%s\nauth required pam_permit.so\naccount required pam_permit.so\n' \
  "$PAMSO" "$WORK/u2f_mappings" "$ORIGIN" "$DEV" > "/etc/pam.d/$SVC-nouserok"
PAMD+=("/etc/pam.d/$SVC-nouserok")
svc_nouserok=$SVC-nouserok
pt() { $T pamtester -v "$@" </dev/null; }
other_user=nobody
id "$other_user" >/dev/null 2>&1 || fail "no user $other_user for the unenrolled-user check"

pt "$svc_ok" root authenticate > "$WORK/ok.log" 2>&1 || { cat "$WORK/ok.log"; fail "pamtester: the enrolled key was refused"; }
grep -q 'Please touch the device.' "$WORK/ok.log" || { cat "$WORK/ok.log"; fail "no touch cue"; }
if pt "$svc_other_key" root authenticate >"$WORK/o.log" 2>&1; then cat "$WORK/o.log"; fail "another key authenticated"; fi
if pt "$svc_other_origin" root authenticate >"$WORK/o.log" 2>&1; then cat "$WORK/o.log"; fail "another origin authenticated"; fi
if pt "$svc_ok" "$other_user" authenticate >"$WORK/o.log" 2>&1; then cat "$WORK/o.log"; fail "an unenrolled user authenticated"; fi
pt "$svc_nouserok" "$other_user" authenticate >"$WORK/o.log" 2>&1 || { cat "$WORK/o.log"; fail "nouserok: the unenrolled user was not let through"; }
if pt "$svc_nouserok" root authenticate >/dev/null 2>&1; then :; else fail "nouserok: the enrolled user failed with the right key"; fi
echo 1234 | $T pamtester -v "$svc_pin" root authenticate > "$WORK/pin.log" 2>&1 || { cat "$WORK/pin.log"; fail "pinverification=1 with the right PIN"; }
grep -q 'Please enter the PIN' "$WORK/pin.log" || { cat "$WORK/pin.log"; fail "pinverification=1 did not ask for the PIN"; }
if echo 9999 | $T pamtester -v "$svc_pin" root authenticate >"$WORK/o.log" 2>&1; then cat "$WORK/o.log"; fail "a wrong PIN authenticated"; fi
echo "pamtester: enrolled key ok; other key, other origin, unenrolled user refused; nouserok; PIN asked"

step "pam_u2f parses the line hwkey pam enroll printed"
PAMU2F=$(ls /lib/*/security/pam_u2f.so /usr/lib/*/security/pam_u2f.so 2>/dev/null | head -n1 || true)
if [ -n "$PAMU2F" ]; then
  printf 'auth required %s authfile=%s origin=%s debug debug_file=stderr\n' "$PAMU2F" "$WORK/u2f_mappings" "$ORIGIN" > "/etc/pam.d/$SVC-u2f"
  PAMD+=("/etc/pam.d/$SVC-u2f")
  pt "$SVC-u2f" root authenticate > "$WORK/u2f.log" 2>&1 || true
  # No HID key is attached, so pam_u2f cannot finish; it must have read the credential.
  grep -q 'Found 1 device(s) for user root' "$WORK/u2f.log" || { cat "$WORK/u2f.log"; fail "pam_u2f did not read the line"; }
  grep -q 'Attempting authentication with device number 1' "$WORK/u2f.log" || { cat "$WORK/u2f.log"; fail "pam_u2f did not try the credential"; }
  # It decodes the key handle and converts the public key before it looks for devices.
  if grep -Eq 'Failed to (parse|decode|convert)|Unknown COSE|Invalid point|Unable to parse' "$WORK/u2f.log"; then
    cat "$WORK/u2f.log"; fail "pam_u2f could not parse the line"
  fi
  echo "pam_u2f read the credential ($(basename "$PAMU2F"))"
else
  echo "pam_u2f.so not found; skipped"
fi

step "time from pam_sm_authenticate to the answer (software key, median of 50)"
: > "$WORK/times"
for _ in $(seq 1 50); do
  pt "$svc_ok" root authenticate 2>&1 | sed -n 's/.*pam_hwkey: success (0) after \([0-9]*\) us.*/\1/p' >> "$WORK/times"
done
n=$(wc -l < "$WORK/times")
[ "$n" -eq 50 ] || fail "only $n of 50 timed runs succeeded"
median=$(sort -n "$WORK/times" | sed -n '25p;26p' | awk '{s+=$1} END {printf "%.2f", s/2/1000}')
echo "pam_sm_authenticate -> PAM_SUCCESS: median ${median} ms over 50 runs (min $(sort -n "$WORK/times" | head -n1) us, max $(sort -n "$WORK/times" | tail -n1) us)"

step "desktop login: all checks passed"
