"""Signs a hook request the way the senders do, with independent code:
Standard Webhooks' official library, and Python's hmac in the GitHub,
Shopify and Stripe formats. Reads the body from a file and prints the
headers to send as a JSON object.

  sign.py standard-webhooks SECRET BODY_FILE MSG_ID UNIX_TIME
  sign.py github|shopify SECRET BODY_FILE
  sign.py stripe SECRET BODY_FILE UNIX_TIME
"""

import base64
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone


def main(argv):
    mode, secret, body_file = argv[1], argv[2], argv[3]
    with open(body_file, "rb") as f:
        body = f.read()
    if mode == "standard-webhooks":
        from standardwebhooks.webhooks import Webhook

        msg_id, unix = argv[4], int(argv[5])
        at = datetime.fromtimestamp(unix, tz=timezone.utc)
        signature = Webhook(secret).sign(msg_id, at, body.decode("utf-8"))
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(unix), "webhook-signature": signature}
    elif mode == "github":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": "sha256=" + digest}
    elif mode == "shopify":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        headers = {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}
    elif mode == "stripe":
        unix = argv[4]
        signed = unix.encode() + b"." + body
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        headers = {"Stripe-Signature": f"t={unix},v1={digest}"}
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(headers))


if __name__ == "__main__":
    main(sys.argv)
