#!/bin/bash
# CircleCI Services machine bootstrap, rendered by circle-ha services-userdata.
# EC2 user data is readable through the instance metadata service, so no
# secret is written here: they are fetched from the S3 bundle below.
# Values are single-quoted on purpose: a '$' or '`' in them stays literal.
# shellcheck disable=SC2016
set -euo pipefail
umask 077
export PATH="$PATH:/usr/local/bin:/snap/bin"

readonly BUCKET='circleci-ha-config'
readonly PREFIX='it'\''s a $prefix/'
readonly REGION='us-east-1'
readonly REPLICATED_URL='https://get.replicated.com/docker?replicated_tag=2.29.0%3B%20rm%20-rf%20%2F'

log() {
  printf '%s circle-ha-userdata: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

retry() {
  local attempt=1
  until "$@"; do
    if [ "$attempt" -ge 10 ]; then
      log "giving up after $attempt attempts: $*"
      return 1
    fi
    sleep $((attempt * 3))
    attempt=$((attempt + 1))
  done
}

# IMDSv2: a session token first, then the metadata item.
metadata() {
  local token
  token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    http://169.254.169.254/latest/api/token)
  curl -fsS -H "X-aws-ec2-metadata-token: $token" \
    "http://169.254.169.254/latest/meta-data/$1"
}

# The distribution's package where it exists, else the snap, else pip in a
# venv (PEP 668 forbids a system-wide pip install on current images).
install_aws_cli() {
  if command -v aws >/dev/null 2>&1; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  retry apt-get update -q
  if apt-get install -y -q --no-install-recommends awscli; then
    return 0
  fi
  if command -v snap >/dev/null 2>&1 && snap install aws-cli --classic; then
    return 0
  fi
  retry apt-get install -y -q --no-install-recommends python3-venv
  python3 -m venv /opt/circle-ha-awscli
  retry /opt/circle-ha-awscli/bin/pip install --quiet awscli
  ln -sf /opt/circle-ha-awscli/bin/aws /usr/local/bin/aws
}

fetch() {
  retry aws s3 cp --only-show-errors --region "$REGION" "s3://$BUCKET/$PREFIX$1" "$2"
}

fetch_dir() {
  retry aws s3 cp --only-show-errors --region "$REGION" --recursive \
    "s3://$BUCKET/$PREFIX$1" "$2"
}

main() {
  if ! command -v curl >/dev/null 2>&1; then
    retry apt-get update -q
    retry apt-get install -y -q --no-install-recommends curl ca-certificates
  fi
  log "installing the AWS CLI"
  install_aws_cli
  log "fetching the bundle from s3://$BUCKET/$PREFIX"
  install -d -m 0755 /etc/circleconfig
  install -d -m 0700 /etc/circleconfig/shared
  fetch 'circle-installation-customizations' '/etc/circle-installation-customizations'
  fetch 'license.rli' '/etc/license.rli'
  fetch 'replicated.conf' '/etc/replicated.conf'
  fetch 'settings.conf' '/etc/settings.conf'
  fetch_dir 'circleconfig/shared/' '/etc/circleconfig/shared/'
  install -d -m 0700 /data/circle /data/circle/circleci-encryption-keys
  fetch_dir 'circleci-encryption-keys/' '/data/circle/circleci-encryption-keys/'
  find /data/circle/circleci-encryption-keys -type f -exec chmod 600 {} +
  log "installing the CA certificates"
  fetch 'ca.crt' '/usr/local/share/ca-certificates/circle-ha-ca.crt'
  chmod 0644 '/usr/local/share/ca-certificates/circle-ha-ca.crt'
  fetch 'ca-2.crt' '/usr/local/share/ca-certificates/circle-ha-ca-2.crt'
  chmod 0644 '/usr/local/share/ca-certificates/circle-ha-ca-2.crt'
  update-ca-certificates
  local local_ip
  local_ip=$(retry metadata local-ipv4)
  log "installing Replicated (local address $local_ip)"
  curl -fsSL "$REPLICATED_URL" | bash -s local-address="$local_ip" no-proxy
  log "done in $SECONDS s"
}

main "$@"
