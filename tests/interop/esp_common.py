"""ESP helpers shared by the IPsec interop tests: the appliance's config for a set of IPsec
tunnels, and an ESP oracle (RFC 4303 + RFC 4106 AES-GCM-256, 16-byte ICV) built on the
`cryptography` package's AES-GCM, independent of scapy's ESP code and of Conduit's.

Keys are 36 bytes, as in Conduit's YAML and ip-xfrm's rfc4106: the 32-byte AES key, then the
4-byte salt.
"""

import hashlib
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ICV_LEN = 16
IV_LEN = 8
NEXT_HEADER_IPV4 = 4


def key(name: str) -> bytes:
    """A deterministic 36-byte key (AES-256 key + salt) for a test SA."""
    return hashlib.sha512(name.encode()).digest()[:36]


def hexkey(k: bytes) -> str:
    assert len(k) == 36
    return "0x" + k.hex()


def pad_for(payload_len: int) -> bytes:
    """RFC 4303 §2.4 default padding (1, 2, 3, ...) so that payload + pad + 2 is a multiple of 4
    (AES-GCM is a stream mode: 4-byte alignment is all ESP needs)."""
    n = (-(payload_len + 2)) % 4
    return bytes(range(1, n + 1))


def seal(k: bytes, spi: int, seq: int, iv: bytes, inner: bytes, next_header=NEXT_HEADER_IPV4,
         padding=None, pad_len=None) -> bytes:
    """ESP header + IV + ciphertext + ICV of `inner` (everything after the outer IPv4/UDP).
    `padding` and `pad_len` override the trailer, to seal a malformed one under a valid ICV."""
    assert len(iv) == IV_LEN
    padding = pad_for(len(inner)) if padding is None else padding
    pad_len = len(padding) if pad_len is None else pad_len
    plain = inner + padding + bytes([pad_len, next_header])
    head = struct.pack("!II", spi, seq)
    return head + iv + AESGCM(k[:32]).encrypt(k[32:] + iv, plain, head)


def open_esp(k: bytes, esp: bytes):
    """(spi, seq, iv, inner, padding, next_header) of an ESP packet; raises
    cryptography.exceptions.InvalidTag if the ICV does not verify under `k`."""
    spi, seq = struct.unpack("!II", esp[:8])
    iv = esp[8:16]
    plain = AESGCM(k[:32]).decrypt(k[32:] + iv, esp[16:], esp[:8])
    pad_len, nh = plain[-2], plain[-1]
    inner = plain[:len(plain) - 2 - pad_len]
    padding = plain[len(inner):-2]
    return spi, seq, iv, inner, padding, nh


def ipsec_tunnel_yaml(name, local, remote, interface_address, outbound, inbound,
                      replay_window=0, nat_t=False) -> str:
    """One `kind: ipsec` tunnel. outbound: (spi, key) or None; inbound: [(spi, key)]."""
    lines = [
        f"  - name: {name}",
        "    kind: ipsec",
        f"    local: {local}",
        f"    remote: {remote}",
        f"    interface_address: {interface_address}",
        "    health_check: {enabled: false}",
        "    ipsec:",
    ]
    if outbound is not None:
        lines.append(f"      outbound: {{spi: {outbound[0]:#x}, key: {hexkey(outbound[1])}}}")
    lines.append("      inbound:")
    for spi, k in inbound:
        lines.append(f"        - {{spi: {spi:#x}, key: {hexkey(k)}}}")
    lines.append(f"      replay_window: {replay_window}")
    lines.append(f"      nat_t: {'true' if nat_t else 'false'}")
    return "\n".join(lines) + "\n"
