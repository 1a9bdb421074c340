#!/usr/bin/env python3
"""Drive a local privacyIDEA (scripts/privacyidea.sh) as its users and as admin.

Test-harness / demo helper for keyward: it creates users, lets them enrol OTP
tokens the way they would in the self-service portal, logs them in with an OTP
and removes them from the user store (a "leaver" whose tokens stay orphaned in
privacyIDEA). keyward itself never handles token secrets.

Standard library only; runs with the system python3.

Configuration (as printed by `scripts/privacyidea.sh start`):
    KEYWARD_PI_URL       e.g. http://127.0.0.1:5001              (required)
    KEYWARD_PI_ADMIN     local admin                 (default admin)
    KEYWARD_PI_PASSWORD  its password                (default keyward-admin)
    KEYWARD_PI_REALM     default realm for --realm   (default corp)
    KEYWARD_PI_RESOLVER  resolver of that realm      (default corp-users)
    KEYWARD_PI_HOME      instance dir; only `realm` needs it (it creates a
                         SQLite user store there)

Usage:
    pi_users.py realm NAME
    pi_users.py user add NAME [--realm R] [--password P] [--email E]
    pi_users.py user del NAME [--realm R]
    pi_users.py enrol NAME --type totp|hotp [--realm R] [--password P]
    pi_users.py admin-enrol NAME --type totp|hotp [--realm R]
    pi_users.py check NAME --otpkey HEX --type totp|hotp [--serial S]
                      [--counter N] [--realm R]
    pi_users.py seed --realm R --prefix P --count N [--start I] [--type totp|hotp]
    pi_users.py tokens [--realm R] [--by tokenrealm|realm] [--raw]
    pi_users.py audit [--serial S] [--user U] [--realm R]
    pi_users.py disable SERIAL
    pi_users.py delete SERIAL

Every command prints one JSON document on stdout.  A privacyIDEA error is
printed as {"error": {"http_status", "code", "message"}} on stdout and exits
with 1; transport errors (server unreachable, non-JSON answer) exit with 2.
`check` exits 0 for accepted *and* rejected logins (see there).
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import sqlite3
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Never a privacyIDEA plugin name: /token/init meters enrolments per plugin
# User-Agent (privacyidea-cp, privacyidea-pam, ...) against the subscription.
USER_AGENT = "keyward-tests/0.1"
TIMEOUT = 30
TOKEN_TYPES = ("totp", "hotp")
PAGE_SIZE = 1000  # server-side cap of GET /token/ pagesize


class PIError(Exception):
    """privacyIDEA answered with result.status == false or an HTTP error."""

    def __init__(self, http_status, code, message):
        super().__init__(f"HTTP {http_status}, code {code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message

    def as_json(self):
        return {"error": {"http_status": self.http_status, "code": self.code,
                          "message": self.message}}


class TransportError(Exception):
    """The server could not be reached or did not answer with JSON."""


def env(name, default=None):
    value = os.environ.get(name) or default
    if value is None:
        raise SystemExit(f"{name} is not set (eval \"$(scripts/privacyidea.sh start)\")")
    return value


class Client:
    def __init__(self):
        self.url = env("KEYWARD_PI_URL").rstrip("/")
        self.admin_user = env("KEYWARD_PI_ADMIN", "admin")
        self.admin_password = env("KEYWARD_PI_PASSWORD", "keyward-admin")
        self.default_realm = env("KEYWARD_PI_REALM", "corp")
        self.default_resolver = env("KEYWARD_PI_RESOLVER", "corp-users")
        self._admin_jwt = None

    def call(self, method, path, data=None, query=None, jwt=None):
        """Return the whole response envelope; raise PIError / TransportError."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        if jwt:
            # The JWT goes in raw: "Bearer <jwt>" is rejected (401, code 4304).
            headers["PI-Authorization"] = jwt
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:  # 4xx/5xx still carry the JSON envelope
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise TransportError(f"{method} {url}: {e}") from e
        try:
            doc = json.loads(raw)
            result = doc["result"]
        except (ValueError, KeyError, TypeError) as e:
            raise TransportError(f"{method} {url}: HTTP {status}, not a privacyIDEA "
                                 f"response: {raw[:300]!r}") from e
        if status >= 400 or not result.get("status"):
            err = result.get("error") or {}
            raise PIError(status, err.get("code"), err.get("message"))
        return doc

    def value(self, method, path, data=None, query=None, jwt=None):
        return self.call(method, path, data, query, jwt)["result"]["value"]

    def login(self, username, password, realm=None):
        """POST /auth; returns the JWT (valid 1 h)."""
        data = {"username": username, "password": password}
        if realm is not None:
            data["realm"] = realm
        return self.value("POST", "/auth", data)["token"]

    def admin_jwt(self):
        # Local admins (pi-manage admin add) have no realm.
        if self._admin_jwt is None:
            self._admin_jwt = self.login(self.admin_user, self.admin_password)
        return self._admin_jwt

    def admin(self, method, path, data=None, query=None):
        return self.value(method, path, data, query, jwt=self.admin_jwt())

    def refresh_config(self):
        """Make privacyIDEA reload its configuration on the next request.

        privacyIDEA caches its configuration and reloads it when the database's config
        timestamp is newer than the cache's. A reload that was already reading when another
        admin committed a change (a test creating a realm while other requests run) ends
        with the old content but a newer time stamp, and that stale copy then stays until
        the next configuration write. This is such a write: a harmless key of our own.
        """
        self.admin("POST", "/system/setConfig", {"keyward.tests.refreshed": repr(time.time())})

    def realm_info(self, realm, wait=10):
        """GET /realm/ entry of `realm`, refreshing a stale cached configuration for up to
        `wait` seconds while it is missing; None when it is still missing then."""
        deadline = time.monotonic() + wait
        while True:
            info = self.admin("GET", "/realm/").get(realm)
            if info and info.get("resolver"):
                return info
            if time.monotonic() >= deadline:
                return None
            self.refresh_config()
            time.sleep(0.3)

    def resolver_of(self, realm):
        """The (editable) resolver that stores the users of `realm`."""
        if realm == self.default_realm:
            return self.default_resolver
        info = self.realm_info(realm)
        if not info:
            raise SystemExit(f"realm {realm!r} does not exist (create it with: "
                             f"pi_users.py realm {realm})")
        # Realms made by `realm` have exactly one resolver; prefer ours by name.
        names = [r["name"] for r in info["resolver"]]
        return f"{realm}-users" if f"{realm}-users" in names else names[0]


