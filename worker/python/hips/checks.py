"""Checks of hips.Worker's arguments, with the C++ daemons' rules.

A mistake in a worker's configuration should stop it before it dials, with
a message naming the argument, rather than show up later as a refusal (or a
silent hang) at the aggregator. Each rule is the one the C++ side applies to
the same value, so a configuration that one accepts the other accepts too:

  member ids     services/types/ids.cc (ValidateMemberId)
  addresses      services/net/address.cc (CheckDialAddress)
  chunk sizes    services/numeric/chunk_codec.cc (ValidateChunkBytes)
  token files    services/net/security.cc (ReadTokenFile, TokenFileModeProblem)
  TLS files      services/net/security.cc (CheckClientTls, LoadSecurity)

Bad types raise TypeError, bad values ValueError; both name the argument.
"""
import math
import numbers
import os
import re
import stat

MAX_ID_LENGTH = 128  # kMaxIdLength
MIN_TOKEN_BYTES = 16  # kMinTokenBytes: a short guess must not pass
MAX_TOKEN_BYTES = 4096  # kMaxTokenBytes
MAX_CHUNK_BYTES = 64 << 20

_ID = re.compile(r"[A-Za-z0-9._-]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")
_BRACKETED_V6 = re.compile(r"\[[0-9A-Fa-f:.]{2,}\]")
# Dropped from the end of a token file, as absl's StripTrailingAsciiWhitespace
# does; whitespace before the token stays (and is refused).
_TRAILING_WHITESPACE = b" \t\n\v\f\r"


def check_type(name, value, types, what):
    """TypeError naming `name` unless `value` is one of `types` (a bool is
    never taken for a number)."""
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")


def check_member_id(name, value):
    """1 to 128 characters of [A-Za-z0-9._-]: an id names files, metric
    labels, log lines and, with mutual TLS, a certificate's common name."""
    check_type(name, value, (str,), "a str")
    if len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value):
        return
    shown = value[:40] + ("..." if len(value) > 40 else "")
    raise ValueError(f"{name} must be 1 to {MAX_ID_LENGTH} characters of [A-Za-z0-9._-], "
                     f"got {shown!r} ({len(value.encode())} bytes)")


def address_problem(address):
    """Why `address` cannot be dialled, or "" when it can: HOST:PORT (a host
    name, an IPv4 address or a bracketed IPv6 one; a port in [1, 65535]) or
    unix:PATH."""
    if address.startswith("unix:"):
        return "" if len(address) > 5 else "no socket path"
    host, colon, port = address.rpartition(":")
    if not colon:
        return "no port"
    if not (_HOST_NAME.fullmatch(host) or _BRACKETED_V6.fullmatch(host)):
        return "not a host name or address"
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return "the port must be in [1, 65535]"
    return ""


def check_address(name, value):
    check_type(name, value, (str,), "a str (HOST:PORT or unix:PATH)")
    problem = address_problem(value)
    if problem:
        raise ValueError(f"{name}={value!r}: {problem} (expected HOST:PORT or unix:PATH)")


