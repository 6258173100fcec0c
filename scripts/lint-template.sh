#!/usr/bin/env bash
# Lints the SAM template: installs the pinned linters (cfn-lint and the SAM
# CLI) into the project-local virtualenv if they are missing or at another
# version, then runs `cfn-lint` and `sam validate --lint` on template.yaml.
# Both must exit 0 (cfn-lint exits non-zero on warnings too). Nothing here
# talks to AWS: the credentials are dummies and telemetry is off.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION="1.58.0"
SAM_CLI_VERSION="1.170.0"
# Its own virtualenv: the SAM CLI pins boto3 and click versions moto (in .venv) should not share.
VENV=".venv-template"
TEMPLATE="template.yaml"

# The installed version of a distribution in the venv, or nothing.
installed_version() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass" "$1" 2>/dev/null || true
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
fi

if [ ! -x "$VENV/bin/cfn-lint" ] || [ "$(installed_version cfn-lint)" != "$CFN_LINT_VERSION" ] ||
  [ ! -x "$VENV/bin/sam" ] || [ "$(installed_version aws-sam-cli)" != "$SAM_CLI_VERSION" ]; then
  echo "== installing cfn-lint==$CFN_LINT_VERSION and aws-sam-cli==$SAM_CLI_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
fi

export PATH="$PWD/$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "== cfn-lint $CFN_LINT_VERSION: $TEMPLATE"
"$VENV/bin/cfn-lint" "$TEMPLATE"

echo "== sam $SAM_CLI_VERSION validate --lint: $TEMPLATE"
"$VENV/bin/sam" validate --lint --template-file "$TEMPLATE"

echo "== $TEMPLATE: both linters passed"