# --- OTP (RFC 4226 / RFC 6238) ---------------------------------------------

def hotp(key_hex, counter, digits=6, digest=hashlib.sha1):
    mac = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10 ** digits).zfill(digits)


def totp_counter(now=None, step=30):
    return int((time.time() if now is None else now) // step)


# --- commands ----------------------------------------------------------------

# Same columns as `pi-manage config resolver create_internal`, but with
# AUTOINCREMENT: a plain INTEGER PRIMARY KEY hands the id of a deleted
# highest-id user to the next new user, and privacyIDEA would then show that
# newcomer as the owner of the leaver's orphaned tokens (owners are stored as
# resolver + user id).
USER_TABLE_DDL = """CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username VARCHAR(40) UNIQUE,
    email VARCHAR(80),
    password VARCHAR(255),
    phone VARCHAR(40),
    mobile VARCHAR(40),
    surname VARCHAR(40),
    givenname VARCHAR(40),
    description VARCHAR(255))"""

USER_MAP = {"userid": "id", "username": "username", "email": "email",
            "password": "password", "phone": "phone", "mobile": "mobile",
            "surname": "surname", "givenname": "givenname",
            "description": "description"}


def cmd_realm(c, a):
    """Create realm NAME with its own editable SQL resolver NAME-users.

    privacyIDEA's REST API can create an sqlresolver but not its table (the
    resolver reflects an existing table), and passwd (flat-file) resolvers are
    read-only, so: create the table in a per-realm SQLite file next to the
    instance with sqlite3 (same columns as `pi-manage config resolver
    create_internal`), then POST /resolver/<NAME>-users and POST /realm/<NAME>.
    Every step is idempotent (re-running keeps existing users).
    """
    name = a.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SystemExit("realm names may only contain letters, digits, '_', '.', '-'")
    home = env("KEYWARD_PI_HOME")
    db = os.path.abspath(os.path.join(home, f"users-{name}.sqlite"))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(USER_TABLE_DDL)
    conn.close()
    resolver = f"{name}-users"
    c.admin("POST", f"/resolver/{urllib.parse.quote(resolver)}", {
        "type": "sqlresolver",
        "Driver": "sqlite",
        # connect string = Driver://Server/Database -> sqlite:////abs/path
        "Server": "/",
        "Database": db,
        "Table": "users",
        "Limit": "500",
        "Editable": "1",
        "Map": json.dumps(USER_MAP),
    })
    c.admin("POST", f"/realm/{urllib.parse.quote(name)}", {"resolvers": resolver})
    if not c.realm_info(name):
        raise SystemExit(f"realm {name!r} was created but privacyIDEA does not list it")
    return {"realm": name, "resolver": resolver, "database": db}


def cmd_user_add(c, a):
    """Create the user; an existing user is left alone ("created": false)."""
    resolver = c.resolver_of(a.realm)
    # POST /user/ of an existing name is an unhandled IntegrityError (HTTP 500),
    # so look first. The search may be a LIKE match: compare names exactly.
    found = c.admin("GET", "/user/", query={"realm": a.realm, "resolver": resolver,
                                            "username": a.name})
    for u in found:
        if u.get("username") == a.name:
            return {"user": a.name, "realm": a.realm, "resolver": resolver,
                    "userid": str(u.get("userid")), "created": False}
    data = {"user": a.name, "resolver": resolver,
            "password": a.password or f"pw-{a.name}"}
    if a.email:
        data["email"] = a.email
    uid = c.admin("POST", "/user/", data)
    return {"user": a.name, "realm": a.realm, "resolver": resolver, "userid": str(uid),
            "created": True}


def cmd_user_del(c, a):
    resolver = c.resolver_of(a.realm)
    # Removes the user from the user store only; privacyIDEA keeps their tokens,
    # still owned by (resolver, userid) -- like a leaver removed from the directory.
    ok = c.admin("DELETE", f"/user/{urllib.parse.quote(resolver)}/{urllib.parse.quote(a.name)}")
    return {"user": a.name, "realm": a.realm, "resolver": resolver, "deleted": bool(ok)}


def _enrol(c, jwt, a, as_admin):
    data = {"type": a.type, "genkey": 1}
    if as_admin:
        data.update({"user": a.name, "realm": a.realm})
    # (a user-role JWT pins user and realm to the caller; no need to send them)
    doc = c.call("POST", "/token/init", data, jwt=jwt)
    detail = doc.get("detail") or {}
    seed = (detail.get("otpkey") or {}).get("value", "")  # "seed://<hex>"
    return {"serial": detail.get("serial"), "type": a.type,
            "otpkey_hex": seed[len("seed://"):] if seed.startswith("seed://") else seed,
            "user": a.name, "realm": a.realm,
            "rollout_state": detail.get("rollout_state")}


def cmd_seed(c, a):
    """Bulk: users PREFIX00000.. (COUNT of them) in the realm's SQLite user store, each
    with one admin-enrolled token of TYPE, for scale tests and benchmarks.

    Users go straight into the realm's table in one transaction (privacyIDEA reads it
    on every lookup); tokens are enrolled through the API, a few requests at a time
    with one admin JWT. Existing users and their tokens are kept. Prints the count.
    """
    import concurrent.futures
    home = env("KEYWARD_PI_HOME")
    db = os.path.abspath(os.path.join(home, f"users-{a.realm}.sqlite"))
    if not os.path.exists(db):
        raise SystemExit(f"realm {a.realm!r} has no user store here (create it with: pi_users.py realm {a.realm})")
    names = [f"{a.prefix}{i:05d}" for i in range(a.start, a.start + a.count)]
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT OR IGNORE INTO users (username, email, password) VALUES (?, ?, ?)",
                         [(n, f"{n}@acme.example", f"pw-{n}") for n in names])
    conn.close()
    jwt = c.admin_jwt()
    held = {t.get("username") for t in list_tokens(c, {"tokenrealm": a.realm, "assigned": "True"})}

    def enrol(name):
        if name not in held:
            c.call("POST", "/token/init", {"type": a.type, "genkey": 1, "user": name, "realm": a.realm}, jwt=jwt)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(enrol, names))
    return {"realm": a.realm, "users": len(names), "type": a.type}


