#!/usr/bin/env python3
"""SIP over TLS peers for sipgw's tests, written with Python's own ssl and hashlib (an
implementation independent of rustls and of sipgw's digest code).

  phone      --gw HOST:PORT --ca CA.pem --user U --password P [--count N] [--call MODE]
             Registers N times over one TLS connection (REGISTER, 407/401 challenge, digest
             with qop=auth, REGISTER, 200). Prints one JSON line per registration and one with
             the SHA-256 of the certificate the gateway presented. Then, on the same
             connection, --call caller: INVITE → 407 → ACK → INVITE with digest → 200 → ACK
             and BYE along the Record-Route → 200; --call callee: waits for an INVITE (the
             softswitch calling it), answers 200, takes the ACK and the BYE, answers 200.
             One JSON line per call step.
  softswitch --listen HOST:PORT --cert C.pem --key K.pem --log FILE
             Accepts TLS connections and answers every REGISTER with 200 OK; logs
             "registered USER via=TOP-VIA path=PATH" per REGISTER. Runs until killed.
"""
import argparse, hashlib, json, os, random, re, socket, ssl, sys, threading


def read_message(sock, buf):
    """One SIP message from a stream (framed by Content-Length); returns (msg, rest)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def header(msg, name):
    m = re.search(rb"(?im)^" + name.encode() + rb"\s*:\s*(.*)$", msg)
    return m.group(1).strip().decode() if m else None


def digest(challenge, user, password, method, uri):
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.split(" ", 1)[1]))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    cnonce, nc = "%08x" % random.getrandbits(32), "00000001"
    if "auth" in params.get("qop", "").split(","):
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        extra = ""
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5{extra}')


def phone(a):
    host, port = a.gw.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=a.ca)
    raw = socket.create_connection((host, int(port)), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    cert = sock.getpeercert(binary_form=True)
    print(json.dumps({"cert_sha256": hashlib.sha256(cert).hexdigest()}), flush=True)
    local = "%s:%d" % sock.getsockname()[:2]
    uri = f"sip:{host}:{port};transport=tls"
    buf = b""
    for n in range(a.count):
        call = "tls-%d-%d@%s" % (os.getpid(), n, local)
        auth = None
        for cseq in (1, 2):
            lines = [f"REGISTER {uri} SIP/2.0",
                     f"Via: SIP/2.0/TLS {local};branch=z9hG4bK-{os.getpid()}-{n}-{cseq}",
                     "Max-Forwards: 70",
                     f"From: <sip:{a.user}@{host}>;tag=py{n}",
                     f"To: <sip:{a.user}@{host}>",
                     f"Call-ID: {call}", f"CSeq: {cseq} REGISTER",
                     f"Contact: <sip:{a.user}@{local};transport=tls>", "Expires: 3600"]
            if auth:
                lines.append(auth)
            lines.append("Content-Length: 0")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            msg, buf = read_message(sock, buf)
            status = int(msg.split(b" ", 2)[1])
            if status in (401, 407) and cseq == 1:
                name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                hname = "Authorization" if status == 401 else "Proxy-Authorization"
                auth = f"{hname}: " + digest(header(msg, name), a.user, a.password,
                                             "REGISTER", uri)
                continue
            print(json.dumps({"register": n, "status": status}), flush=True)
            break
    if a.call == "caller":
        call_caller(a, sock, buf, host, port, local)
    elif a.call == "callee":
        call_callee(a, sock, buf, local)


def request(method, uri, local, branch, from_, to, call, cseq, extra=()):
    lines = [f"{method} {uri} SIP/2.0",
             f"Via: SIP/2.0/TLS {local};branch=z9hG4bK-{branch}",
             "Max-Forwards: 70", f"From: {from_}", f"To: {to}", f"Call-ID: {call}",
             f"CSeq: {cseq} {method}", *extra, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def headers(msg, name):
    return [m.strip().decode() for m in re.findall(rb"(?im)^" + name.encode() + rb"\s*:\s*(.*)$", msg)]


def uris(values):
    """The <URI>s of header values, in order (several per value when comma-separated)."""
    return [u for v in values for u in re.findall(r"<([^>]*)>", v)]


def answer(req, status, reason, to_tag=None, extra=()):
    out = [f"SIP/2.0 {status} {reason}"]
    for line in req.split(b"\r\n"):
        l = line.lower()
        if any(l.startswith(p) for p in (b"via:", b"from:", b"call-id:", b"cseq:",
                                          b"record-route:")):
            out.append(line.decode())
        elif l.startswith(b"to:"):
            t = line.decode()
            out.append(t + (f";tag={to_tag}" if to_tag and "tag=" not in t else ""))
    out += [*extra, "Content-Length: 0", "", ""]
    return "\r\n".join(out).encode()


def call_caller(a, sock, buf, host, port, local):
    """INVITE the softswitch through the gateway, then hang up."""
    pid = os.getpid()
    uri = f"sip:callee@{host}:{port};transport=tls"
    from_ = f"<sip:{a.user}@{host}>;tag=pyc{pid}"
    to = f"<sip:callee@{host}>"
    call = f"tls-call-{pid}@{local}"
    contact = f"Contact: <sip:{a.user}@{local};transport=tls>"
    auth = None
    for cseq in (1, 2):
        extra = [contact] + ([auth] if auth else [])
        sock.sendall(request("INVITE", uri, local, f"{pid}-inv{cseq}", from_, to, call, cseq,
                             extra))
        while True:
            msg, buf = read_message(sock, buf)
            status = int(msg.split(b" ", 2)[1])
            if status >= 200:
                break
        if status in (401, 407) and cseq == 1:
            # The ACK for the challenge (same branch, the To with the gateway's tag).
            sock.sendall(request("ACK", uri, local, f"{pid}-inv1", from_, header(msg, "To"),
                                 call, 1))
            name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            hname = "Authorization" if status == 401 else "Proxy-Authorization"
            auth = f"{hname}: " + digest(header(msg, name), a.user, a.password, "INVITE", uri)
            continue
        break
    print(json.dumps({"invite": status}), flush=True)
    if status != 200:
        return buf
    # The route set: the 200's Record-Route reversed (RFC 3261 §12.1.2); the remote target
    # its Contact.
    routes = list(reversed(uris(headers(msg, "Record-Route"))))
    target = uris([header(msg, "Contact")])[0]
    route_hdrs = [f"Route: <{r}>" for r in routes]
    to = header(msg, "To")
    sock.sendall(request("ACK", target, local, f"{pid}-ack", from_, to, call, 2, route_hdrs))
    sock.sendall(request("BYE", target, local, f"{pid}-bye", from_, to, call, 3, route_hdrs))
    msg, buf = read_message(sock, buf)
    print(json.dumps({"bye": int(msg.split(b" ", 2)[1]), "routes": len(routes)}), flush=True)
    return buf


def call_callee(a, sock, buf, local):
    """Wait for the softswitch's INVITE (down this connection), answer, take ACK and BYE."""
    seen = []
    while True:
        msg, buf = read_message(sock, buf)
        method = msg.split(b" ", 1)[0].decode()
        if method == "INVITE":
            seen.append(method)
            sock.sendall(answer(msg, 200, "OK", to_tag="pye",
                                extra=[f"Contact: <sip:{a.user}@{local};transport=tls>"]))
        elif method == "ACK":
            seen.append(method)
        elif method == "BYE":
            seen.append(method)
            sock.sendall(answer(msg, 200, "OK"))
            break
    print(json.dumps({"received": seen}), flush=True)
    return buf


