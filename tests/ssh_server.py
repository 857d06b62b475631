#!/usr/bin/env python3
"""A real SSH-2 server for the tests (paramiko): one host key made here,
one user key allowed, and `exec` requests answered by running nothing but
echoing their command's words back, as `echo` would. It lets the tests
drive the real OpenSSH client through the proxy (key exchange, public-key
login, a channel) without a system sshd and its service.

    tests/ssh_server.py PORT AUTHORIZED_KEY_FILE

Prints "ready" once listening on 127.0.0.1:PORT; serves until killed.
"""

import base64
import socket
import sys
import threading
import time

import paramiko


class Server(paramiko.ServerInterface):
    def __init__(self, allowed):
        self.allowed = allowed
        self.command = None
        self.ready = threading.Event()

    def check_auth_publickey(self, username, key):
        ok = key.get_name() == self.allowed.get_name() and key.asbytes() == self.allowed.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.command = command.decode(errors="replace")
        self.ready.set()
        return True


def serve(conn, host_key, allowed):
    transport = paramiko.Transport(conn)
    transport.add_server_key(host_key)
    server = Server(allowed)
    try:
        transport.start_server(server=server)
        channel = transport.accept(20)
        if channel is None or not server.ready.wait(20):
            return
        words = server.command.split()
        out = " ".join(words[1:]) + "\n" if words[:1] == ["echo"] else ""
        channel.sendall(out.encode())
        channel.send_exit_status(0 if out else 127)
        channel.shutdown_write()
        channel.close()
        # The client ends the connection once it has the output and status.
        deadline = time.monotonic() + 10
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
    except (paramiko.SSHException, OSError, EOFError):
        pass
    finally:
        transport.close()


def main():
    port, key_file = int(sys.argv[1]), sys.argv[2]
    kind, blob = open(key_file).read().split()[:2]
    allowed = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, host_key, allowed), daemon=True).start()


if __name__ == "__main__":
    main()