def cmd_enrol(c, a):
    # As the user, like the self-service portal: log in with the user-store
    # password (default WebUI login mode "userstore"), then /token/init.
    jwt = c.login(a.name, a.password or f"pw-{a.name}", a.realm)
    return _enrol(c, jwt, a, as_admin=False)


def cmd_admin_enrol(c, a):
    return _enrol(c, c.admin_jwt(), a, as_admin=True)


def cmd_check(c, a):
    """POST /validate/check as the user logging in with PIN + OTP.

    Tokens enrolled without a PIN have an empty PIN, so pass = OTP.
    privacyIDEA rejects replays: a HOTP counter at or below the last accepted one
    (pass --counter to move on), and a TOTP time step already used (wait 30 s or
    pass --counter <time step>, privacyIDEA accepts +-180 s by default).
    """
    if a.counter is not None:
        counter = a.counter
    else:
        counter = totp_counter() if a.type == "totp" else 0
    otp = hotp(a.otpkey, counter)
    data = {"user": a.name, "realm": a.realm, "pass": otp}
    if a.serial:
        # Restricts the check to this token (privacyIDEA verifies it is the user's).
        data["serial"] = a.serial
    try:
        doc = c.call("POST", "/validate/check", data)
    except PIError as e:
        # e.g. ERR904 for a user deleted from the user store: a failed login too.
        return {"authenticated": False, "message": e.message, "http_status": e.http_status,
                "code": e.code, "counter": counter}
    result, detail = doc["result"], doc.get("detail") or {}
    return {"authenticated": result.get("value") is True,
            "message": detail.get("message"),
            "authentication": result.get("authentication"),
            "serial": detail.get("serial"),
            "counter": counter}


