"""Verifies an outbound webhook the way a receiver would, with Standard
Webhooks' official library: the body from a file, the headers as a JSON
object from another. Prints the decoded payload on success; exits 1 with
the library's refusal otherwise.

  verify.py SECRET BODY_FILE HEADERS_FILE
"""

import json
import sys


def main(argv):
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    secret, body_file, headers_file = argv[1], argv[2], argv[3]
    with open(body_file, "rb") as f:
        body = f.read()
    with open(headers_file, "r", encoding="utf-8") as f:
        headers = json.load(f)
    try:
        payload = Webhook(secret).verify(body, headers)
    except WebhookVerificationError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 1
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
