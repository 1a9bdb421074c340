#!/usr/bin/env python3
"""A TLS front for a plain-HTTP server on loopback, for the demo on a real node.

keyward sends provider credentials over plain http only to loopback: a Pod reaches privacyIDEA
at the host's address, so the demo puts this front there, with a certificate from a CA of its
own that the MfaProvider trusts through `caBundle` (the tests use tests/support/tls.rs).

Usage: tls_front.py --listen IP --upstream HOST:PORT --cert CHAIN.pem --key KEY.pem

Binds IP on a free port, prints `KEYWARD_TLS_FRONT=IP:PORT` on stdout once it listens, then
serves until it is killed. Every connection is a TLS handshake and a byte pipe to the upstream;
nothing is read or changed in between. Standard library only.
"""

import argparse
import socket
import ssl
import sys
import threading


def pipe(source, sink):
    """Copies until either side closes, then closes both directions."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, upstream, context):
    try:
        conn.settimeout(30)
        client = context.wrap_socket(conn, server_side=True)
        client.settimeout(None)
    except (ssl.SSLError, OSError) as e:
        print(f"tls_front: handshake: {e}", file=sys.stderr)
        conn.close()
        return
    try:
        server = socket.create_connection(upstream, timeout=10)
        server.settimeout(None)
    except OSError as e:
        print(f"tls_front: connect to {upstream[0]}:{upstream[1]}: {e}", file=sys.stderr)
        client.close()
        return
    back = threading.Thread(target=pipe, args=(server, client), daemon=True)
    back.start()
    pipe(client, server)
    back.join()
    client.close()
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="address to bind (a free port is taken)")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP server")
    parser.add_argument("--cert", required=True, help="PEM: the server certificate, then its CA")
    parser.add_argument("--key", required=True, help="PEM: the server certificate's key")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    upstream = (host, int(port))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, 0))
    listener.listen(64)
    print(f"KEYWARD_TLS_FRONT={args.listen}:{listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, upstream, context), daemon=True).start()


if __name__ == "__main__":
    main()
