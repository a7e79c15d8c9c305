"""Frames on a serial line: COBS-encoded, zero-delimited, with a kind, a sequence number and a CRC-32.

    payload = kind (1 byte) | seq (8 bytes, little endian) | body | crc32(kind | seq | body) (4 bytes)
    frame   = cobs(payload) | 0x00

A frame whose CRC or COBS encoding fails, or that is too short, is counted and
dropped: never decoded into a wrong value. Kinds:

    H  host -> agent  hello: body = the host's session id (sample numbering restarts)
    S  host -> agent  a sample line, seq = sample number in the session
    a  agent -> host  samples processed up to seq (cumulative); body: "last-record oldest-kept"
    R  agent -> host  a record (JSON), seq = record number (persistent on the board)
    A  host -> agent  records received up to seq (cumulative)
    D  agent -> host  records before seq were dropped (journal full); skip to seq
"""

import struct
import zlib
from dataclasses import dataclass

from cobs import cobs

KINDS = frozenset(b"HSaRAD")
_HEAD = struct.Struct("<cQ")
_CRC = struct.Struct("<I")
MIN_PAYLOAD = _HEAD.size + _CRC.size
MAX_FRAME = 1 << 16


@dataclass
class Frame:
    kind: str
    seq: int
    body: bytes = b""


def encode(kind, seq, body=b""):
    """One frame, delimiter included."""
    payload = _HEAD.pack(kind.encode(), seq) + body
    return cobs.encode(payload + _CRC.pack(zlib.crc32(payload))) + b"\0"


class FrameReader:
    """Bytes in, Frames out; `bad` counts frames that were corrupt, truncated or oversized."""

    def __init__(self):
        self.buffer = bytearray()
        self.bad = 0
        self.good = 0

    def feed(self, data):
        self.buffer += data
        frames = []
        while True:
            end = self.buffer.find(0)
            if end < 0:
                if len(self.buffer) > MAX_FRAME:  # no delimiter for too long: noise, drop it
                    self.buffer.clear()
                    self.bad += 1
                return frames
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            if raw:
                frame = decode(raw)
                if frame is None:
                    self.bad += 1
                else:
                    self.good += 1
                    frames.append(frame)


def decode(raw):
    """A Frame from one COBS block (no delimiter), or None if it is not a valid frame."""
    try:
        payload = cobs.decode(raw)
    except cobs.DecodeError:
        return None
    if len(payload) < MIN_PAYLOAD:
        return None
    body, crc = payload[: -_CRC.size], _CRC.unpack(payload[-_CRC.size :])[0]
    if zlib.crc32(body) != crc:
        return None
    kind, seq = _HEAD.unpack_from(body)
    if kind[0] not in KINDS:
        return None
    return Frame(kind.decode(), seq, body[_HEAD.size :])
