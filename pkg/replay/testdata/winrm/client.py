#!/usr/bin/env python3
"""Runs pywinrm (the Debian package python3-winrm) against a WinRM server
and logs, as JSON Lines, each SOAP message it sent and received in clear:
the oracle for what replay decrypts.

Usage: client.py URL USER PASSWORD TRANSPORT LOG
"""
import json
import sys

import winrm
from winrm import encryption, transport

url, user, password, kind, log = sys.argv[1:6]
out = open(log, "w")


def record(direction, message):
    if message:
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        out.write(json.dumps({"dir": direction, "soap": text}) + "\n")


orig_prepare = encryption.Encryption.prepare_encrypted_request
orig_parse = encryption.Encryption.parse_encrypted_response


def prepare(self, session, endpoint, message):
    record("request", message)
    return orig_prepare(self, session, endpoint, message)


def parse(self, response):
    msg = orig_parse(self, response)
    record("response", msg)
    return msg


encryption.Encryption.prepare_encrypted_request = prepare
encryption.Encryption.parse_encrypted_response = parse

if kind == "basic":
    # In clear: log the messages as sent and received.
    orig_send = transport.Transport._send_message_request

    def send(self, prepared_request, message):
        record("request", message)
        r = orig_send(self, prepared_request, message)
        record("response", r.content)
        return r
    transport.Transport._send_message_request = send

s = winrm.Session(url, auth=(user, password), transport=kind,
                  message_encryption="never" if kind == "basic" else "always")
r = s.run_cmd("ipconfig", ["/all"])
print(r.status_code, r.std_out[:40])
r = s.run_ps("Get-Process | Select-Object -First 3")
print(r.status_code)
out.close()