TOKEN_FIELDS = ("serial", "tokentype", "username", "active", "user_id", "resolver",
                "user_realm", "realms", "revoked", "description")


def list_tokens(c, query):
    """All pages of GET /token/ (1-based pages, `next` is null on the last one)."""
    tokens, page = [], 1
    while page:
        value = c.admin("GET", "/token/", query={**query, "page": page, "pagesize": PAGE_SIZE})
        tokens += value["tokens"]
        page = value.get("next")
    return tokens


def cmd_tokens(c, a):
    # tokenrealm= filters on the token's realms (set from the owner's realm at
    # enrolment); realm= (without user=) filters on the owner's realm. Both keep
    # listing tokens whose owner was deleted from the user store (username ""
    # but user_id/resolver/user_realm kept) -- unlike user=NAME&realm=R, which
    # fails with ERR904 once the user is gone. Only tokenrealm= still lists a
    # token after POST /token/unassign (it keeps its realms, loses its owner).
    tokens = list_tokens(c, {a.by: a.realm})
    if a.raw:
        return tokens
    return [{k: t.get(k) for k in TOKEN_FIELDS} for t in tokens]


def cmd_audit(c, a):
    query = {"page": 1, "pagesize": PAGE_SIZE}
    if a.serial:
        query["serial"] = a.serial
    if a.user:
        query["user"] = a.user
    if a.realm:
        query["realm"] = a.realm
    value = c.admin("GET", "/audit/", query=query)
    return value.get("auditdata", value)