def softswitch(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    host, port = a.listen.rsplit(":", 1)
    srv = socket.create_server((host, int(port)))
    log = open(a.log, "a", buffering=1)

    def serve(conn):
        buf = b""
        try:
            while True:
                msg, buf = read_message(conn, buf)
                if not msg.startswith(b"REGISTER "):
                    continue
                pai = header(msg, "P-Asserted-Identity") or ""
                user = re.search(r"sip:([^@]+)@", pai)
                log.write("registered %s via=%s path=%s\n" % (
                    user.group(1) if user else "?", header(msg, "Via"), header(msg, "Path")))
                out = ["SIP/2.0 200 OK"]
                for line in msg.split(b"\r\n"):
                    l = line.lower()
                    if any(l.startswith(p) for p in (b"via:", b"from:", b"call-id:", b"cseq:")):
                        out.append(line.decode())
                    elif l.startswith(b"to:"):
                        out.append(line.decode() + ";tag=ss")
                out += ["Content-Length: 0", "", ""]
                conn.sendall("\r\n".join(out).encode())
        except (EOFError, OSError, ssl.SSLError):
            pass

    while True:
        raw, _ = srv.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log.write("handshake failed: %s\n" % e)
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    ph = sub.add_parser("phone")
    ph.add_argument("--gw", required=True)
    ph.add_argument("--ca", required=True)
    ph.add_argument("--user", required=True)
    ph.add_argument("--password", required=True)
    ph.add_argument("--count", type=int, default=1)
    ph.add_argument("--call", choices=["caller", "callee"])
    ss = sub.add_parser("softswitch")
    ss.add_argument("--listen", required=True)
    ss.add_argument("--cert", required=True)
    ss.add_argument("--key", required=True)
    ss.add_argument("--log", required=True)
    a = p.parse_args()
    phone(a) if a.cmd == "phone" else softswitch(a)


if __name__ == "__main__":
    main()
