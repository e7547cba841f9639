#!/usr/bin/env python3
"""A SIP phone over UDP computing its digests with Python's hashlib (an implementation
independent of sipgw's digest code), for the RFC 7616 / RFC 8760 algorithms.

  sip_digest.py --gw HOST:PORT --user U --password P --algorithm ALG [--count N]

Registers N times (REGISTER, 401/407 with one challenge per offered algorithm, a digest with
qop=auth for the challenge of ALG, REGISTER, final response). Prints one JSON line per
registration: {"register": n, "status": S, "offered": [algorithms in challenge order]}.
ALG is MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256 or SHA-512-256-sess; when the
gateway does not offer it, the line says "status": "not offered".
"""
import argparse, hashlib, json, os, random, re, socket

HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def base(alg):
    a = alg.upper()
    return a[:-5] if a.endswith("-SESS") else a


def H(alg, text):
    return hashlib.new(HASHES[base(alg)], text.encode()).hexdigest()


def challenges(msg):
    """Every Digest challenge of a 401/407, in order, as parameter dicts."""
    out = []
    for m in re.finditer(rb"(?im)^(?:www|proxy)-authenticate\s*:\s*Digest\s+(.*)$", msg):
        pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^",\s]+))', m.group(1).decode())
        params = {k: v1 or v2 for k, v1, v2 in pairs}
        params.setdefault("algorithm", "MD5")
        out.append(params)
    return out


def answer(ch, alg, user, password, method, uri):
    realm, nonce = ch["realm"], ch["nonce"]
    cnonce, nc = "%08x" % random.getrandbits(32), "00000001"
    ha1 = H(alg, f"{user}:{realm}:{password}")
    if alg.upper().endswith("-SESS"):
        ha1 = H(alg, f"{ha1}:{nonce}:{cnonce}")
    ha2 = H(alg, f"{method}:{uri}")
    resp = H(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm={ch["algorithm"]}, qop=auth, nc={nc}, '
            f'cnonce="{cnonce}"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gw", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--algorithm", required=True)
    ap.add_argument("--count", type=int, default=1)
    a = ap.parse_args()
    host, port = a.gw.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    local = "%s:%d" % sock.getsockname()
    uri = f"sip:{host}:{port}"
    for n in range(a.count):
        call = "dg-%d-%d@%s" % (os.getpid(), n, local)
        auth, offered = None, []
        for cseq in (1, 2):
            lines = [f"REGISTER {uri} SIP/2.0",
                     f"Via: SIP/2.0/UDP {local};branch=z9hG4bK-{os.getpid()}-{n}-{cseq};rport",
                     "Max-Forwards: 70",
                     f"From: <sip:{a.user}@{host}>;tag=py{os.getpid()}{n}",
                     f"To: <sip:{a.user}@{host}>",
                     f"Call-ID: {call}", f"CSeq: {cseq} REGISTER",
                     f"Contact: <sip:{a.user}@{local}>;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-{os.getpid():012d}>\"",
                     "Expires: 3600",
                     "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY, REFER, MESSAGE, INFO",
                     "Supported: replaces, outbound, path, gruu",
                     "User-Agent: sipgw-test-phone/1.0 (Python hashlib)"]
            if auth:
                lines.append(auth)
            lines.append("Content-Length: 0")
            sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), (host, int(port)))
            while True:
                msg, _ = sock.recvfrom(65536)
                status = int(msg.split(b" ", 2)[1])
                if status >= 200:
                    break
            if status in (401, 407) and cseq == 1:
                chs = challenges(msg)
                offered = [c["algorithm"] for c in chs]
                mine = [c for c in chs if c["algorithm"].upper() == a.algorithm.upper()]
                if not mine:
                    status = "not offered"
                    break
                hname = "Authorization" if status == 401 else "Proxy-Authorization"
                auth = f"{hname}: " + answer(mine[0], a.algorithm, a.user, a.password,
                                             "REGISTER", uri)
                continue
            break
        print(json.dumps({"register": n, "status": status, "offered": offered}), flush=True)


if __name__ == "__main__":
    main()