def cmd_disable(c, a):
    # value = number of tokens changed (0 when already disabled)
    return {"serial": a.serial,
            "disabled": c.admin("POST", f"/token/disable/{urllib.parse.quote(a.serial)}")}


def cmd_delete(c, a):
    # An unknown serial is HTTP 404, code 601 (reported as an error).
    return {"serial": a.serial,
            "deleted": c.admin("DELETE", f"/token/{urllib.parse.quote(a.serial)}")}


def parse_args(argv):
    default_realm = os.environ.get("KEYWARD_PI_REALM") or "corp"
    p = argparse.ArgumentParser(prog="pi_users.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def realm_opt(sp):
        sp.add_argument("--realm", default=default_realm,
                        help="realm (default $KEYWARD_PI_REALM or corp)")

    sp = sub.add_parser("realm", help="create a realm with its own editable resolver NAME-users")
    sp.add_argument("name")
    sp.set_defaults(fn=cmd_realm)

    user = sub.add_parser("user", help="add/delete users in the realm's user store")
    usub = user.add_subparsers(dest="user_cmd", required=True)
    sp = usub.add_parser("add")
    sp.add_argument("name")
    realm_opt(sp)
    sp.add_argument("--password", help="default pw-NAME")
    sp.add_argument("--email")
    sp.set_defaults(fn=cmd_user_add)
    sp = usub.add_parser("del", help="remove from the user store; tokens stay (orphaned)")
    sp.add_argument("name")
    realm_opt(sp)
    sp.set_defaults(fn=cmd_user_del)

    for cmd, fn, helptext in (("enrol", cmd_enrol, "enrol a token as the user (self-service)"),
                              ("admin-enrol", cmd_admin_enrol, "enrol a token for the user as admin")):
        sp = sub.add_parser(cmd, help=helptext)
        sp.add_argument("name")
        sp.add_argument("--type", required=True, choices=TOKEN_TYPES)
        realm_opt(sp)
        if cmd == "enrol":
            sp.add_argument("--password", help="the user's password (default pw-NAME)")
        sp.set_defaults(fn=fn)

    sp = sub.add_parser("seed", help="bulk: COUNT users PREFIXnnnnn with one token each")
    sp.add_argument("--realm", required=True)
    sp.add_argument("--prefix", required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--start", type=int, default=0)
    sp.add_argument("--type", default="totp", choices=["totp", "hotp"])
    sp.set_defaults(fn=cmd_seed)

    sp = sub.add_parser("check", help="log in as the user with the token's current OTP")
    sp.add_argument("name")
    sp.add_argument("--otpkey", required=True, help="hex seed printed by enrol")
    sp.add_argument("--type", required=True, choices=TOKEN_TYPES)
    sp.add_argument("--serial", help="only check this token of the user")
    sp.add_argument("--counter", type=int,
                    help="HOTP counter (default 0) / TOTP time step (default now)")
    realm_opt(sp)
    sp.set_defaults(fn=cmd_check)

    sp = sub.add_parser("tokens", help="all tokens of a realm, including orphaned ones")
    realm_opt(sp)
    sp.add_argument("--by", choices=("tokenrealm", "realm"), default="tokenrealm",
                    help="GET /token/ filter parameter (default tokenrealm)")
    sp.add_argument("--raw", action="store_true", help="print the full token objects")
    sp.set_defaults(fn=cmd_tokens)

    sp = sub.add_parser("audit", help="audit entries (admin)")
    sp.add_argument("--serial")
    sp.add_argument("--user")
    sp.add_argument("--realm")
    sp.set_defaults(fn=cmd_audit)

    for cmd, fn in (("disable", cmd_disable), ("delete", cmd_delete)):
        sp = sub.add_parser(cmd, help=f"{cmd} a token (admin)")
        sp.add_argument("serial")
        sp.set_defaults(fn=fn)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        out = args.fn(Client(), args)
    except PIError as e:
        print(json.dumps(e.as_json()))
        return 1
    except TransportError as e:
        print(f"pi_users.py: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
