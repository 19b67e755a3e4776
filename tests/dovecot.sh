#!/bin/sh
# dovecot.sh — a throwaway IMAP server (Debian's dovecot-imapd) for the IMAP
# tests, on 127.0.0.1, as an unprivileged user, with its own config, users
# file, maildirs and self-signed certificate under DIR. No system config or
# service is touched.
#
#   dovecot.sh start DIR PORT TLSPORT USER PASSWORD   write the config (first time) and start
#   dovecot.sh stop DIR                               stop it (the pid in DIR/run/master.pid)
#   dovecot.sh deliver DIR USER FILE                  drop a message into USER's INBOX (unseen)
#   dovecot.sh passwd DIR USER PASSWORD               change USER's password (read at the next login)
#
# As root (CI) the server runs as the `dovenull` user the package creates
# (DIR is handed to it); as anyone else, as that user. DIR/cert.pem is the
# certificate (CN and subjectAltName 127.0.0.1), for CA-file verification.
set -eu
cmd=${1:?usage: dovecot.sh start|stop|deliver DIR ...}
dir=$(realpath -m "${2:?DIR}")
if [ "$(id -u)" -eq 0 ]; then runas=dovenull; else runas=$(id -un); fi
as_run() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$runas" -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
    port=${3:?PORT} tlsport=${4:?TLSPORT} user=${5:?USER} pass=${6:?PASSWORD}
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    if [ ! -f "$dir/cert.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    fi
    printf '%s:{PLAIN}%s\n' "$user" "$pass" > "$dir/users"
    grp=$(id -gn "$runas") uid=$(id -u "$runas")
    cat > "$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
instance_name = agentq-test-$port
listen = 127.0.0.1
protocols = imap
log_path = $dir/dovecot.log
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = $runas
default_internal_user = $runas
default_internal_group = $grp
mail_location = maildir:$dir/mail/%u
first_valid_uid = $uid
last_valid_uid = $uid
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=$runas gid=$grp home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $tlsport
    ssl = yes
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
CONF
    mkdir -p "$dir/mail/$user/new" "$dir/mail/$user/cur" "$dir/mail/$user/tmp"
    [ "$(id -u)" -eq 0 ] && chown -R "$runas:$grp" "$dir"
    # in the foreground, in the caller's process group: the test runner's kill of the group ends it too
    as_run /usr/sbin/dovecot -F -c "$dir/dovecot.conf" >>"$dir/stderr.log" 2>&1 &
    # listening once both ports answer
    i=0
    while [ $i -lt 100 ]; do
        if ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port " && ss -ltn 2>/dev/null | grep -q "127.0.0.1:$tlsport "; then
            exit 0
        fi
        sleep 0.1; i=$((i + 1))
    done
    cat "$dir/dovecot.log" >&2 2>/dev/null || true
    echo "dovecot.sh: dovecot did not start" >&2; exit 1
    ;;
stop)
    [ -f "$dir/run/master.pid" ] || exit 0
    pid=$(cat "$dir/run/master.pid")
    rm -f "$dir/run/master.pid"
    kill "$pid" 2>/dev/null || exit 0
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    ;;
deliver)
    user=${3:?USER} file=${4:?FILE}
    name="$(date +%s).$$.$(od -An -N4 -tx4 /dev/urandom | tr -d ' ').agentq"
    cp "$file" "$dir/mail/$user/tmp/$name"
    [ "$(id -u)" -eq 0 ] && chown "$runas" "$dir/mail/$user/tmp/$name"
    mv "$dir/mail/$user/tmp/$name" "$dir/mail/$user/new/$name"
    ;;
passwd)
    user=${3:?USER} pass=${4:?PASSWORD}
    printf '%s:{PLAIN}%s\n' "$user" "$pass" > "$dir/users.new"
    [ "$(id -u)" -eq 0 ] && chown "$runas" "$dir/users.new"
    # dovecot re-reads the file when its mtime (whole seconds) changes: make sure it does
    touch -d "@$(( $(date +%s) + 2 ))" "$dir/users.new"
    mv "$dir/users.new" "$dir/users"
    ;;
*) echo "dovecot.sh: unknown command $cmd" >&2; exit 2 ;;
esac