def check_addresses(name, value):
    """A list of addresses. A lone str is refused: iterated, it would be a
    list of one-character addresses."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of addresses, not a single {type(value).__name__} "
                        f"(write [{value!r}])")
    try:
        addresses = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of addresses, got "
                        f"{type(value).__name__}") from None
    for i, address in enumerate(addresses):
        check_address(f"{name}[{i}]", address)
    return addresses


def is_loopback(host):
    """Whether `host` (of HOST:PORT, or a unix: target) only reaches this
    machine: 127.0.0.0/8, ::1, localhost, or a Unix socket (as the daemons'
    IsLoopback)."""
    if host.startswith("unix:"):
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("localhost", "::1"):
        return True
    parts = host.split(".")
    return (len(parts) == 4 and all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts)
            and parts[0] == "127")


def check_plaintext(addresses, tls_ca, insecure):
    """Plaintext (no tls_ca) only to this machine, unless `insecure`: the
    token, gradients and weights would cross the network in the clear."""
    check_bool("insecure", insecure)
    if tls_ca is not None or insecure:
        return
    for address in addresses:
        host = address if address.startswith("unix:") else address.rpartition(":")[0]
        if not is_loopback(host):
            raise ValueError(f"refusing to dial {address} without TLS: tokens, gradients and "
                             "weights would cross that network in the clear. Give tls_ca (the "
                             "CA of its certificate), or insecure=True on a network you trust")


def check_chunk_bytes(name, value):
    check_type(name, value, (numbers.Integral,), "an int")
    if not (0 < value <= MAX_CHUNK_BYTES and value % 4 == 0):
        raise ValueError(f"{name} must be a positive multiple of 4 bytes up to 64 MiB, "
                         f"got {value}")


def check_seconds(name, value):
    """A duration in seconds: a finite number above zero (a zero timeout
    fails every call, a zero backoff retries in a tight loop)."""
    check_type(name, value, (numbers.Real,), "a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value}")


def check_int_at_least(name, value, least):
    check_type(name, value, (numbers.Integral,), "an int")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")


def check_bool(name, value):
    check_type(name, value, (bool,), "True or False")


def token_problem(token):
    """Why `token` (bytes, trailing whitespace removed) is not a cluster
    token, or "". The daemons take only such tokens, so another one could
    never authenticate."""
    if not MIN_TOKEN_BYTES <= len(token) <= MAX_TOKEN_BYTES:
        return f"must have {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES} characters"
    if any(c < 0x21 or c > 0x7E for c in token):
        return "must be one line of printable ASCII without spaces"
    return ""


def check_token(name, value):
    """A token given as a str; the message never shows it."""
    check_type(name, value, (str,), "a str")
    problem = token_problem(value.encode())
    if problem:
        raise ValueError(f"{name} {problem}")


def token_file_mode_problem(owner, mode, euid):
    """Why a token file of `owner` and `mode` must not be trusted by a
    process of effective uid `euid`, or "" when it may: the rule of
    TokenFileModeProblem in services/net/security.cc. A file of the process's
    own user (or of another non-root user) must be readable by its owner
    only, like ssh's keys; one owned by root and read by another user may
    also be read by its group, which is how Kubernetes mounts a Secret for a
    non-root container (root:fsGroup, mode 0440)."""
    if owner == euid or owner != 0:
        if mode & (stat.S_IRWXG | stat.S_IRWXO) == 0:
            return ""
        return "may be read by other users; chmod 600 it"
    if mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO) == 0:
        return ""
    return "may be read by other users; chmod 640 it (owned by root) or 600"


def read_token_file(path):
    """The cluster token in `path`, as hips-worker --token_file reads it:
    the file's mode is checked first (a token others can read is a token
    others can present), then its one line, trailing whitespace dropped.
    ValueError naming the file (never the token) otherwise."""
    check_type("token_file", path, (str, os.PathLike), "a path")
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e.strerror}") from e
    problem = token_file_mode_problem(st.st_uid, st.st_mode, os.geteuid())
    if problem:
        raise ValueError(f"the token file {path} {problem} (it is {stat.filemode(st.st_mode)})")
    try:
        with open(path, "rb") as f:
            token = f.read().rstrip(_TRAILING_WHITESPACE)
    except OSError as e:
        raise ValueError(f"cannot read the token file {path}: {e.strerror}") from e
    problem = token_problem(token)
    if problem:
        raise ValueError(f"the token in {path} {problem}")
    return token.decode("ascii")


def read_tls_files(tls_ca, tls_cert, tls_key):
    """The PEM bytes of (tls_ca, tls_cert, tls_key), each None when not
    given, with the daemons' rules: the certificate and its key go together,
    and a client certificate needs the CA that signs the server's."""
    for name, value in (("tls_ca", tls_ca), ("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is not None:
            check_type(name, value, (str, os.PathLike), "a path")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together")
    if tls_cert is not None and tls_ca is None:
        raise ValueError("a client certificate needs tls_ca (TLS to the server)")

    def read(path, what):
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"cannot read {what} {os.fspath(path)}: {e.strerror}") from e

    return (read(tls_ca, "the CA certificate"), read(tls_cert, "the certificate"),
            read(tls_key, "the private key"))
